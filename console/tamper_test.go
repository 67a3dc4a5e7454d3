package console_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/server"
)

// patchFiles rewrites every file below dir that edit changes; it returns
// how many it changed.
func patchFiles(t *testing.T, dir string, edit func(path string, b []byte) []byte) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if nb := edit(p, slices.Clone(b)); !bytes.Equal(nb, b) {
			n++
			return os.WriteFile(p, nb, 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestConsoleTamperedTilesTurnBadgesRed: the log's tiles are edited on
// disk behind the server's back. An entry bundle in which one leaf is
// altered (its id, same length) turns that event's badge red (not in the
// tree; not the leaf the listing names) and the next one's (its prev no
// longer links), and leaves the others green; a hash tile with one hash
// altered turns red every event whose inclusion proof crosses it. For a
// tenant's token (the console proves each entry with the proof the server
// sends) and a global one (it builds the proofs from the tiles itself).
func TestConsoleTamperedTilesTurnBadgesRed(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.traffic()
	tri := w.triage
	victim := tri[2]
	b := newTab(t, w)
	b.signIn(w.auditor)
	g := newTab(t, w)
	g.signIn(w.global)
	timeline := "sessions/triage-7?tenant=" + tenant
	red := func(b *tab) []string {
		b.open(timeline)
		return strings.Fields(b.eval(`[...document.querySelectorAll('#timeline tr[data-verified="false"]')].map(r => r.dataset.index).join(' ')`))
	}
	idx := func(ws ...int) []string {
		var out []string
		for _, i := range ws {
			out = append(out, fmt.Sprint(tri[i].Index))
		}
		return out
	}
	if r := red(b); len(r) != 0 {
		t.Fatalf("before tampering, red badges on %v", r)
	}

	l := string(victim.Leaf)
	id := l[strings.Index(l, `"id":"`)+6:][:32]
	forged := id[:31] + map[bool]string{true: "0", false: "1"}[id[31] != '0']
	if n := patchFiles(t, filepath.Join(w.dir, server.LogDir, "tile", "entries"), func(_ string, b []byte) []byte {
		return bytes.ReplaceAll(b, []byte(id), []byte(forged))
	}); n == 0 {
		t.Fatal("no entry bundle holds the victim's leaf")
	}
	for _, c := range []struct {
		name string
		b    *tab
		// why the altered event fails: with the tiles, the console finds
		// the leaf outside the tree and unlike the listing; through
		// /v1/entries, the server refuses to serve a proof that does not
		// verify.
		why []string
	}{
		{"tenant token", b, []string{"failed", "inclusion", "500"}},
		{"global token", g, []string{"failed", "inclusion: the entry does not prove included", "listing: the listing's leaf hash is not the log's"}},
	} {
		t.Run("bundle edited, "+c.name, func(t *testing.T) {
			c.b.t = t
			if r := red(c.b); !slices.Equal(r, idx(2, 3)) {
				t.Fatalf("red badges on %v, want %v", r, idx(2, 3))
			}
			if s := c.b.text("#session-state"); !strings.Contains(s, "problem(s) found") {
				t.Errorf("session state %q", s)
			}
			if v := c.b.text(fmt.Sprintf("#entry-%d .verif", victim.Index)); !hasAll(v, c.why...) {
				t.Errorf("the altered event's badge: %q", v)
			}
			if v := c.b.text(fmt.Sprintf("#entry-%d .verif", tri[3].Index)); !hasAll(v, "failed", "chain: prev is not the previous event's leaf hash") {
				t.Errorf("the next event's badge: %q", v)
			}
		})
	}
	g.t = t
	g.open(timeline)
	g.shoot("tampered")
	b.t = t
	b.open(fmt.Sprintf("entries/%d", victim.Index))
	if s := b.text("#error"); !hasAll(s, fmt.Sprintf("Entry %d", victim.Index), "could not serve it") {
		t.Errorf("the altered event's own page: %q", s)
	}

	// A hash tile: the level-0 hash of the session's first event altered.
	at := int(tri[0].Index) * 32
	if n := patchFiles(t, filepath.Join(w.dir, server.LogDir, "tile", "0"), func(p string, b []byte) []byte {
		if strings.Contains(p, string(filepath.Separator)+"entries") || len(b) < at+32 {
			return b
		}
		b[at] ^= 0xff
		return b
	}); n == 0 {
		t.Fatal("no hash tile patched")
	}
	for _, c := range []struct {
		name string
		b    *tab
	}{{"tenant token", b}, {"global token", g}} {
		t.Run("hash tile edited, "+c.name, func(t *testing.T) {
			c.b.t = t
			// Every proof but the first event's own crosses the altered hash.
			if r := red(c.b); !slices.Equal(r, idx(1, 2, 3, 4)) {
				t.Fatalf("red badges on %v, want %v", r, idx(1, 2, 3, 4))
			}
			if v := c.b.text(fmt.Sprintf("#entry-%d .verif", tri[1].Index)); !hasAll(v, "failed", "inclusion") {
				t.Errorf("badge %q", v)
			}
		})
	}
}

// Package crafttest is a real Tessera POSIX log, served over tlog-tiles,
// whose leaves a test writes directly: it can hold what the log server
// never writes (seq gaps, broken chains, forged signatures, garbage). Test
// only.
package crafttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/tiles"
)

// Log is a real Tessera POSIX log, served over tlog-tiles, whose
// leaves a test writes directly: it can hold what the log server never
// writes (seq gaps, broken chains, backdated events, garbage).
type Log struct {
	t      testing.TB
	app    *tessera.Appender
	Reader tessera.LogReader
	HS     *httptest.Server
	Key    note.Verifier
	// KeyText is Key's text (a verifier key, as in a log's .pub file).
	KeyText string
	heads   map[string]*head
	Size    uint64
	// Dir is the POSIX log's directory (to tamper with its files).
	Dir     string
	ctx     context.Context
	cancel  context.CancelFunc
	closeFn func(context.Context) error
}

type head struct {
	seq  uint64
	prev []byte
	n    int
}

// New starts a crafted log (origin example.com/crafted) that lives until
// the test ends.
func New(t testing.TB) *Log {
	t.Helper()
	skey, vkey, err := checkpoint.GenerateKey("example.com/crafted")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := checkpoint.NewSigner(skey)
	key, _ := checkpoint.NewVerifier(vkey)
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	drv, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	// Batches of one entry: the log's order is then the order of Add. With
	// larger batches, a batch the age timer flushes and one that fills up
	// meanwhile reach Tessera's sequencer in either order (its queue sends
	// them after unlocking), and a crafted session's seq chain came out
	// broken under load.
	app, shutdown, reader, err := tessera.NewAppender(ctx, drv, tessera.NewAppendOptions().
		WithCheckpointSigner(signer).WithBatching(1, 5*time.Millisecond).WithCheckpointInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c := &Log{Dir: dir, t: t, app: app, Reader: reader, Key: key, KeyText: vkey, heads: map[string]*head{}, ctx: ctx, cancel: cancel, closeFn: shutdown}
	c.HS = httptest.NewServer(tiles.Handler(reader, tiles.Options{}))
	t.Cleanup(func() {
		c.HS.Close()
		shutdown(context.Background())
		cancel()
	})
	return c
}

// craft describes one crafted event; zero fields take sane defaults.
type Craft struct {
	Kind, Session, ActorType, Actor string
	Tenant                          string
	OnBehalfOf                      string // the actor's on_behalf_of
	Attrs                           map[string]any
	At                              time.Time // default now
	SkipSeq                         bool      // leave a gap before this event
	BadPrev                         bool      // break the chain
	Raw                             []byte    // append these bytes instead of a leaf
	// Writer, if set, is the leaf's writer (default token "crafted" via api).
	Writer *event.Writer
}

// add appends events and returns their indices.
func (c *Log) Add(cs ...Craft) []uint64 {
	c.t.Helper()
	var futs []tessera.IndexFuture
	for _, cr := range cs {
		data := cr.Raw
		if data == nil {
			data = c.Leaf(cr)
		}
		futs = append(futs, c.app.Add(c.ctx, tessera.NewEntry(data)))
	}
	out := make([]uint64, len(futs))
	for i, f := range futs {
		idx, err := f()
		if err != nil {
			c.t.Fatal(err)
		}
		out[i] = idx.Index
		c.Size = max(c.Size, idx.Index+1)
	}
	return out
}

func (c *Log) Leaf(cr Craft) []byte {
	if cr.Tenant == "" {
		cr.Tenant = "acme"
	}
	if cr.ActorType == "" {
		cr.ActorType = "agent"
	}
	if cr.Actor == "" {
		cr.Actor = "agent-1"
	}
	if cr.At.IsZero() {
		cr.At = time.Now()
	}
	key := cr.Tenant + "/" + cr.Session
	h := c.heads[key]
	if h == nil {
		h = &head{}
		c.heads[key] = h
	}
	id := make([]byte, 16)
	rand.Read(id)
	l := &event.Leaf{
		V: event.LeafVersion, ID: hex.EncodeToString(id), Kind: cr.Kind, Time: cr.At.UTC().Format(event.TimeFormat),
		Tenant: cr.Tenant, Session: cr.Session, Actor: event.Actor{Type: cr.ActorType, ID: cr.Actor, OnBehalfOf: cr.OnBehalfOf},
		Writer: cr.Writer,
	}
	if l.Writer == nil {
		l.Writer = &event.Writer{Token: "crafted", Via: event.ViaAPI}
	}
	if cr.Attrs != nil {
		// Round-trip through JSON so numbers look as they do in real leaves.
		b, _ := json.Marshal(cr.Attrs)
		json.Unmarshal(b, &l.Attributes)
	}
	if h.n > 0 {
		l.Seq = h.seq + 1
		if cr.SkipSeq {
			l.Seq++
		}
		l.Prev = hex.EncodeToString(h.prev)
		if cr.BadPrev {
			l.Prev = hex.EncodeToString(randomHash())
		}
	}
	data, err := l.Marshal()
	if err != nil {
		c.t.Fatal(err)
	}
	h.seq, h.prev = l.Seq, event.LeafHash(data)
	h.n++
	return data
}

// waitPublished waits until the published checkpoint covers every entry.
func (c *Log) WaitPublished() {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		raw, err := c.Reader.ReadCheckpoint(context.Background())
		if err == nil {
			cp, _, err := checkpoint.Verify(raw, c.Key)
			if err == nil && cp.Size >= c.Size {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("checkpoint did not reach %d", c.Size)
}

// RewriteBundle edits the entries of an entry bundle file of a POSIX log
// (this one's Dir, or a log server's) in place: what an operator who
// tampers with the log's files would do.
func RewriteBundle(t testing.TB, path string, edit func(i int, data []byte) []byte) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for i := 0; len(raw) > 0; i++ {
		n := int(raw[0])<<8 | int(raw[1])
		d := edit(i, raw[2:2+n])
		out = append(out, byte(len(d)>>8), byte(len(d)))
		out = append(out, d...)
		raw = raw[2+n:]
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Attrs builds an attribute map from key, value pairs.
func Attrs(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[fmt.Sprint(kv[i])] = kv[i+1]
	}
	return m
}

func randomHash() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

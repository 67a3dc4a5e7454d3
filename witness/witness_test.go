package witness_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/internal/keyfile"
	"github.com/llmaudittrail/llmaudittrail/internal/witnesstest"
	"github.com/llmaudittrail/llmaudittrail/witness"
)

const witnessName = "witness.test/w1"

// testWitness is a witness for one log on an httptest server.
type testWitness struct {
	w   *witness.Witness
	srv *httptest.Server
	dir string
}

func newTestWitness(t *testing.T, logs ...*witnesstest.Log) *testWitness {
	t.Helper()
	cfg := &witness.Config{Name: witnessName}
	for _, l := range logs {
		cfg.Logs = append(cfg.Logs, witness.LogConfig{Origin: l.Origin, Key: l.VerifierKey})
	}
	dir := t.TempDir()
	w, err := witness.Open(t.Context(), dir, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(func() {
		srv.Close()
		w.Close()
	})
	return &testWitness{w: w, srv: srv, dir: dir}
}

type response struct {
	status      int
	contentType string
	body        string
}

func (tw *testWitness) post(t testing.TB, body []byte) response {
	t.Helper()
	resp, err := http.Post(tw.srv.URL+"/add-checkpoint", "text/plain", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}
}

func (tw *testWitness) get(t testing.TB, origin string) response {
	t.Helper()
	resp, err := http.Get(tw.srv.URL + "/" + checkpoint.OriginID(origin) + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}
}

// mustAdd submits a request that must be cosigned.
func (tw *testWitness) mustAdd(t testing.TB, body []byte) {
	t.Helper()
	if r := tw.post(t, body); r.status != http.StatusOK {
		t.Fatalf("setup request refused: %d %q", r.status, r.body)
	}
}

// checkCosignature checks that sigs is exactly one cosignature/v1 line by
// the witness over checkpoint, with a timestamp within a minute of now.
func checkCosignature(t testing.TB, vkey string, checkpoint []byte, sigs string) {
	t.Helper()
	if strings.Count(sigs, "\n") != 1 || !strings.HasPrefix(sigs, "— "+witnessName+" ") {
		t.Fatalf("response is not one cosignature line by %s: %q", witnessName, sigs)
	}
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(append(bytes.Clone(checkpoint), sigs...), note.VerifierList(v))
	if err != nil {
		t.Fatalf("cosignature does not verify: %v", err)
	}
	ts, err := fnote.CoSigV1Timestamp(n.Sigs[0])
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(ts); d < -time.Minute || d > time.Minute {
		t.Fatalf("cosignature timestamp %v is not now", ts)
	}
}

// TestAddCheckpointAnswers covers every answer of add-checkpoint and of the
// monitoring endpoint, with exact status codes, content types and bodies.
func TestAddCheckpointAnswers(t *testing.T) {
	const origin = "log.test/a"
	const sizeBody = "text/x.tlog.size"

	type tcase struct {
		name string
		// setup gets the log (16 entries) and the witness, submits any
		// prior requests and returns the request under test.
		setup       func(t *testing.T, l *witnesstest.Log, tw *testWitness) []byte
		status      int
		contentType string // exact, when set
		body        string // exact, when set
		bodyHas     string // substring, when set
		// cosigned is the checkpoint the 200 response must cosign.
		cosigned func(l *witnesstest.Log) (size uint64)
	}
	first := func(size uint64) func(t *testing.T, l *witnesstest.Log, tw *testWitness) []byte {
		return func(t *testing.T, l *witnesstest.Log, tw *testWitness) []byte {
			return l.AddRequest(t, 0, size)
		}
	}
	after := func(cosigned []uint64, old, size uint64) func(t *testing.T, l *witnesstest.Log, tw *testWitness) []byte {
		return func(t *testing.T, l *witnesstest.Log, tw *testWitness) []byte {
			prev := uint64(0)
			for _, s := range cosigned {
				tw.mustAdd(t, l.AddRequest(t, prev, s))
				prev = s
			}
			return l.AddRequest(t, old, size)
		}
	}
	for _, tc := range []tcase{
		{name: "200 first contact", setup: first(5), status: 200, cosigned: func(*witnesstest.Log) uint64 { return 5 }},
		{name: "200 first contact size 0", setup: first(0), status: 200, cosigned: func(*witnesstest.Log) uint64 { return 0 }},
		{name: "200 consistent extension", setup: after([]uint64{5}, 5, 13), status: 200, cosigned: func(*witnesstest.Log) uint64 { return 13 }},
		{name: "200 from size 0 to n", setup: after([]uint64{0}, 0, 7), status: 200, cosigned: func(*witnesstest.Log) uint64 { return 7 }},
		{name: "200 same size same root", setup: after([]uint64{5}, 5, 5), status: 200, cosigned: func(*witnesstest.Log) uint64 { return 5 }},
		{name: "200 extra signatures ignored",
			setup: func(t *testing.T, l *witnesstest.Log, tw *testWitness) []byte {
				other := witnesstest.NewLog(t, "someone.else/key")
				cp := l.Checkpoint(t, 4)
				extra := other.SignText(t, checkpointText(cp))
				cp = append(cp, signatureLines(extra)...)
				return witnesstest.Request(0, nil, cp)
			},
			status: 200, cosigned: func(*witnesstest.Log) uint64 { return 4 }},

		{name: "404 unknown origin",
			setup: func(t *testing.T, _ *witnesstest.Log, _ *testWitness) []byte {
				u := witnesstest.NewLog(t, "log.test/unknown")
				u.Append(4)
				return u.AddRequest(t, 0, 4)
			},
			status: 404, bodyHas: "unknown log origin"},

		{name: "403 signed by another key with the log's name",
			setup: func(t *testing.T, l *witnesstest.Log, _ *testWitness) []byte {
				impostor := witnesstest.NewLog(t, origin)
				impostor.Append(5)
				return impostor.AddRequest(t, 0, 5)
			},
			status: 403, bodyHas: "no valid signature"},
		{name: "403 corrupted log signature",
			setup: func(t *testing.T, l *witnesstest.Log, _ *testWitness) []byte {
				// Same key name and key hash, one bit of the signature flipped.
				cp := l.Checkpoint(t, 5)
				i := bytes.LastIndex(cp, []byte(" ")) + 1
				sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(cp[i:])))
				if err != nil {
					t.Fatal(err)
				}
				sig[10] ^= 1
				cp = append(cp[:i], base64.StdEncoding.EncodeToString(sig)+"\n"...)
				return witnesstest.Request(0, nil, cp)
			},
			status: 403, bodyHas: "no valid signature"},

		{name: "400 old size larger than checkpoint (first contact)", setup: first0(6, 5), status: 400, bodyHas: "old size larger"},
		{name: "400 old size larger than checkpoint",
			setup: func(t *testing.T, l *witnesstest.Log, tw *testWitness) []byte {
				tw.mustAdd(t, l.AddRequest(t, 0, 9))
				return witnesstest.Request(9, nil, l.Checkpoint(t, 5))
			},
			status: 400, bodyHas: "old size larger"},
		{name: "400 malformed body",
			setup: func(t *testing.T, l *witnesstest.Log, _ *testWitness) []byte {
				return append([]byte("old 0\n"), l.Checkpoint(t, 5)...) // no empty line
			},
			status: 400, bodyHas: "malformed"},
		{name: "400 checkpoint body not a checkpoint",
			setup: func(t *testing.T, l *witnesstest.Log, _ *testWitness) []byte {
				return witnesstest.Request(0, nil, l.SignText(t, origin+"\nfive\n"+base64.StdEncoding.EncodeToString(l.Root(5))+"\n"))
			},
			status: 400, bodyHas: "malformed"},
		{name: "400 root hash not 32 bytes",
			setup: func(t *testing.T, l *witnesstest.Log, _ *testWitness) []byte {
				return witnesstest.Request(0, nil, l.SignText(t, origin+"\n5\n"+base64.StdEncoding.EncodeToString(l.Root(5)[:16])+"\n"))
			},
			status: 400, bodyHas: "malformed"},

		{name: "409 first contact with old size not 0", setup: first0(3, 5), status: 409, contentType: sizeBody, body: "0\n"},
		{name: "409 stale old size", setup: after([]uint64{5, 9}, 5, 12), status: 409, contentType: sizeBody, body: "9\n"},
		{name: "409 old size ahead of witness", setup: after([]uint64{5}, 7, 9), status: 409, contentType: sizeBody, body: "5\n"},
		{name: "409 different root at the cosigned size",
			setup: func(t *testing.T, l *witnesstest.Log, tw *testWitness) []byte {
				tw.mustAdd(t, l.AddRequest(t, 0, 9))
				return forkAt(t, l, 5).AddRequest(t, 9, 9)
			},
			status: 409, contentType: "text/plain; charset=utf-8", bodyHas: "root hash differs"},

		{name: "422 proof from another fork",
			setup: func(t *testing.T, l *witnesstest.Log, tw *testWitness) []byte {
				tw.mustAdd(t, l.AddRequest(t, 0, 9))
				return forkAt(t, l, 5).AddRequest(t, 9, 14)
			},
			status: 422, bodyHas: "consistency proof does not verify"},
		{name: "422 garbage proof",
			setup: func(t *testing.T, l *witnesstest.Log, tw *testWitness) []byte {
				tw.mustAdd(t, l.AddRequest(t, 0, 5))
				p := l.Proof(t, 5, 13)
				p[0] = bytes.Repeat([]byte{1}, 32)
				return witnesstest.Request(5, p, l.Checkpoint(t, 13))
			},
			status: 422, bodyHas: "consistency proof does not verify"},
		{name: "422 empty proof for a larger size",
			setup: func(t *testing.T, l *witnesstest.Log, tw *testWitness) []byte {
				tw.mustAdd(t, l.AddRequest(t, 0, 5))
				return witnesstest.Request(5, nil, l.Checkpoint(t, 13))
			},
			status: 422, bodyHas: "consistency proof does not verify"},
		{name: "422 non-empty proof from size 0",
			setup: func(t *testing.T, l *witnesstest.Log, _ *testWitness) []byte {
				return witnesstest.Request(0, [][]byte{l.Root(1)}, l.Checkpoint(t, 5))
			},
			status: 422, bodyHas: "consistency proof does not verify"},
		{name: "422 non-empty proof at the same size",
			setup: func(t *testing.T, l *witnesstest.Log, tw *testWitness) []byte {
				tw.mustAdd(t, l.AddRequest(t, 0, 5))
				return witnesstest.Request(5, [][]byte{l.Root(1)}, l.Checkpoint(t, 5))
			},
			status: 422, bodyHas: "consistency proof does not verify"},
		{name: "422 size 0 with a non-empty root",
			setup: func(t *testing.T, l *witnesstest.Log, _ *testWitness) []byte {
				return witnesstest.Request(0, nil, l.SignText(t, origin+"\n0\n"+base64.StdEncoding.EncodeToString(l.Root(5))+"\n"))
			},
			status: 422, bodyHas: "consistency proof does not verify"},

		{name: "413 body too large",
			setup: func(t *testing.T, l *witnesstest.Log, _ *testWitness) []byte {
				cp := l.Checkpoint(t, 5)
				return append(witnesstest.Request(0, nil, cp), bytes.Repeat([]byte("x"), witness.MaxRequestBytes)...)
			},
			status: 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := witnesstest.NewLog(t, origin)
			l.Append(16)
			tw := newTestWitness(t, l)
			req := tc.setup(t, l, tw)
			before := tw.get(t, origin)

			got := tw.post(t, req)
			if got.status != tc.status {
				t.Fatalf("status %d (body %q), want %d", got.status, got.body, tc.status)
			}
			if tc.contentType != "" && got.contentType != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got.contentType, tc.contentType)
			}
			if tc.status != 409 && got.contentType == sizeBody {
				t.Errorf("Content-Type %q on a %d answer", sizeBody, got.status)
			}
			if tc.body != "" && got.body != tc.body {
				t.Errorf("body %q, want %q", got.body, tc.body)
			}
			if tc.bodyHas != "" && !strings.Contains(got.body, tc.bodyHas) {
				t.Errorf("body %q does not contain %q", got.body, tc.bodyHas)
			}

			after := tw.get(t, origin)
			if tc.status != 200 {
				if after != before {
					t.Errorf("refused request changed the stored checkpoint:\nbefore %+v\nafter  %+v", before, after)
				}
				return
			}
			parsed, err := witness.ParseRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			checkCosignature(t, tw.w.VerifierKey(), parsed.Checkpoint, got.body)
			// The monitoring endpoint now serves the log-signed checkpoint
			// with this cosignature, verifiable by both keys.
			if after.status != 200 {
				t.Fatalf("GET checkpoint after cosigning: %d %q", after.status, after.body)
			}
			wantText := fmt.Sprintf("%s\n%d\n%s\n", origin, tc.cosigned(l), base64.StdEncoding.EncodeToString(l.Root(tc.cosigned(l))))
			if !strings.HasPrefix(after.body, wantText+"\n") || !strings.HasSuffix(after.body, got.body) {
				t.Errorf("GET checkpoint = %q, want text %q ending in %q", after.body, wantText, got.body)
			}
			logV, err := note.NewVerifier(l.VerifierKey)
			if err != nil {
				t.Fatal(err)
			}
			wV, err := fnote.NewVerifierForCosignatureV1(tw.w.VerifierKey())
			if err != nil {
				t.Fatal(err)
			}
			n, err := note.Open([]byte(after.body), note.VerifierList(logV, wV))
			if err != nil || len(n.Sigs) != 2 || len(n.UnverifiedSigs) != 0 {
				t.Errorf("stored checkpoint: %v, %d verified and %d unverified signatures; want 2 and 0", err, len(n.Sigs), len(n.UnverifiedSigs))
			}
		})
	}
}

func first0(old, size uint64) func(t *testing.T, l *witnesstest.Log, tw *testWitness) []byte {
	return func(t *testing.T, l *witnesstest.Log, tw *testWitness) []byte {
		return witnesstest.Request(old, l.Proof(t, min(old, size), size), l.Checkpoint(t, size))
	}
}

// forkAt returns a fork of l that shares its first n entries and has 16
// entries of its own after them.
func forkAt(t *testing.T, l *witnesstest.Log, n int) *witnesstest.Log {
	t.Helper()
	f := l.ForkAt(uint64(n))
	f.Append(16)
	return f
}

func checkpointText(signed []byte) string {
	text, _, _ := strings.Cut(string(signed), "\n\n")
	return text + "\n"
}

func signatureLines(signed []byte) []byte {
	_, sigs, _ := bytes.Cut(signed, []byte("\n\n"))
	return sigs
}

func TestMonitoringEndpoint(t *testing.T) {
	l := witnesstest.NewLog(t, "log.test/a")
	l.Append(8)
	other := witnesstest.NewLog(t, "log.test/b")
	tw := newTestWitness(t, l, other)

	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/" + checkpoint.OriginID(l.Origin) + "/checkpoint", 404},     // configured, never cosigned
		{"/" + checkpoint.OriginID("log.test/c") + "/checkpoint", 404}, // not configured
		{"/not-hex/checkpoint", 404},
		{"/" + strings.ToUpper(checkpoint.OriginID(l.Origin)) + "/checkpoint", 404},
	} {
		resp, err := http.Get(tw.srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s = %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
	}

	tw.mustAdd(t, l.AddRequest(t, 0, 8))
	if r := tw.get(t, l.Origin); r.status != 200 || !strings.HasPrefix(r.body, l.Origin+"\n8\n") {
		t.Errorf("GET after cosigning = %d %q", r.status, r.body)
	}
	if r := tw.get(t, other.Origin); r.status != 404 {
		t.Errorf("GET of the other log = %d, want 404", r.status)
	}

	// Wrong methods.
	resp, err := http.Get(tw.srv.URL + "/add-checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /add-checkpoint = %d, want 405", resp.StatusCode)
	}
}

// TestStateSurvivesReopen closes the witness and opens it again from the
// same data directory.
func TestStateSurvivesReopen(t *testing.T) {
	l := witnesstest.NewLog(t, "log.test/a")
	l.Append(20)
	cfg := &witness.Config{Name: witnessName, Logs: []witness.LogConfig{{Origin: l.Origin, Key: l.VerifierKey}}}
	dir := t.TempDir()
	open := func() (*witness.Witness, *httptest.Server) {
		w, err := witness.Open(t.Context(), dir, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		return w, httptest.NewServer(w.Handler())
	}
	w, srv := open()
	tw := &testWitness{w: w, srv: srv, dir: dir}
	tw.mustAdd(t, l.AddRequest(t, 0, 10))
	vkey := w.VerifierKey()
	srv.Close()
	w.Close()

	w, srv = open()
	defer func() { srv.Close(); w.Close() }()
	tw = &testWitness{w: w, srv: srv, dir: dir}
	if w.VerifierKey() != vkey {
		t.Errorf("key changed across restart: %q, then %q", vkey, w.VerifierKey())
	}
	if r := tw.post(t, l.AddRequest(t, 0, 20)); r.status != 409 || r.body != "10\n" {
		t.Errorf("old 0 after restart = %d %q, want 409 \"10\\n\"", r.status, r.body)
	}
	tw.mustAdd(t, l.AddRequest(t, 10, 20))
}

func TestKeys(t *testing.T) {
	dir := t.TempDir()
	vkey, err := witness.GenerateKey(dir, witnessName)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, witness.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %#o, want 0600", st.Mode().Perm())
	}
	pub, err := os.ReadFile(filepath.Join(dir, witness.PubFile))
	if err != nil {
		t.Fatal(err)
	}
	if string(pub) != vkey+"\n" {
		t.Errorf("pub file %q, want %q", pub, vkey+"\n")
	}
	// cosignature/v1 vkey: name+hash+base64(0x04 || 32-byte key).
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 || parts[0] != witnessName {
		t.Fatalf("vkey %q", vkey)
	}
	if k, err := base64.StdEncoding.DecodeString(parts[2]); err != nil || len(k) != 33 || k[0] != 0x04 {
		t.Errorf("vkey key material %x (%v), want 0x04 || 32 bytes", k, err)
	}

	if _, err := witness.GenerateKey(dir, witnessName); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second GenerateKey: %v, want fs.ErrExist", err)
	}
	k, err := witness.LoadKey(dir, witnessName)
	if err != nil {
		t.Fatal(err)
	}
	if k.VerifierKey != vkey {
		t.Errorf("LoadKey vkey %q, want %q", k.VerifierKey, vkey)
	}
	if _, err := witness.LoadKey(dir, "other.test/w"); !errors.Is(err, witness.ErrKeyNameMismatch) {
		t.Errorf("LoadKey with another name: %v, want ErrKeyNameMismatch", err)
	}

	// A missing pub file is rewritten; a wrong one is refused.
	os.Remove(filepath.Join(dir, witness.PubFile))
	if _, err := witness.LoadKey(dir, witnessName); err != nil {
		t.Fatal(err)
	}
	if pub, _ := os.ReadFile(filepath.Join(dir, witness.PubFile)); string(pub) != vkey+"\n" {
		t.Errorf("rewritten pub file %q", pub)
	}
	other := t.TempDir()
	otherVkey, err := witness.GenerateKey(other, witnessName)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, witness.PubFile), []byte(otherVkey+"\n"), 0o644)
	if _, err := witness.LoadKey(dir, witnessName); err == nil {
		t.Errorf("LoadKey accepted a pub file of another key")
	}

	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660} {
		os.Chmod(filepath.Join(other, witness.KeyFile), mode)
		if _, err := witness.LoadKey(other, witnessName); !errors.Is(err, keyfile.ErrInsecurePermissions) {
			t.Errorf("LoadKey of a %#o key: %v, want ErrInsecurePermissions", mode, err)
		}
	}
}

func TestConfig(t *testing.T) {
	l := witnesstest.NewLog(t, "log.test/a")
	good := fmt.Sprintf("name: w.test/1\nlogs:\n  - origin: %s\n    key: %s\n", l.Origin, l.VerifierKey)
	c, err := witness.ParseConfig([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "w.test/1" || len(c.Logs) != 1 || c.Logs[0].Origin != l.Origin || c.Logs[0].Key != l.VerifierKey {
		t.Errorf("ParseConfig = %+v", c)
	}
	for name, bad := range map[string]string{
		"no name":          fmt.Sprintf("logs:\n  - origin: %s\n    key: %s\n", l.Origin, l.VerifierKey),
		"name with space":  fmt.Sprintf("name: w test\nlogs:\n  - origin: %s\n    key: %s\n", l.Origin, l.VerifierKey),
		"name with plus":   fmt.Sprintf("name: w+test\nlogs:\n  - origin: %s\n    key: %s\n", l.Origin, l.VerifierKey),
		"no logs":          "name: w.test/1\n",
		"bad key":          fmt.Sprintf("name: w.test/1\nlogs:\n  - origin: %s\n    key: nope\n", l.Origin),
		"empty origin":     fmt.Sprintf("name: w.test/1\nlogs:\n  - origin: \"\"\n    key: %s\n", l.VerifierKey),
		"duplicate origin": fmt.Sprintf("name: w.test/1\nlogs:\n  - origin: %s\n    key: %s\n  - origin: %s\n    key: %s\n", l.Origin, l.VerifierKey, l.Origin, l.VerifierKey),
		"unknown field":    fmt.Sprintf("name: w.test/1\nlgos: []\nlogs:\n  - origin: %s\n    key: %s\n", l.Origin, l.VerifierKey),
	} {
		if _, err := witness.ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%s: ParseConfig accepted %q", name, bad)
		}
	}
}

// TestOpenRefusesForeignKeyName checks that a configured name that differs
// from the existing key's name is refused at start-up.
func TestOpenRefusesForeignKeyName(t *testing.T) {
	l := witnesstest.NewLog(t, "log.test/a")
	dir := t.TempDir()
	if _, err := witness.GenerateKey(dir, "someone.else/w"); err != nil {
		t.Fatal(err)
	}
	cfg := &witness.Config{Name: witnessName, Logs: []witness.LogConfig{{Origin: l.Origin, Key: l.VerifierKey}}}
	if _, err := witness.Open(context.Background(), dir, cfg, nil); !errors.Is(err, witness.ErrKeyNameMismatch) {
		t.Fatalf("Open: %v, want ErrKeyNameMismatch", err)
	}
}

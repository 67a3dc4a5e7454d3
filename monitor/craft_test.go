package monitor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/tiles"
)

// craftLog is a real Tessera POSIX log, served over tlog-tiles, whose
// leaves a test writes directly: it can hold what the log server never
// writes (seq gaps, broken chains, backdated events, garbage).
type craftLog struct {
	t       testing.TB
	app     *tessera.Appender
	reader  tessera.LogReader
	hs      *httptest.Server
	key     note.Verifier
	heads   map[string]*craftHead
	size    uint64
	ctx     context.Context
	cancel  context.CancelFunc
	closeFn func(context.Context) error
}

type craftHead struct {
	seq  uint64
	prev []byte
	n    int
}

func newCraftLog(t testing.TB) *craftLog {
	t.Helper()
	skey, vkey, err := checkpoint.GenerateKey("example.com/crafted")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := checkpoint.NewSigner(skey)
	key, _ := checkpoint.NewVerifier(vkey)
	ctx, cancel := context.WithCancel(context.Background())
	drv, err := posix.New(ctx, posix.Config{Path: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	app, shutdown, reader, err := tessera.NewAppender(ctx, drv, tessera.NewAppendOptions().
		WithCheckpointSigner(signer).WithBatching(256, 5*time.Millisecond).WithCheckpointInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c := &craftLog{t: t, app: app, reader: reader, key: key, heads: map[string]*craftHead{}, ctx: ctx, cancel: cancel, closeFn: shutdown}
	c.hs = httptest.NewServer(tiles.Handler(reader, tiles.Options{}))
	t.Cleanup(func() {
		c.hs.Close()
		shutdown(context.Background())
		cancel()
	})
	return c
}

// craft describes one crafted event; zero fields take sane defaults.
type craft struct {
	kind, session, actorType, actor string
	tenant                          string
	attrs                           map[string]any
	at                              time.Time // default now
	skipSeq                         bool      // leave a gap before this event
	badPrev                         bool      // break the chain
	raw                             []byte    // append these bytes instead of a leaf
}

// add appends events and returns their indices.
func (c *craftLog) add(cs ...craft) []uint64 {
	c.t.Helper()
	var futs []tessera.IndexFuture
	for _, cr := range cs {
		data := cr.raw
		if data == nil {
			data = c.leaf(cr)
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
		c.size = max(c.size, idx.Index+1)
	}
	return out
}

func (c *craftLog) leaf(cr craft) []byte {
	if cr.tenant == "" {
		cr.tenant = "acme"
	}
	if cr.actorType == "" {
		cr.actorType = "agent"
	}
	if cr.actor == "" {
		cr.actor = "agent-1"
	}
	if cr.at.IsZero() {
		cr.at = time.Now()
	}
	key := cr.tenant + "/" + cr.session
	h := c.heads[key]
	if h == nil {
		h = &craftHead{}
		c.heads[key] = h
	}
	id := make([]byte, 16)
	rand.Read(id)
	l := &event.Leaf{
		V: event.LeafVersion, ID: hex.EncodeToString(id), Kind: cr.kind, Time: cr.at.UTC().Format(event.TimeFormat),
		Tenant: cr.tenant, Session: cr.session, Actor: event.Actor{Type: cr.actorType, ID: cr.actor},
		Writer: &event.Writer{Token: "crafted", Via: event.ViaAPI},
	}
	if cr.attrs != nil {
		// Round-trip through JSON so numbers look as they do in real leaves.
		b, _ := json.Marshal(cr.attrs)
		json.Unmarshal(b, &l.Attributes)
	}
	if h.n > 0 {
		l.Seq = h.seq + 1
		if cr.skipSeq {
			l.Seq++
		}
		l.Prev = hex.EncodeToString(h.prev)
		if cr.badPrev {
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
func (c *craftLog) waitPublished() {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		raw, err := c.reader.ReadCheckpoint(context.Background())
		if err == nil {
			cp, _, err := checkpoint.Verify(raw, c.key)
			if err == nil && cp.Size >= c.size {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("checkpoint did not reach %d", c.size)
}

func (c *craftLog) config(state string) Config {
	return Config{
		Log: testClient(c.hs.URL, ""), LogKey: c.key, StateDir: state, Poll: 50 * time.Millisecond,
		Logger: quietLogger(),
	}
}

func attrs(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[fmt.Sprint(kv[i])] = kv[i+1]
	}
	return m
}

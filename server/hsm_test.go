package server

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	tclient "github.com/transparency-dev/tessera/client"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/internal/hsm"
	"github.com/llmaudittrail/llmaudittrail/internal/hsm/hsmtest"
	"github.com/llmaudittrail/llmaudittrail/verify"
)

// TestCheckpointsSignedInSoftHSM: with the signing key in a SoftHSM2 token,
// Tessera signs checkpoints through it, and Tessera's client and the log
// audit (verify.Audit) accept them with keys/log.pub; no signing key is on
// disk.
func TestCheckpointsSignedInSoftHSM(t *testing.T) {
	tk := hsmtest.New(t, "llmaudit-log")
	k, err := hsm.Generate(tk.URI("checkpoint-key"))
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last in first out: the server (registered below) stops
	// signing before the key closes.
	t.Cleanup(func() { k.Close() })
	dir := t.TempDir()
	s := newTestServerIn(t, dir, func(c *Config) { c.Origin = "hsm.test/log"; c.Keys.SigningKey = k })
	for i := range 20 {
		s.post(t, "s", "llm.request", map[string]int{"i": i})
	}
	s.waitCovered(t, 19)
	if _, err := os.Stat(filepath.Join(dir, LogKeyFile)); !os.IsNotExist(err) {
		t.Fatalf("%s exists with a PKCS#11 signing key (%v)", LogKeyFile, err)
	}
	pub, err := os.ReadFile(filepath.Join(dir, LogPubFile))
	if err != nil {
		t.Fatal(err)
	}
	v, err := checkpoint.NewVerifier(string(pub[:len(pub)-1]))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(s.ts.URL + "/")
	f, err := tclient.NewHTTPFetcher(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	cp, _, _, err := tclient.FetchCheckpoint(context.Background(), f.ReadCheckpoint, v, v.Name())
	if err != nil || cp.Size < 20 || cp.Origin != "hsm.test/log" {
		t.Fatalf("Tessera's client on the HSM-signed checkpoint: %+v, %v", cp, err)
	}
	lc, _ := client.New(s.ts.URL, client.WithToken(s.admin))
	rep, err := verify.Audit(context.Background(), verify.Config{Log: lc, LogKey: v, Logger: slog.New(slog.DiscardHandler)})
	if err != nil || !rep.OK() || rep.Entries < 20 {
		t.Fatalf("audit of the HSM-signed log: %v, %+v", err, rep)
	}
	// The same data directory refuses a file key next to the PKCS#11 one,
	// and another PKCS#11 key than the one its log.pub names.
	other, err := hsm.Generate(tk.URI("other-key"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, _, err := InitKeys(dir, "", KeySources{SigningKey: other}); err == nil {
		t.Fatal("InitKeys accepted a PKCS#11 key that log.pub does not name")
	}
}

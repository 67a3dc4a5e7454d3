package compliance

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/period"
	"github.com/llmaudittrail/llmaudittrail/internal/servertest"
	"github.com/llmaudittrail/llmaudittrail/profile"
	"github.com/llmaudittrail/llmaudittrail/retention"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// TestTestOnlyProfile: a profile registered from a test file
// (testonly_test.go) is a profile like the others: listed after them, its
// floor the one retention applies (the strictest of a tenant's profiles
// wins, a floor is never lowered below it), the server accepts it for
// --compliance, records its floor and refuses an erasure inside it, and its
// report is computed and rendered. An unknown profile is refused with the
// registered ones listed, the test-only one among them.
func TestTestOnlyProfile(t *testing.T) {
	want := []string{"part11", "sox", "eu-ai-act", "test-only"}
	if got := ProfileNames(); !slices.Equal(got, want) {
		t.Errorf("ProfileNames() = %v, want %v", got, want)
	}
	if got := profile.Names(); !slices.Equal(got, want) {
		t.Errorf("profile.Names() = %v, want %v", got, want)
	}

	// Retention reads its floor from the registry.
	floor := func(profiles []string, raise string) string {
		t.Helper()
		var r *period.Period
		if raise != "" {
			p, _ := period.Parse(raise)
			r = &p
		}
		f, err := retention.Floor(profiles, r)
		if err != nil {
			return "error: " + err.Error()
		}
		return f.String()
	}
	for _, c := range []struct {
		profiles []string
		raise    string
		want     string
	}{
		{[]string{"test-only"}, "", "3y6m"},
		{[]string{"eu-ai-act", "test-only"}, "", "3y6m"},
		{[]string{"test-only", "part11"}, "", "7y"},
		{[]string{"test-only"}, "4y", "4y"},
		{[]string{"test-only"}, "3y", "error: retention 3y is below the 3y6m the profiles [test-only] require; a floor can be raised, never lowered"},
	} {
		if got := floor(c.profiles, c.raise); got != c.want {
			t.Errorf("retention.Floor(%v, %q) = %s, want %s", c.profiles, c.raise, got, c.want)
		}
	}
	const unknown = `unknown compliance profile "gxp" (registered: part11, sox, eu-ai-act, test-only)`
	var ue *profile.UnknownError
	if _, err := retention.ParseProfiles("test-only, gxp"); !errors.As(err, &ue) || err.Error() != unknown {
		t.Errorf("retention.ParseProfiles(test-only, gxp): %v", err)
	}

	// The server's --compliance: an unknown profile stops it, the
	// test-only one is recorded and holds.
	open := func(profiles ...string) (*server.Server, error) {
		return server.Open(context.Background(), server.Config{DataDir: t.TempDir(), CheckpointInterval: 100 * time.Millisecond,
			Compliance: profiles, Logger: slog.New(slog.DiscardHandler)})
	}
	if srv, err := open("test-only", "gxp"); !errors.As(err, &ue) || err.Error() != unknown {
		if srv != nil {
			srv.Close(context.Background())
		}
		t.Fatalf("server.Open with gxp: %v", err)
	}
	fx := servertest.Start(t, func(cfg *server.Config) { cfg.Compliance = []string{"test-only"} })
	srv := fx.Srv
	ctx := context.Background()
	dpo := fx.Client(fx.Token(auth.Spec{Name: "dpo", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeWrite, auth.ScopePrivacy, auth.ScopeAudit}}))
	w, err := dpo.Append(ctx, []*event.Request{{Session: "case-1", Kind: "llm.request", Actor: event.Actor{Type: "agent", ID: "bot"}, Payload: json.RawMessage(`"notes"`)}})
	if err != nil {
		t.Fatal(err)
	}
	var ce *client.Error
	_, err = dpo.Erase(ctx, api.ErasureRequest{Target: api.Target{Session: "case-1"}, LegalBasis: "gdpr-art17-1a"})
	if !errors.As(err, &ce) || ce.StatusCode != http.StatusConflict || ce.Code != "retention_floor" {
		t.Fatalf("erasure inside the test-only floor: %v, want 409 retention_floor", err)
	}
	er, err := dpo.Erase(ctx, api.ErasureRequest{Target: api.Target{Session: "case-1"}, LegalBasis: "gdpr-art17-1a", OverrideReason: "court order"})
	if err != nil || !er.Override {
		t.Fatalf("erasure with an override: %+v, %v", er, err)
	}
	var sets, erased []string
	size, err := srv.Log().Reader().IntegratedSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range size {
		d, err := srv.Log().ReadLeaf(ctx, i, size)
		if err != nil {
			t.Fatal(err)
		}
		l, err := event.ParseLeaf(d)
		if err != nil {
			t.Fatal(err)
		}
		switch l.Kind {
		case "retention.set":
			sets = append(sets, l.Attributes.String("retention.floor"))
		case "erasure":
			erased = append(erased, l.Attributes.String("erasure.floor"))
		}
	}
	if !slices.Equal(sets, []string{"3y6m"}) || !slices.Equal(erased, []string{"3y6m"}) || w[0].Index >= size {
		t.Errorf("retention.set floors %v, erasure floors %v, want the test-only 3y6m", sets, erased)
	}

	// Its report: the shared retention control checks its floor.
	wd := newWorld(t)
	wd.build(nil)
	r := wd.compute("test-only", testParams())
	if r.Profile != "test-only" || r.Title != testOnly.Title || len(r.Controls) != 2 || r.Summary.Satisfied != 2 {
		t.Fatalf("report %s %q: %+v", r.Profile, r.Title, r.Controls)
	}
	if f := control(r, "test-only-1").Evidence.Facts["required_floor"]; f != "3y6m" {
		t.Errorf("required_floor %v, want 3y6m", f)
	}
	canon, _ := r.Canonical()
	if _, err := OSCAL(r, canon, wd.to); err != nil {
		t.Error(err)
	}
	if _, err := HTML(r, canon); err != nil {
		t.Error(err)
	}
}

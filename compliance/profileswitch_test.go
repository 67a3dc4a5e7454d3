package compliance

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/crafttest"
	"github.com/llmaudittrail/llmaudittrail/internal/servertest"
	"github.com/llmaudittrail/llmaudittrail/profile"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// TestProfileSwitch: what a profile switches on (part11: approvals gated on
// a signature in the reports, medical mode in the monitor) is what the
// server records for a scope running it, and the compliance
// configuration overrides each (controls.gates, monitor.medical_mode); a
// scope without profiles and configuration records nothing.
func TestProfileSwitch(t *testing.T) {
	settings := func(config string, profiles ...string) (Params, map[string]any, bool) {
		t.Helper()
		r, err := NewReporter([]byte(config), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		c, rp, record, err := r.ComplianceSettings(profiles)
		if err != nil {
			t.Fatal(err)
		}
		p := DefaultParams()
		var m map[string]any
		if err := json.Unmarshal(c, &p); err != nil || json.Unmarshal(rp, &m) != nil {
			t.Fatalf("%s %s: %v", c, rp, err)
		}
		return p, m, record
	}
	p, m, record := settings("", "part11", "sox")
	if !record || !reflect.DeepEqual(p.Gates, []Gate{approvalGate}) || m["medical_mode"] != true {
		t.Errorf("part11: gates %+v, rule params %v, record %v", p.Gates, m, record)
	}
	p, m, _ = settings("controls:\n  gates: []\nmonitor:\n  medical_mode: false\n", "part11")
	if len(p.Gates) != 0 || m["medical_mode"] != false {
		t.Errorf("overridden: gates %+v, rule params %v", p.Gates, m)
	}
	p, m, _ = settings("controls:\n  gates: [{tools: [payments.transfer], meaning: approved}]\n", "part11")
	if len(p.Gates) != 1 || !slices.Equal(p.Gates[0].Tools, []string{"payments.transfer"}) || m["medical_mode"] != true {
		t.Errorf("gates of the configuration: %+v, rule params %v", p.Gates, m)
	}
	if p, m, record := settings("", "sox"); record == false || len(p.Gates) != 0 || len(m) != 0 {
		t.Errorf("sox: gates %+v, rule params %v, record %v", p.Gates, m, record)
	}
	if _, _, record := settings(""); record {
		t.Error("no profile and no configuration: recorded")
	}
	if _, _, record := settings("controls:\n  sample_size: 3\n"); !record {
		t.Error("a configuration without profiles: not recorded")
	}
	// monitor report --config reads the file's own profiles too.
	if p, err := ParseParams([]byte("profiles: [part11]\n")); err != nil || !reflect.DeepEqual(p.Gates, []Gate{approvalGate}) {
		t.Errorf("ParseParams of a configuration naming part11: %+v %v", p.Gates, err)
	}
}

// TestApprovalGate: with part11's approval gate, an agent's approval
// (agent.decision, decision.outcome approved) needs an approved signature
// before it in its session (21 CFR 11.10(f)).
func TestApprovalGate(t *testing.T) {
	w := newWorld(t)
	var unsigned uint64
	w.build(map[string]func(){"during": func() {
		rec, rh := w.add(crafttest.Craft{Kind: "llm.response", Session: "ap-1", Attrs: crafttest.Attrs("gen_ai.response.model", "gpt-4o")})
		w.sign("dr-ada", adaTok, "ap-1", rec, rh, "approved", "signer+secret", "sess-ada-ap")
		w.add(crafttest.Craft{Kind: "agent.decision", Session: "ap-1", Attrs: crafttest.Attrs("decision.outcome", "approved")})
		unsigned, _ = w.add(crafttest.Craft{Kind: "agent.decision", Session: "ap-2", Attrs: crafttest.Attrs("decision.outcome", "approve")})
	}})
	p := testParams()
	p.Gates = append(p.Gates, approvalGate)
	c := control(w.compute("part11", p), "part11-11.10f")
	if c.Status != NotSatisfied || c.Evidence.OffendingTotal != 1 || c.Evidence.Offending[0].Index != unsigned ||
		!strings.Contains(c.Evidence.Offending[0].Reason, "agent.decision approve") || c.Evidence.Counts["gated_calls"] != 6 {
		t.Errorf("11.10(f): %s (%s) %v %+v", c.Status, c.Evidence.Summary, c.Evidence.Counts, c.Evidence.Offending)
	}
}

// TestProfileNamesStayInTheirFiles: a profile is named in its own file and
// in the registry, and nowhere else in the module's code; what it switches
// on in the monitor (its RuleParams) is named in its file alone, among the
// Go files (the rule files that use a parameter are not code).
func TestProfileNamesStayInTheirFiles(t *testing.T) {
	home := map[string]string{} // quoted literal -> the one file allowed to hold it
	for _, p := range Profiles() {
		if p.Name == testOnly.Name {
			continue
		}
		file := filepath.Join("compliance", strings.ReplaceAll(p.Name, "-", "")+".go")
		home[strconv.Quote(p.Name)] = file
		for k := range p.RuleParams {
			home[strconv.Quote(k)] = file
		}
	}
	root := ".."
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if want, ok := home[lit.Value]; ok && rel != want && rel != filepath.Join("compliance", "registry.go") {
				t.Errorf("%s names %s, which belongs in %s", rel, lit.Value, want)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestComplianceConfigRecorded: the server records a scope's
// compliance.config at start when it changed, once: a restart with the same
// profiles and configuration adds none, a changed override adds one, and
// the reports read the one in force (LogParams).
func TestComplianceConfigRecorded(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	open := func(config string) *servertest.Server {
		t.Helper()
		rep, err := NewReporter([]byte(config), "", slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return servertest.Start(t, func(cfg *server.Config) {
			cfg.DataDir, cfg.Compliance, cfg.Reporter = dir, []string{"part11"}, rep
		})
	}
	count := func(srv *server.Server) int {
		t.Helper()
		evs, err := srv.Log().Session(ctx, profile.DefaultTenant, event.SessionCompliance, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	for i, c := range []struct {
		config string
		want   int
	}{{"", 1}, {"", 1}, {"controls:\n  gates: []\n", 2}, {"controls:\n  gates: []\n", 2}} {
		fx := open(c.config)
		srv := fx.Srv
		n := count(srv)
		if n != c.want {
			t.Errorf("start %d: %d compliance.config events, want %d", i, n, c.want)
		}
		if i == 3 {
			key, _ := checkpoint.NewVerifier(srv.VerifierKey())
			lc := fx.Client(fx.Admin)
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				cp, _, err := srv.Log().Checkpoint(ctx)
				size, _ := srv.Log().Reader().IntegratedSize(ctx)
				if err == nil && cp.Size >= size {
					// A tenant without a scope of its own has the default's,
					// as recorded at the report's tree.
					evs, _ := srv.Log().Session(ctx, profile.DefaultTenant, event.SessionCompliance, 0, 100)
					for _, at := range []struct {
						size  uint64
						gates []Gate
					}{{evs[0].Index, []Gate{}}, {evs[0].Index + 1, []Gate{approvalGate}}, {cp.Size, []Gate{}}} {
						p, err := LogParams(ctx, Source{Log: lc, Key: key}, "acme", at.size)
						if err != nil || !reflect.DeepEqual(p.Gates, at.gates) {
							t.Errorf("LogParams at size %d: gates %+v (%v), want %+v", at.size, p.Gates, err, at.gates)
						}
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no checkpoint covers the log")
				}
			}
		}
		fx.Close()
	}
}

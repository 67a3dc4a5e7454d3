package layers

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// goList runs go list over the module's packages with format f.
func goList(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list %v: %v\n%s", args, err, stderr)
	}
	return string(out)
}

// moduleImports maps every package of the module to its non-test imports.
func moduleImports(t *testing.T) map[string][]string {
	out := map[string][]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(goList(t, "-f", "{{.ImportPath}} {{join .Imports \",\"}}", "./...")), "\n") {
		path, imps, _ := strings.Cut(line, " ")
		rel := strings.TrimPrefix(strings.TrimPrefix(path, Module), "/")
		var list []string
		if imps != "" {
			list = strings.Split(imps, ",")
		}
		out[rel] = list
	}
	return out
}

func TestTreeFollowsTheLayers(t *testing.T) {
	imports := moduleImports(t)
	if len(imports) < 10 {
		t.Fatalf("go list found only %d packages", len(imports))
	}
	for _, v := range Check(imports) {
		t.Error(v)
	}
}

// TestCheckCatchesViolations shows the rule failing on a fixture.
func TestCheckCatchesViolations(t *testing.T) {
	m := func(p string) string { return Module + "/" + p }
	fixture := map[string][]string{
		"event":             {"encoding/json"},
		"client":            {m("event"), m("log")},                             // protocol imports the engine
		"monitor":           {m("client"), m("server"), m("internal/sqlitedb")}, // a consumer past the client; its state in SQLite is an exception
		"console":           {m("client"), m("internal/sqlitedb")},              // a consumer with a database of its own
		"compliance":        {m("verify"), m("monitor")},                        // the audit is verify; the monitor links CEL
		"verify":            {m("client"), m("log")},                            // the audit reads the log through the client only
		"log":               {m("internal/testproc"), m("governance")},          // production code on a test helper; the engine on governance
		"governance":        {m("log"), m("signer"), m("vault")},                // governance goes through the engine, not around it
		"capture":           {m("client"), m("vault"), m("governance")},         // capture uses storage, and governance
		"cmd/x":             {m("server"), m("monitor")},                        // fine: mains compose
		"server":            nil,                                                // its exceptions, set below: fine
		"witness":           {m("checkpoint")},                                  // an exception it does not use
		"journal":           {m("api"), m("client")},                            // storage on the client, not only the wire types
		"newthing":          {m("event")},                                       // in no layer
		"internal/sqlitedb": {"database/sql"},
	}
	for _, e := range Exceptions["server"] {
		fixture["server"] = append(fixture["server"], m(e))
	}
	got := map[string]bool{}
	for _, v := range Check(fixture) {
		got[v.From+" -> "+v.To] = true
	}
	want := []string{"client -> log", "capture -> vault", "monitor -> server", "compliance -> monitor", "verify -> log", "log -> internal/testproc", "newthing -> ", "journal -> client",
		"console -> internal/sqlitedb", "witness -> internal/sqlitedb", "log -> governance", "governance -> vault", "capture -> governance"}
	for _, w := range want {
		if !got[w] {
			t.Errorf("Check missed %q (found %v)", w, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Check found %d violations, want %d: %v", len(got), len(want), got)
	}
}

// TestEngineLinksNoClient: the storage and engine layers share the HTTP
// API's wire types (api) with the server and the client, and link no
// client, not even through a package they import (go list -deps).
func TestEngineLinksNoClient(t *testing.T) {
	var pkgs []string
	for _, l := range Map {
		if slices.Contains(l.Deny, "client") {
			for _, p := range l.Packages {
				pkgs = append(pkgs, "./"+p)
			}
		}
	}
	if len(pkgs) == 0 {
		t.Fatal("no layer denies client")
	}
	for _, dep := range strings.Fields(goList(t, append([]string{"-deps"}, pkgs...)...)) {
		if dep == Module+"/client" {
			t.Fatalf("%s link %s", strings.Join(pkgs, " "), dep)
		}
	}
}

// heavy are modules a light package must not link: SQLite, Tessera's
// storage drivers and its appender (whose init registers OTel metrics).
var heavy = []string{"modernc.org/sqlite", "github.com/transparency-dev/tessera/storage", "github.com/transparency-dev/tessera\n"}

func heavyDeps(deps string) []string {
	var found []string
	for _, h := range heavy {
		if strings.Contains(deps, h) {
			found = append(found, strings.TrimSpace(h))
		}
	}
	return found
}

// TestLightPackages: what an agent embeds (event, client, capture) links
// neither SQLite nor Tessera's storage or appender.
func TestLightPackages(t *testing.T) {
	deps := goList(t, "-deps", "./event", "./client", "./capture") + "\n"
	if found := heavyDeps(deps); len(found) > 0 {
		t.Fatalf("event, client or capture depend on %v", found)
	}
	// The check finds them where they are.
	if found := heavyDeps(goList(t, "-deps", "./server") + "\n"); len(found) != len(heavy) {
		t.Fatalf("the dependency check found only %v in ./server", found)
	}
}

// TestLogServerLinksNoCEL: the monitor's CEL rule engine stays out of the
// log server (which computes reports and serves the console: both audit
// the log with verify).
func TestLogServerLinksNoCEL(t *testing.T) {
	deps := goList(t, "-deps", "./cmd/log-server")
	if strings.Contains(deps, "cel.dev/") {
		t.Fatal("cmd/log-server links cel.dev packages")
	}
	// The check finds them where they are.
	if !strings.Contains(goList(t, "-deps", "./monitor"), "cel.dev/cel-go") {
		t.Fatal("the dependency check found no CEL in ./monitor")
	}
}

func TestArchitectureDocShowsTheMap(t *testing.T) {
	doc, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), Table()) {
		t.Fatalf("docs/architecture.md does not hold the current layer table:\n%s", Table())
	}
}

// TestHookBinarySize builds the smallest recording agent (testdata/hookprobe)
// and plain net/http (testdata/plainhttp), stripped, and holds the goal of
// docs/performance.md: embedding the middleware costs an agent at most
// 7 MB of binary.
func TestHookBinarySize(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries")
	}
	size := func(pkg string) int64 {
		bin := filepath.Join(t.TempDir(), "bin")
		cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", bin, "./"+pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
		st, err := os.Stat(bin)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	hook, plain := size("testdata/hookprobe"), size("testdata/plainhttp")
	t.Logf("stripped: hookprobe %d bytes, plain net/http %d bytes", hook, plain)
	if hook > 7_000_000 {
		t.Fatalf("an agent embedding capture.Hook is %d bytes stripped, over the 7 MB goal (plain net/http: %d)", hook, plain)
	}
}

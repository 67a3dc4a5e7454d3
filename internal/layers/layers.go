// Package layers holds the project's layer rule: which package belongs to
// which layer, and which imports that forbids. The rule is drawn in
// docs/architecture.md and held by this package's tests against the tree.
package layers

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Module is the project's module path.
const Module = "github.com/llmaudittrail/llmaudittrail"

// A Layer is a named set of packages (paths relative to Module; a trailing
// "/..." matches everything below).
type Layer struct {
	Name     string
	Packages []string
	// Deny lists packages of lower layers that this layer's packages must
	// not import all the same.
	Deny []string
	What string // one line for the documentation
}

// Map lists the layers from the bottom up. A package may import packages of
// its own layer and of the layers below it, except what its layer denies.
var Map = []Layer{
	{Name: "format", Packages: []string{"event", "disclosure", "checkpoint", "api", "llmapi", "profile", "identity", "timestamp", "internal/strictjson", "internal/period", "internal/canonpath"},
		What: "the leaf, field-level disclosure (SD-JWT digests), checkpoints, witness policies, RFC 3161 time-stamp tokens, the HTTP API's wire types and receipts, the LLM provider and compliance profile registries, people and their roles, canonical request paths: no I/O"},
	{Name: "protocol", Packages: []string{"client", "signature", "verify"},
		What: "the one Go client of the HTTP API, and what is checked with it on the format alone: signatures, the log audit"},
	{Name: "storage", Packages: []string{"vault", "auth", "index", "journal", "internal/sqldb", "internal/sqlitedb", "internal/keyfile", "internal/keyring", "internal/hsm", "signer", "retention", "internal/metrics"},
		Deny: []string{"client"},
		What: "payloads, tokens, signers, holds and floors, the session index, the write-ahead journal (and the shared session heads), SQLite and MariaDB, key files, the kernel keyring, PKCS#11 keys, Prometheus metrics"},
	{Name: "engine", Packages: []string{"log", "tiles", "backend", "tsa"},
		Deny: []string{"client"},
		What: "the audit engine on Tessera, tlog-tiles reads, the storage it runs on (POSIX or S3 and MariaDB), RFC 3161 timestamps of its checkpoints"},
	{Name: "governance", Packages: []string{"governance"},
		Deny: []string{"client", "vault", "index", "journal", "internal/sqldb", "internal/sqlitedb", "tiles", "backend"},
		What: "signers and signatures, legal holds, erasure, retention floor records, token and report events: over the engine's append and read API, each recorded in the log"},
	{Name: "entry", Packages: []string{"server", "capture", "witness", "otlp"},
		Deny: []string{"vault", "auth", "index", "journal", "internal/sqldb", "internal/sqlitedb", "signer", "retention", "log", "tiles", "backend", "tsa", "governance"},
		What: "HTTP API, capture (proxy and middleware), witness, OpenTelemetry exports mapped to events"},
	{Name: "consumer", Packages: []string{"monitor", "compliance", "replay", "console"},
		Deny: []string{"vault", "auth", "index", "journal", "internal/sqldb", "internal/sqlitedb", "signer", "retention", "log", "tiles", "backend", "tsa", "governance", "server", "capture", "witness"},
		What: "read the log only through client: the monitor, compliance reports, session replay, the auditor console"},
	{Name: "main", Packages: []string{"cmd/...", "internal/cli", "internal/connlimit", "internal/settings"},
		What: "thin mains: flags, logging, signals, listener connection budgets, settings from flags and a YAML file"},
}

// Exceptions let one package import what its layer denies.
var Exceptions = map[string][]string{
	// The server is the composition root of the engine: it opens the
	// storage, the engine and the governance it serves. Only what it uses:
	// Check reports an exception the package does not need (an exception
	// as wide as the layer's deny list held nothing).
	"server": {"vault", "auth", "index", "internal/sqldb", "signer", "retention", "log", "tiles", "backend", "tsa", "governance"},
	// The witness and the monitor keep their own state in SQLite.
	"witness": {"internal/sqlitedb"},
	"monitor": {"internal/sqlitedb"},
}

// Forbidden lists imports that one package must not make although its
// layer allows them.
var Forbidden = map[string][]string{
	// The log audit is package verify; the monitor links its CEL rule
	// engine, which the log server, that serves the console and computes
	// reports, must not link.
	"compliance": {"monitor"},
	"console":    {"monitor"},
	"replay":     {"monitor"},
}

// TestOnly packages may import anything, and only tests may import them.
var TestOnly = []string{"internal/witnesstest", "internal/crafttest", "internal/testproc", "internal/layers", "internal/cli/clitest", "internal/hsm/hsmtest", "internal/providertest", "internal/tlstest", "internal/dbtest", "internal/storetest", "internal/benchlog", "internal/servertest", "internal/docstest", "internal/oidctest", "internal/tsatest"}

// Violation is one forbidden import.
type Violation struct {
	From, To string
	Why      string
}

func (v Violation) String() string { return fmt.Sprintf("%s imports %s: %s", v.From, v.To, v.Why) }

func match(pattern, pkg string) bool {
	if p, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == p || strings.HasPrefix(pkg, p+"/")
	}
	return pkg == pattern
}

// layerOf returns the index in Map of pkg's layer, -1 if none.
func layerOf(pkg string) int {
	for i, l := range Map {
		for _, p := range l.Packages {
			if match(p, pkg) {
				return i
			}
		}
	}
	return -1
}

func isTestOnly(pkg string) bool {
	return slices.ContainsFunc(TestOnly, func(p string) bool { return match(p, pkg) })
}

// Check returns every violation of the rule in imports, a map from each of
// the module's packages (relative paths) to its non-test imports (full
// import paths). A package in no layer is a violation too: every package
// must be placed.
func Check(imports map[string][]string) []Violation {
	var out []Violation
	pkgs := make([]string, 0, len(imports))
	for p := range imports {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, from := range pkgs {
		if isTestOnly(from) {
			continue
		}
		lf := layerOf(from)
		if lf < 0 {
			out = append(out, Violation{From: from, Why: "the package is in no layer (add it to layers.Map)"})
			continue
		}
		for _, exc := range Exceptions[from] {
			used := slices.ContainsFunc(imports[from], func(imp string) bool {
				to, ok := strings.CutPrefix(imp, Module+"/")
				return ok && match(exc, to)
			})
			if !used {
				out = append(out, Violation{from, exc, "an exception the package does not use (remove it from layers.Exceptions)"})
			}
		}
		for _, imp := range imports[from] {
			to, ok := strings.CutPrefix(imp, Module+"/")
			if !ok {
				continue
			}
			if isTestOnly(to) {
				out = append(out, Violation{from, to, "test-only packages are for tests"})
				continue
			}
			lt := layerOf(to)
			switch {
			case lt < 0:
				out = append(out, Violation{from, to, "the imported package is in no layer"})
			case lt > lf:
				out = append(out, Violation{from, to, fmt.Sprintf("%s (%s) is above %s (%s)", to, Map[lt].Name, from, Map[lf].Name)})
			case slices.ContainsFunc(Map[lf].Deny, func(p string) bool { return match(p, to) }) &&
				!slices.ContainsFunc(Exceptions[from], func(p string) bool { return match(p, to) }):
				out = append(out, Violation{from, to, fmt.Sprintf("the %s layer must not use %s", Map[lf].Name, to)})
			case slices.ContainsFunc(Forbidden[from], func(p string) bool { return match(p, to) }):
				out = append(out, Violation{from, to, fmt.Sprintf("%s must not use %s", from, to)})
			}
		}
	}
	return out
}

// Table renders Map as the Markdown table of docs/architecture.md.
func Table() string {
	var b strings.Builder
	b.WriteString("| layer | packages | what | may not import |\n|---|---|---|---|\n")
	for i := len(Map) - 1; i >= 0; i-- {
		l := Map[i]
		deny := "-"
		if len(l.Deny) > 0 {
			deny = "`" + strings.Join(l.Deny, "`, `") + "`"
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", l.Name, strings.Join(l.Packages, "`, `"), l.What, deny)
	}
	return b.String()
}

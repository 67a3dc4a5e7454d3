package layers

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// A Name is an event kind or an attribute key declared as a constant: a
// const named Kind... or Attr... (kind... or attr... unexported) whose
// value is a string literal. Together they are the registry of the names
// the log's leaves carry.
type Name struct {
	Value string
	Const string // package directory and name, "event.KindLLMRequest"
	Kind  bool   // a kind (Kind...), else an attribute key (Attr...)
	pos   token.Pos
}

var (
	kindConst = regexp.MustCompile(`^[Kk]ind[A-Z]`)
	attrConst = regexp.MustCompile(`^[Aa]ttr[A-Z]`)
	// dotted is the shape of a kind or key ("capture.outcome"): what a
	// literal in an attribute position looks like when it should have
	// been a constant.
	dotted = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$`)
)

// attrMethods read or write one attribute by its key (event.Attributes'
// readers, capture's attrs.set).
var attrMethods = map[string]bool{"String": true, "Strings": true, "Bool": true, "Float": true, "Number": true, "Uint": true, "Time": true, "set": true}

// CheckNames reads the non-test Go files below root (not testdata) and
// returns the registry of declared kinds and keys, and every place that
// breaks the rule that each is named once: a value declared by two
// constants of the same sort, a string literal that spells a declared
// kind or key (anywhere but its declaration), and a dotted string literal
// used as an attribute key (an index, a map literal's key, the argument of
// an attribute reader or setter) or as a Kind field, that no constant
// declares. Test files may spell them: they assert the wire format.
func CheckNames(root string) ([]Name, []string, error) {
	type file struct {
		rel string
		f   *ast.File
	}
	fset := token.NewFileSet()
	var files []file
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			n := d.Name()
			if p != root && (n == "testdata" || n == "node_modules" || strings.HasPrefix(n, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files = append(files, file{filepath.ToSlash(rel), f})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}

	var names []Name
	byValue := map[string][]Name{}
	declLit := map[*ast.BasicLit]bool{}
	for _, fl := range files {
		dir := filepath.ToSlash(filepath.Dir(fl.rel))
		for _, d := range fl.f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, id := range vs.Names {
					isKind, isAttr := kindConst.MatchString(id.Name), attrConst.MatchString(id.Name)
					if (!isKind && !isAttr) || i >= len(vs.Values) {
						continue
					}
					bl, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || bl.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(bl.Value)
					if err != nil {
						continue
					}
					n := Name{Value: v, Const: dir + "." + id.Name, Kind: isKind, pos: bl.Pos()}
					names = append(names, n)
					byValue[v] = append(byValue[v], n)
					declLit[bl] = true
				}
			}
		}
	}

	var out []string
	for v, ns := range byValue {
		sort.Slice(ns, func(i, j int) bool { return ns[i].Const < ns[j].Const })
		for _, kind := range []bool{true, false} {
			var same []string
			for _, n := range ns {
				if n.Kind == kind {
					same = append(same, n.Const)
				}
			}
			if len(same) > 1 {
				out = append(out, fmt.Sprintf("%q is declared %d times: %s", v, len(same), strings.Join(same, ", ")))
			}
		}
	}

	for _, fl := range files {
		report := func(bl *ast.BasicLit, msg string) {
			out = append(out, fmt.Sprintf("%s:%d: %s", fl.rel, fset.Position(bl.Pos()).Line, msg))
		}
		lit := func(e ast.Expr) (*ast.BasicLit, string, bool) {
			bl, ok := e.(*ast.BasicLit)
			if !ok || bl.Kind != token.STRING {
				return nil, "", false
			}
			v, err := strconv.Unquote(bl.Value)
			return bl, v, err == nil
		}
		// undeclared reports a dotted literal in an attribute or kind
		// position that no constant declares.
		undeclared := func(e ast.Expr, what string) {
			if bl, v, ok := lit(e); ok && dotted.MatchString(v) && len(byValue[v]) == 0 {
				report(bl, fmt.Sprintf("%s %q is not declared (add a Kind or Attr constant in the package that owns it, event/kinds.go or event/attributes.go)", what, v))
			}
		}
		ast.Inspect(fl.f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.ImportSpec:
				return false
			case *ast.BasicLit:
				if _, v, ok := lit(x); ok && !declLit[x] {
					if ns := byValue[v]; len(ns) > 0 {
						report(x, fmt.Sprintf("%q spells %s: name the constant", v, ns[0].Const))
					}
				}
			case *ast.IndexExpr:
				undeclared(x.Index, "attribute key")
			case *ast.KeyValueExpr:
				if id, ok := x.Key.(*ast.Ident); ok && id.Name == "Kind" {
					undeclared(x.Value, "kind")
				} else {
					undeclared(x.Key, "attribute key")
				}
			case *ast.CallExpr:
				if sel, ok := x.Fun.(*ast.SelectorExpr); ok && attrMethods[sel.Sel.Name] && len(x.Args) > 0 {
					undeclared(x.Args[0], "attribute key")
				}
			}
			return true
		})
	}
	sort.Strings(out)
	sort.Slice(names, func(i, j int) bool { return names[i].Const < names[j].Const })
	return names, out, nil
}

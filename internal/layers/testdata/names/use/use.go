package use

type attrs map[string]any

func (attrs) String(string) string { return "" }

type request struct{ Kind string }

func use(a attrs) (request, map[string]int, string) {
	k := "fix.kind"
	a["fix.key"] = k
	a["fix.undeclared"] = 1
	_ = a.String("fix.read")
	r := request{Kind: "fix.other"}
	m := map[string]int{"fix.map": 1, "x": 2}
	return r, m, "not.a.key.elsewhere"
}

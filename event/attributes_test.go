package event

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// TestAttributes: each reader takes the value as ParseLeaf decodes it and
// answers the zero value (false) for a missing or ill-typed one.
func TestAttributes(t *testing.T) {
	l, err := ParseLeaf([]byte(`{"v":1,"id":"a","kind":"tool.call","time":"2026-01-01T00:00:00.000000000Z","tenant":"t","session":"s","seq":0,` +
		`"actor":{"type":"agent","id":"x"},"attributes":{"s":"text","n":42,"neg":-1,"f":2.5,"big":18446744073709551615,"b":true,` +
		`"list":["a",1,"b"],"when":"2026-01-02T03:04:05.000000006Z","notime":"yesterday"}}`))
	if err != nil {
		t.Fatal(err)
	}
	a := l.Attributes
	if a.String("s") != "text" || a.String("n") != "" || a.String("missing") != "" {
		t.Errorf("String: %q %q", a.String("s"), a.String("n"))
	}
	if !a.Bool("b") || a.Bool("s") {
		t.Error("Bool")
	}
	if got := a.Strings("list"); !slices.Equal(got, []string{"a", "b"}) || a.Strings("s") != nil {
		t.Errorf("Strings: %q", got)
	}
	for _, c := range []struct {
		k    string
		want uint64
		ok   bool
	}{{"n", 42, true}, {"big", 1<<64 - 1, true}, {"neg", 0, false}, {"f", 0, false}, {"s", 0, false}, {"missing", 0, false}} {
		if n, ok := a.Uint(c.k); n != c.want || ok != c.ok {
			t.Errorf("Uint(%s) = %d, %v", c.k, n, ok)
		}
	}
	if f, ok := a.Float("f"); f != 2.5 || !ok || a.Number("n") != 42 || a.Number("s") != 0 {
		t.Errorf("Float/Number: %v %v", f, ok)
	}
	if tm, ok := a.Time("when"); !ok || !tm.Equal(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)) {
		t.Errorf("Time: %v %v", tm, ok)
	}
	if _, ok := a.Time("notime"); ok {
		t.Error("Time of a non-time")
	}
	// Attributes built in memory (float64, int64) read the same.
	m := Attributes{"f": float64(7), "i": int64(3), "n": json.Number("x")}
	if n, ok := m.Uint("f"); n != 7 || !ok {
		t.Error("Uint of a float64")
	}
	if n, ok := m.Uint("i"); n != 3 || !ok {
		t.Error("Uint of an int64")
	}
	if _, ok := m.Float("n"); ok {
		t.Error("Float of a malformed json.Number")
	}
	var nilAttrs Attributes
	if nilAttrs.String("x") != "" {
		t.Error("nil Attributes")
	}
}

package capture

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestReadBody: bodies of declared and unknown lengths around the chunk
// sizes and the limit are read whole or refused, and every byte taken
// from the budget is given back.
func TestReadBody(t *testing.T) {
	const limit = 3*budgetStep + 10
	for _, tc := range []struct {
		name     string
		size     int
		declared bool
		want     string // "", "too large", "short", "over budget"
	}{
		{"empty", 0, true, ""},
		{"empty, unknown length", 0, false, ""},
		{"small", 100, true, ""},
		{"small, unknown length", 100, false, ""},
		{"one step", budgetStep, true, ""},
		{"one step, unknown length", budgetStep, false, ""},
		{"steps and a byte", 2*budgetStep + 1, true, ""},
		{"steps and a byte, unknown length", 2*budgetStep + 1, false, ""},
		{"the limit", limit, true, ""},
		{"the limit, unknown length", limit, false, ""},
		{"over the limit", limit + 1, true, "too large"},
		{"over the limit, unknown length", limit + 1, false, "too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBodyBudget(8 * budgetStep)
			data := bytes.Repeat([]byte("z"), tc.size)
			r := httptest.NewRequest("POST", "/", io.MultiReader(bytes.NewReader(data)))
			r.ContentLength = -1
			if tc.declared {
				r.ContentLength = int64(tc.size)
			}
			body, h, err := readBody(httptest.NewRecorder(), r, limit, b, "c")
			var mbe *http.MaxBytesError
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.want == "too large" && !errors.As(err, &mbe):
				t.Fatalf("error %v, want MaxBytesError", err)
			case tc.want == "" && !bytes.Equal(body, data):
				t.Fatalf("body of %d bytes, want %d", len(body), len(data))
			}
			if err == nil {
				if h.n < int64(len(body)) || h.n > int64(len(body))+budgetStep {
					t.Errorf("holds %d for a body of %d", h.n, len(body))
				}
				h.release()
			}
			if b.used != 0 || len(b.byClient) != 0 {
				t.Errorf("budget used %d, clients %v after release", b.used, b.byClient)
			}
		})
	}
	// A declared length is taken as the bytes arrive: a body that declares
	// more than the budget but sends a step is read as far as it goes.
	b := NewBodyBudget(2 * budgetStep)
	r := httptest.NewRequest("POST", "/", bytes.NewReader([]byte("abc")))
	r.ContentLength = limit
	if _, _, err := readBody(httptest.NewRecorder(), r, limit, b, "c"); err == nil || errors.Is(err, errOverBudget) || errors.Is(err, errOverShare) {
		t.Errorf("a short body declaring %d: %v, want a read error", limit, err)
	}
	if b.used != 0 {
		t.Errorf("used %d after a failed read", b.used)
	}
	// One client holds at most its share; another still fits.
	b = NewBodyBudget(4 * budgetStep)
	if b.take("a", 2*budgetStep) != nil || !errors.Is(b.take("a", 1), errOverShare) || b.take("b", 2*budgetStep) != nil || !errors.Is(b.take("c", 1), errOverBudget) {
		t.Errorf("shares: used %d %v", b.used, b.byClient)
	}
	// fit raises the share to the largest body.
	b.give("b", 2*budgetStep)
	b.fit(3 * budgetStep)
	if b.take("a", budgetStep) != nil || !errors.Is(b.take("a", 1), errOverShare) {
		t.Errorf("share after fit: used %d %v", b.used, b.byClient)
	}
}

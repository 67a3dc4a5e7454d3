package server

import (
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestQueryGet: queryGet answers as r.URL.Query().Get does, on queries
// made of the characters that matter to url.ParseQuery.
func TestQueryGet(t *testing.T) {
	parts := []string{"wait", "tenant", "=", "&", ";", "%", "%3", "%77", "%zz", "+", "a", "durable", "%26", "%3D", "wa", "it"}
	r := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		var q string
		for range r.IntN(10) {
			q += parts[r.IntN(len(parts))]
		}
		req := &http.Request{URL: &url.URL{RawQuery: q}}
		for _, key := range []string{"wait", "tenant", "a", "", "w+a", "wa it"} {
			if got, want := queryGet(req, key), req.URL.Query().Get(key); got != want {
				t.Fatalf("query %q, key %q: %q, Query().Get %q", q, key, got, want)
			}
		}
	}
	// Past url.ParseQuery's bound on the parameters, it has none.
	q := "wait=durable" + strings.Repeat("&x=1", 10000)
	req := &http.Request{URL: &url.URL{RawQuery: q}}
	if got, want := queryGet(req, "wait"), req.URL.Query().Get("wait"); got != want {
		t.Fatalf("10,001 parameters: %q, Query().Get %q", got, want)
	}
}

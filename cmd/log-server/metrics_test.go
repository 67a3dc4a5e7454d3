package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestMetricsListen: --metrics-listen serves /metrics to anyone and
// nothing else; on the API listener /metrics needs a token.
func TestMetricsListen(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	maddr := freeAddr(t)
	p := startWith(t, bin, dir, nil, "--metrics-listen", maddr)
	get := func(url, tok string) (int, string) {
		req, _ := http.NewRequest("GET", url, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// An event, so that the engine and the index have run.
	if r := post(t, p.url, readToken(t, dir), "metrics-listen"); r == nil {
		t.Fatal("POST /v1/events failed")
	}
	code, body := get("http://"+maddr+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics on --metrics-listen = %d %.200s", code, body)
	}
	for _, want := range []string{"llmaudit_appends_total", "llmaudit_index_lag_entries", "llmaudit_tessera_pushback_total", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(body, want) {
			t.Errorf("--metrics-listen /metrics lacks %s", want)
		}
	}
	if code, _ := get("http://"+maddr+"/v1/sessions", ""); code != http.StatusNotFound {
		t.Errorf("GET /v1/sessions on --metrics-listen = %d, want 404", code)
	}
	if code, _ := get(p.url+"/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics on --listen without a token = %d, want 401", code)
	}
	if code, body := get(p.url+"/metrics", readToken(t, dir)); code != http.StatusOK || !strings.Contains(body, "llmaudit_appends_total") {
		t.Errorf("GET /metrics on --listen with the admin token = %d %.200s", code, body)
	}
}

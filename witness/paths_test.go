package witness_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/internal/canonpath"
	"github.com/llmaudittrail/llmaudittrail/internal/witnesstest"
	"github.com/llmaudittrail/llmaudittrail/witness"
)

// sendRaw sends one request with target exactly as given on the request
// line, and returns the status and body.
func sendRaw(t *testing.T, addr, method, target string, body []byte) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", method, target, addr, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestEveryRouteCanonicalPath (issue #24, "one path, one decision"): every
// route of the witness (witness.Routes, what Handler registers) is refused
// with 400 in each non-canonical spelling, and a valid add-checkpoint sent
// to such a path is not cosigned; the canonical path still works.
func TestEveryRouteCanonicalPath(t *testing.T) {
	const origin = "log.test/paths"
	l := witnesstest.NewLog(t, origin)
	l.Append(5)
	tw := newTestWitness(t, l)
	addr := strings.TrimPrefix(tw.srv.URL, "http://")
	req := l.AddRequest(t, 0, 5)
	routes := witness.Routes()
	if len(routes) != 2 {
		t.Fatalf("witness.Routes() = %q, want the 2 routes of c2sp.org/tlog-witness and the monitoring endpoint", routes)
	}
	for _, route := range routes {
		method, pattern, _ := strings.Cut(route, " ")
		path := strings.ReplaceAll(pattern, "{id}", checkpoint.OriginID(origin))
		if strings.ContainsAny(path, "{}") {
			t.Fatalf("route %s: add its parameter to the test", route)
		}
		for _, v := range canonpath.Variants(path) {
			t.Run(method+" "+v.Path, func(t *testing.T) {
				code, body := sendRaw(t, addr, method, v.Path, req)
				if code != http.StatusBadRequest || !strings.Contains(body, "not in canonical form") {
					t.Fatalf("%s: %s %s = %d %q, want 400 not in canonical form", v.Name, method, v.Path, code, body)
				}
			})
		}
	}
	if _, err := tw.w.Checkpoint(t.Context(), origin); !errors.Is(err, witness.ErrNotCosigned) {
		t.Fatalf("after the refused requests, Checkpoint = %v, want ErrNotCosigned", err)
	}
	if code, body := sendRaw(t, addr, "POST", "/add-checkpoint", req); code != http.StatusOK {
		t.Fatalf("POST /add-checkpoint = %d %q", code, body)
	}
	if code, body := sendRaw(t, addr, "GET", "/"+checkpoint.OriginID(origin)+"/checkpoint", nil); code != http.StatusOK || !bytes.Contains([]byte(body), []byte(origin)) {
		t.Fatalf("GET checkpoint = %d %q", code, body)
	}
}

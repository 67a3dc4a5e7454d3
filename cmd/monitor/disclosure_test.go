package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// TestVerifyDisclosureCommand: a saved disclosure of two fields verifies
// offline with the log key alone and prints the two fields; the same
// answer with a changed value, a changed salt or another log's key does
// not (exit 1); no key is exit 2.
func TestVerifyDisclosureCommand(t *testing.T) {
	l := startLog(t)
	get := func(method, path string, body []byte) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, l.hs.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+l.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s = %d %s", method, path, resp.StatusCode, b)
		}
		return b
	}
	payload := `{"model":"claude-sonnet-4","messages":[{"role":"user","content":"Patient Jane Doe"}],"tools":[{"name":"lookup_record","description":"Reads a record"}],"usage":{"input_tokens":42,"output_tokens":7}}`
	var ev api.EventResponse
	json.Unmarshal(get("POST", "/v1/events", []byte(`{"session":"d","kind":"llm.request","actor":{"type":"agent","id":"a1"},"payload":`+payload+`}`)), &ev)
	answer := get("GET", fmt.Sprintf("/v1/events/%d/disclosure?fields=%s", ev.Index, url.QueryEscape("model,tools[*].name")), nil)

	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, answer, 0o644)
	tampered := func(name string, f func([]any)) string {
		var d map[string]any
		json.Unmarshal(answer, &d)
		ds := d["disclosures"].([]any)
		for i, x := range ds {
			raw, _ := base64.RawURLEncoding.DecodeString(x.(string))
			var a []any
			json.Unmarshal(raw, &a)
			if len(a) == 3 && a[1] == "model" {
				f(a)
				b, _ := json.Marshal(a)
				ds[i] = base64.RawURLEncoding.EncodeToString(b)
			}
		}
		b, _ := json.Marshal(d)
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	value := tampered("value.json", func(a []any) { a[2] = "gpt-4o" })
	salt := tampered("salt.json", func(a []any) { a[0] = "AAAAAAAAAAAAAAAAAAAAAA" })

	r := startBinary(t, "verify-disclosure", "--log-key", l.pub, good)
	<-r.done
	out := r.out.String()
	if code := r.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(out, "OK "+good+fmt.Sprintf(": entry %d", ev.Index)) ||
		!strings.Contains(out, "\n  model = \"claude-sonnet-4\"\n") || !strings.Contains(out, "\n  tools[0].name = \"lookup_record\"\n") ||
		strings.Contains(out, "Jane") || strings.Contains(out, "usage") {
		t.Fatalf("exit %d: %s %s", code, out, r.errOut.String())
	}
	r = startBinary(t, "verify-disclosure", "--log-key", l.pub, good, value, salt)
	<-r.done
	out = r.out.String()
	if code := r.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(out, "FAIL "+value+": disclosure is not referenced") ||
		!strings.Contains(out, "FAIL "+salt+": disclosure is not referenced") || !strings.Contains(out, "OK "+good) {
		t.Fatalf("exit %d: %s", code, out)
	}
	other := startLog(t)
	r = startBinary(t, "verify-disclosure", "--log-key", other.pub, good)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(r.out.String(), "FAIL "+good+": receipt checkpoint does not verify") {
		t.Fatalf("another log's key: exit %d: %s", code, r.out.String())
	}
	r = startBinary(t, "verify-disclosure", good)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 2 {
		t.Fatalf("no key: exit %d: %s %s", code, r.out.String(), r.errOut.String())
	}
}

// TestVerifyDisclosureCommandBody: on a log of leaf version 4 a saved
// disclosure of body fields (the kind, an attribute) and a payload field
// verifies offline and prints them, and nothing else of the event; the
// same answer with a changed attribute value does not (exit 1).
func TestVerifyDisclosureCommandBody(t *testing.T) {
	l := startLog(t, func(c *server.Config) { c.LeafVersion = event.LeafVersionFields })
	do := func(method, path string, body []byte) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, l.hs.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+l.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s = %d %s", method, path, resp.StatusCode, b)
		}
		return b
	}
	var ev api.EventResponse
	json.Unmarshal(do("POST", "/v1/events", []byte(`{"session":"case-secret","kind":"tool.call","actor":{"type":"agent","id":"a1"},`+
		`"attributes":{"gen_ai.tool.name":"lookup_record","gen_ai.tool.call.id":"call-secret"},"payload":{"name":"lookup_record","arguments":{"patient":"Jane Doe"}}}`)), &ev)
	q := url.Values{"fields": {"name"}, "body": {`kind,attributes["gen_ai.tool.name"]`}}
	answer := do("GET", fmt.Sprintf("/v1/events/%d/disclosure?%s", ev.Index, q.Encode()), nil)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, answer, 0o644)
	var d map[string]any
	json.Unmarshal(answer, &d)
	ds := d["body_disclosures"].([]any)
	for i, x := range ds {
		raw, _ := base64.RawURLEncoding.DecodeString(x.(string))
		var a []any
		json.Unmarshal(raw, &a)
		if len(a) == 3 && a[1] == "gen_ai.tool.name" {
			a[2] = "search"
			b, _ := json.Marshal(a)
			ds[i] = base64.RawURLEncoding.EncodeToString(b)
		}
	}
	b, _ := json.Marshal(d)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, b, 0o644)

	r := startBinary(t, "verify-disclosure", "--log-key", l.pub, good, bad)
	<-r.done
	out := r.out.String()
	if code := r.cmd.ProcessState.ExitCode(); code != 1 ||
		!strings.Contains(out, "OK "+good+fmt.Sprintf(": entry %d", ev.Index)) || !strings.Contains(out, "id "+ev.ID) ||
		!strings.Contains(out, "\n  body: kind = \"tool.call\"\n") ||
		!strings.Contains(out, "\n  body: attributes[\"gen_ai.tool.name\"] = \"lookup_record\"\n") ||
		!strings.Contains(out, "\n  name = \"lookup_record\"\n") ||
		!strings.Contains(out, "FAIL "+bad+": the body's fields: disclosure is not referenced") {
		t.Fatalf("exit %d: %s %s", code, out, r.errOut.String())
	}
	for _, secret := range []string{"case-secret", "call-secret", "Jane"} {
		if strings.Contains(out, secret) {
			t.Errorf("the output shows %q", secret)
		}
	}
}

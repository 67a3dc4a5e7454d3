package disclosure

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

// needSDJWT returns node's path, or skips when node or testdata/sdjwt's
// packages are missing: unless LLMAUDIT_TEST_REQUIRE names node, then it
// fails.
func needSDJWT(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat("../testdata/sdjwt/node_modules/@sd-jwt/decode/package.json")
	}
	if err == nil {
		return p
	}
	for _, r := range strings.Split(os.Getenv("LLMAUDIT_TEST_REQUIRE"), ",") {
		if strings.TrimSpace(r) == "node" {
			t.Fatalf("node and @sd-jwt are required (LLMAUDIT_TEST_REQUIRE=%s): %v (npm ci --prefix testdata/sdjwt)", os.Getenv("LLMAUDIT_TEST_REQUIRE"), err)
		}
	}
	t.Skipf("node or @sd-jwt missing (npm ci --prefix testdata/sdjwt; .ci/run does): %v", err)
	return ""
}

type sdjwtReading struct {
	Digests []string `json:"digests"`
	Claims  any      `json:"claims"`
}

// readWithSDJWT has the npm @sd-jwt packages compute the digest of every
// disclosure and unpack the root with them.
func readWithSDJWT(t *testing.T, node string, sd, disclosures []string) sdjwtReading {
	t.Helper()
	in, _ := json.Marshal(map[string]any{"root": json.RawMessage(Root(sd)), "disclosures": disclosures})
	cmd := exec.Command(node, "check.mjs")
	cmd.Dir = "../testdata/sdjwt"
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node check.mjs: %v\n%s", err, stderr.String())
	}
	var r sdjwtReading
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("node's answer %s: %v", out, err)
	}
	return r
}

// plain decodes v's JSON as encoding/json does without UseNumber, so that
// both readings compare as the same Go values.
func plain(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	json.Unmarshal(b, &out)
	return out
}

// TestSDJWTInterop: a disclosure of two fields, and of the whole payload,
// read by an SD-JWT implementation we did not write (npm @sd-jwt/decode
// 0.19.0 with @sd-jwt/crypto-nodejs, pinned in testdata/sdjwt): its digest
// of every disclosure is ours, and it unpacks the root to what Verify
// returns. A disclosure with a changed value or salt gets another digest
// there too, and it unpacks without it, while Verify refuses it. The
// trees have decoy digests (V2) in every _sd list and array, which it
// ignores as RFC 9901 says; a V1 tree (no decoys) reads the same.
func TestSDJWTInterop(t *testing.T) {
	node := needSDJWT(t)
	tr, err := Build(testSalt, []byte(chatRequest))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Version != V2 || len(tr.SD) != MinBucket {
		t.Fatalf("version %d, %d root digests for 5 fields: no decoys", tr.Version, len(tr.SD))
	}
	old, _ := BuildVersion(V1, testSalt, []byte(chatRequest))
	two, _ := tr.Select(mustFields(t, "model,usage"))
	oldTwo, _ := old.Select(mustFields(t, "model,usage"))
	names, _ := tr.Select(mustFields(t, "tools[*].function.name"))
	for _, c := range []struct {
		name string
		tr   *Tree
		ds   []string
		want string
	}{
		{"two fields", tr, two, `{"model":"gpt-4o","usage":{"completion_tokens":7,"prompt_tokens":42}}`},
		{"every field", tr, tr.Disclosures(), chatRequest},
		{"array elements among decoys", tr, names, `{"tools":[{"function":{"name":"lookup_record"}},{"function":{"name":"schedule"}}]}`},
		{"two fields, version 1", old, oldTwo, `{"model":"gpt-4o","usage":{"completion_tokens":7,"prompt_tokens":42}}`},
		{"every field, version 1", old, old.Disclosures(), chatRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := c.tr
			v, err := Verify(tr.Hash(), tr.SD, c.ds)
			if err != nil {
				t.Fatal(err)
			}
			r := readWithSDJWT(t, node, tr.SD, c.ds)
			for i, d := range c.ds {
				if r.Digests[i] != Digest(d) {
					t.Errorf("disclosures[%d]: @sd-jwt digest %s, ours %s", i, r.Digests[i], Digest(d))
				}
			}
			var want any
			json.Unmarshal([]byte(c.want), &want)
			if got := plain(t, r.Claims); !reflect.DeepEqual(got, want) {
				t.Errorf("@sd-jwt unpacks to %v, want %v", got, want)
			}
			if got := plain(t, v.Claims); !reflect.DeepEqual(got, want) {
				t.Errorf("Verify unpacks to %v, want %v", got, want)
			}
		})
	}
	for _, c := range []struct {
		name string
		f    func([]any)
	}{
		{"changed value", func(a []any) { a[2] = "gpt-3.5-turbo" }},
		{"changed salt", func(a []any) { a[0] = "c2FsdHNhbHRzYWx0c2FsdA" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			model := two[0] // the model's disclosure comes first
			bad := []string{tamper(t, model, c.f), two[1]}
			r := readWithSDJWT(t, node, tr.SD, bad)
			if r.Digests[0] == Digest(model) || r.Digests[0] != Digest(bad[0]) {
				t.Errorf("@sd-jwt digest of the changed disclosure: %s (original %s)", r.Digests[0], Digest(model))
			}
			if m, _ := r.Claims.(map[string]any); m == nil || m["model"] != nil || m["usage"] == nil {
				t.Errorf("@sd-jwt unpacks the changed disclosure to %v", r.Claims)
			}
			if _, err := Verify(tr.Hash(), tr.SD, bad); !errors.Is(err, ErrUnreferenced) {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

// TestSDJWTInteropBody: the body disclosures of a leaf version 4 envelope
// (testdata/envelope-vector-v4.json: the event's kind and one attribute,
// whose name has dots) read by npm @sd-jwt/decode: its digests are ours,
// it unpacks the body root to those two fields, and a changed kind gets
// another digest and is left out.
func TestSDJWTInteropBody(t *testing.T) {
	node := needSDJWT(t)
	raw, err := os.ReadFile("../testdata/envelope-vector-v4.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Fields      string   `json:"fields"`
		SD          []string `json:"sd"`
		Disclosures []string `json:"disclosures"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	const want = `{"kind":"llm.request","attributes":{"gen_ai.request.model":"gpt-4o"}}`
	if _, err := Verify(v.Fields, v.SD, v.Disclosures); err != nil {
		t.Fatal(err)
	}
	r := readWithSDJWT(t, node, v.SD, v.Disclosures)
	for i, d := range v.Disclosures {
		if r.Digests[i] != Digest(d) {
			t.Errorf("disclosures[%d]: @sd-jwt digest %s, ours %s", i, r.Digests[i], Digest(d))
		}
	}
	var w any
	json.Unmarshal([]byte(want), &w)
	if got := plain(t, r.Claims); !reflect.DeepEqual(got, w) {
		t.Errorf("@sd-jwt unpacks the body to %v, want %v", got, w)
	}
	bad := append([]string(nil), v.Disclosures...)
	for i, d := range bad {
		if p, err := decode(d); err == nil && p.member && p.name == "kind" {
			bad[i] = tamper(t, d, func(a []any) { a[2] = "agent.decision" })
		}
	}
	r = readWithSDJWT(t, node, v.SD, bad)
	if m, _ := r.Claims.(map[string]any); m == nil || m["kind"] != nil || m["attributes"] == nil {
		t.Errorf("@sd-jwt unpacks a changed kind to %v", r.Claims)
	}
	if _, err := Verify(v.Fields, v.SD, bad); !errors.Is(err, ErrUnreferenced) {
		t.Errorf("Verify of a changed kind: %v", err)
	}
}

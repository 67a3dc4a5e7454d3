package disclosure

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// chatRequest is an OpenAI chat completions request with a tool.
const chatRequest = `{"model":"gpt-4o","messages":[{"role":"system","content":"You are a triage assistant."},` +
	`{"role":"user","content":"Patient Jane Doe, 1985-03-02, reports chest pain."}],` +
	`"tools":[{"type":"function","function":{"name":"lookup_record","parameters":{"type":"object"}}},` +
	`{"type":"function","function":{"name":"schedule","parameters":{"type":"object"}}}],` +
	`"usage":{"prompt_tokens":42,"completion_tokens":7},"temperature":0.2}`

var testSalt = bytes.Repeat([]byte{7}, 32)

func mustFields(t *testing.T, s string) []Field {
	t.Helper()
	f, err := ParseFields(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSelectAndVerify(t *testing.T) {
	tr, err := Build(testSalt, []byte(chatRequest))
	if err != nil {
		t.Fatal(err)
	}
	ds, unmatched := tr.Select(mustFields(t, "model,usage,tools[*].function.name,messages[*].role,absent"))
	if !reflect.DeepEqual(unmatched, []string{"absent"}) {
		t.Errorf("unmatched = %v", unmatched)
	}
	v, err := Verify(tr.Hash(), tr.SD, ds)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(v.Claims)
	want := `{"messages":[{"role":"system"},{"role":"user"}],"model":"gpt-4o","tools":[{"function":{"name":"lookup_record"}},{"function":{"name":"schedule"}}],"usage":{"completion_tokens":7,"prompt_tokens":42}}`
	if string(got) != want {
		t.Errorf("claims\n got %s\nwant %s", got, want)
	}
	if strings.Contains(string(got), "Jane") {
		t.Error("content disclosed")
	}
	var paths []string
	for _, f := range v.Fields {
		if !f.Partial {
			paths = append(paths, FormatPath(f.Path))
		}
	}
	wantPaths := []string{"messages[0].role", "messages[1].role", "model", "tools[0].function.name", "tools[1].function.name",
		"usage", "usage.completion_tokens", "usage.prompt_tokens"}
	if !reflect.DeepEqual(paths, wantPaths) {
		t.Errorf("complete fields %v, want %v", paths, wantPaths)
	}
	// Every disclosure verifies: the whole payload comes back.
	all, err := Verify(tr.Hash(), tr.SD, tr.Disclosures())
	if err != nil {
		t.Fatal(err)
	}
	var orig map[string]any
	d := json.NewDecoder(strings.NewReader(chatRequest))
	d.UseNumber()
	d.Decode(&orig)
	if !reflect.DeepEqual(all.Claims, orig) {
		t.Errorf("all disclosures unpack to %v", all.Claims)
	}
}

func TestDeterministic(t *testing.T) {
	a, _ := Build(testSalt, []byte(chatRequest))
	b, _ := Build(testSalt, []byte(chatRequest))
	if a.Hash() != b.Hash() || !reflect.DeepEqual(a.Disclosures(), b.Disclosures()) {
		t.Error("two builds differ")
	}
	c, _ := Build(bytes.Repeat([]byte{8}, 32), []byte(chatRequest))
	if c.Hash() == a.Hash() {
		t.Error("another salt, same root")
	}
	if len(a.Disclosures()) != a.Len() || a.Len() != 25 {
		t.Errorf("%d disclosures", a.Len())
	}
}

// tamper re-encodes a disclosure with f applied to its decoded array.
func tamper(t *testing.T, enc string, f func([]any)) string {
	t.Helper()
	raw, _ := base64.RawURLEncoding.DecodeString(enc)
	var arr []any
	json.Unmarshal(raw, &arr)
	f(arr)
	b, _ := json.Marshal(arr)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestVerifyRefuses(t *testing.T) {
	tr, err := Build(testSalt, []byte(chatRequest))
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := tr.Select(mustFields(t, "model,temperature"))
	if len(ds) != 2 {
		t.Fatalf("%d disclosures", len(ds))
	}
	if _, err := Verify(tr.Hash(), tr.SD, ds); err != nil {
		t.Fatal(err)
	}
	other, _ := Build(bytes.Repeat([]byte{9}, 32), []byte(chatRequest))
	ods, _ := other.Select(mustFields(t, "model"))
	for _, c := range []struct {
		name  string
		root  string
		sd    []string
		ds    []string
		isErr error
	}{
		{"changed value", tr.Hash(), tr.SD, []string{tamper(t, ds[0], func(a []any) { a[2] = "gpt-3.5" }), ds[1]}, ErrUnreferenced},
		{"changed salt", tr.Hash(), tr.SD, []string{ds[0], tamper(t, ds[1], func(a []any) { a[0] = "AAAAAAAAAAAAAAAAAAAAAA" })}, ErrUnreferenced},
		{"changed name", tr.Hash(), tr.SD, []string{tamper(t, ds[0], func(a []any) { a[1] = "modell" }), ds[1]}, ErrUnreferenced},
		{"another payload's disclosure", tr.Hash(), tr.SD, ods, ErrUnreferenced},
		{"a digest dropped", tr.Hash(), tr.SD[1:], ds, ErrRoot},
		{"another root", other.Hash(), tr.SD, ds, ErrRoot},
		{"unsorted", tr.Hash(), []string{tr.SD[1], tr.SD[0]}, ds, ErrRoot},
		{"twice", tr.Hash(), tr.SD, []string{ds[0], ds[0]}, ErrRepeated},
		{"not base64url", tr.Hash(), tr.SD, []string{ds[0] + "="}, ErrMalformed},
		{"one element", tr.Hash(), tr.SD, []string{base64.RawURLEncoding.EncodeToString([]byte(`["x"]`))}, ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Verify(c.root, c.sd, c.ds)
			if !errors.Is(err, c.isErr) {
				t.Errorf("err = %v, want %v", err, c.isErr)
			}
		})
	}
	// A nested disclosure without its ancestor is not reached.
	nested, _ := tr.Select(mustFields(t, "messages[0].role"))
	if _, err := Verify(tr.Hash(), tr.SD, nested[len(nested)-1:]); !errors.Is(err, ErrUnreferenced) {
		t.Errorf("orphan nested disclosure: %v", err)
	}
}

func TestNotDisclosable(t *testing.T) {
	for _, p := range []string{`[1,2]`, `"x"`, `{"a":1,"a":2}`, `{"a":[{"b":{"c":1,"c":2}}]}`, `{"_sd":[]}`, `{"a":[{"_sd_alg":1}]}`, `{"a":{"...":"x"}}`, `{"a":1} x`, `{`} {
		if _, err := Build(testSalt, []byte(p)); !errors.Is(err, ErrNotDisclosable) {
			t.Errorf("%s: %v", p, err)
		}
	}
	big := `{"a":[` + strings.Repeat(`1,`, MaxDisclosures) + `1]}`
	if _, err := Build(testSalt, []byte(big)); !errors.Is(err, ErrNotDisclosable) {
		t.Errorf("too many fields: %v", err)
	}
}

func TestDepth(t *testing.T) {
	p := `{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}`
	tr, err := Build(testSalt, []byte(p))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Len() != MaxDepth {
		t.Errorf("%d disclosures, want %d", tr.Len(), MaxDepth)
	}
	ds, _ := tr.Select(mustFields(t, "a.b.c.d.e.f"))
	v, err := Verify(tr.Hash(), tr.SD, ds)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(v.Claims); string(got) != p {
		t.Errorf("claims %s", got)
	}
	if _, err := ParseField("a.b.c.d.e.f.g"); !errors.Is(err, ErrBadField) {
		t.Errorf("seven steps: %v", err)
	}
}

func TestParseFields(t *testing.T) {
	for _, ok := range []string{"model", "tools[*].name", "messages[12].content", "a.b-c_d", "x[0][1]"} {
		if _, err := ParseField(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "[0]", "a..b", "a.", "a[", "a[x]", "a[-1]", "a[01]", "a]b", "a\x01", "a b[*]x", strings.Repeat("a", MaxFieldLength+1)} {
		if _, err := ParseField(bad); !errors.Is(err, ErrBadField) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := ParseFields("a,a"); !errors.Is(err, ErrBadField) {
		t.Error("a field twice")
	}
	if _, err := ParseFields(strings.Repeat("a,", MaxFields) + "b"); !errors.Is(err, ErrBadField) {
		t.Error("too many fields")
	}
}

func FuzzVerify(f *testing.F) {
	tr, _ := Build(testSalt, []byte(chatRequest))
	all := tr.Disclosures()
	f.Add(all[0], all[1])
	f.Fuzz(func(t *testing.T, a, b string) {
		v, err := Verify(tr.Hash(), tr.SD, []string{a, b})
		if err == nil {
			// Only the tree's own disclosures verify.
			own := map[string]bool{}
			for _, d := range all {
				own[d] = true
			}
			if !own[a] || !own[b] || v == nil {
				t.Fatalf("foreign disclosures verified: %q %q", a, b)
			}
		}
	})
}

func FuzzBuild(f *testing.F) {
	f.Add([]byte(chatRequest))
	f.Fuzz(func(t *testing.T, p []byte) {
		tr, err := Build(testSalt, p)
		if err != nil {
			return
		}
		if _, err := Verify(tr.Hash(), tr.SD, tr.Disclosures()); err != nil {
			t.Fatalf("a built tree does not verify: %v", err)
		}
		if h, err := Commitment(testSalt, p); err != nil || h != tr.Hash() {
			t.Fatalf("Commitment %q %v, Build's root hash %q", h, err, tr.Hash())
		}
	})
}

func FuzzParseFields(f *testing.F) {
	for _, s := range []string{"model,usage,tools[*].name", "messages[12].content", "a[0][1].b", "a..b", "[0]", "a,a"} {
		f.Add(s)
	}
	tr, _ := Build(testSalt, []byte(chatRequest))
	f.Fuzz(func(t *testing.T, s string) {
		fields, err := ParseFields(s)
		if err != nil {
			return
		}
		for _, x := range fields {
			if len(x.steps) == 0 || len(x.steps) > MaxDepth || x.String() == "" {
				t.Fatalf("%q parsed to %d steps", s, len(x.steps))
			}
		}
		// Whatever is selected verifies.
		ds, _ := tr.Select(fields)
		if _, err := Verify(tr.Hash(), tr.SD, ds); err != nil {
			t.Fatalf("selection of %q does not verify: %v", s, err)
		}
	})
}

// TestCommitmentIsBuildHash: Commitment, which keeps no disclosure, gives
// the root hash of Build's tree, and its errors.
func TestCommitmentIsBuildHash(t *testing.T) {
	deep := `{"a":{"b":{"c":{"d":{"e":{"f":{"g":[1,{"h":2}]}}}}}},"z":[[[[[[[[1]]]]]]]]}`
	for _, p := range []string{chatRequest, string(conversation(1)), string(conversation(20)), deep,
		`{}`, `{"a":[]}`, `{"a":{}}`, `{"k\u00e9y":"v\"<&>\u2028","n":-1.5e3,"t":true,"x":null}`,
		`[1]`, `{"a":1,"a":2}`, `{"_sd":1}`, `{`, `"s"`} {
		tr, err := Build(testSalt, []byte(p))
		h, err2 := Commitment(testSalt, []byte(p))
		if (err == nil) != (err2 == nil) {
			t.Fatalf("%.40s: Build error %v, Commitment error %v", p, err, err2)
		}
		if err == nil && h != tr.Hash() {
			t.Errorf("%.40s: Commitment %s, Build's root hash %s", p, h, tr.Hash())
		}
		if err == nil && !Opens(h, testSalt, []byte(p)) {
			t.Errorf("%.40s: Opens refuses its own commitment", p)
		}
	}
}

// TestCommitmentConcurrent: builders share pooled buffers, never at once.
func TestCommitmentConcurrent(t *testing.T) {
	payloads := [][]byte{[]byte(chatRequest), conversation(1), conversation(5), []byte(`{"prompt":"` + strings.Repeat("a", 3000) + `"}`)}
	want := make([]string, len(payloads))
	for i, p := range payloads {
		tr, err := Build(testSalt, p)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = tr.Hash()
	}
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for n := range 50 {
				i := (g + n) % len(payloads)
				if h, err := Commitment(testSalt, payloads[i]); err != nil || h != want[i] {
					t.Errorf("payload %d: %q %v, want %q", i, h, err, want[i])
					return
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
}

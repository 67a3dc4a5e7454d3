package disclosure

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
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
	// usage is disclosed whole, but its _sd list has decoys: a verifier
	// cannot tell them from members left out, so usage is Partial.
	wantPaths := []string{"messages[0].role", "messages[1].role", "model", "tools[0].function.name", "tools[1].function.name",
		"usage.completion_tokens", "usage.prompt_tokens"}
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
	for _, bad := range []string{"", "[0]", "a..b", "a.", "a[", "a[x]", "a[-1]", "a[01]", "a]b", "a\x01", "a b[*]x", strings.Repeat("a", MaxFieldLength+1),
		`a[""]`, `a["b`, `a["b"c"]`, `a["b\\"]`, `a["b]"]`, `a"b`, `a["b"]c`} {
		if _, err := ParseField(bad); !errors.Is(err, ErrBadField) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := ParseFields("a,a"); !errors.Is(err, ErrBadField) {
		t.Error("a field twice")
	}
	// A quoted name is one step, dots and all, and FormatPath writes it
	// back in the same form.
	for _, c := range []struct {
		in   string
		path []Step
	}{
		{`attributes["gen_ai.request.model"]`, []Step{{Name: "attributes"}, {Name: "gen_ai.request.model"}}},
		{`["a.b"].c[2]`, []Step{{Name: "a.b"}, {Name: "c"}, {IsIndex: true, Index: 2}}},
		{`a["b"]`, []Step{{Name: "a"}, {Name: "b"}}},
	} {
		f, err := ParseField(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if !f.match(c.path) {
			t.Errorf("%s does not match %v", c.in, c.path)
		}
		if got := FormatPath(c.path); got != c.in && c.in != `a["b"]` {
			t.Errorf("FormatPath(%v) = %s, want %s", c.path, got, c.in)
		}
	}
	// A name with a quote is shown as a JSON string, never as another path.
	if got := FormatPath([]Step{{Name: "a"}, {Name: `b"].c["d`}}); got != `a["b\"].c[\"d"]` {
		t.Errorf("FormatPath of a name with quotes = %s", got)
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
		for _, v := range []int{V1, V2} {
			tv, err := BuildVersion(v, testSalt, p)
			if err != nil {
				t.Fatalf("version %d: %v (Build: none)", v, err)
			}
			if h, err := CommitmentVersion(v, testSalt, p); err != nil || h != tv.Hash() {
				t.Fatalf("version %d: Commitment %q %v, Build's root hash %q", v, h, err, tv.Hash())
			}
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

// sdLists returns the length of the root's _sd list and of the _sd list
// or array in the value of every disclosure, by path.
func sdLists(t *testing.T, tr *Tree) map[string]int {
	t.Helper()
	out := map[string]int{"(root)": len(tr.SD)}
	if !sort.StringsAreSorted(tr.SD) {
		t.Errorf("the root's _sd list is not sorted")
	}
	for _, n := range tr.nodes {
		raw, _ := b64dec(n.encoded)
		var arr []json.RawMessage
		if err := json.Unmarshal(raw, &arr); err != nil {
			t.Fatal(err)
		}
		var obj struct {
			SD []string `json:"_sd"`
		}
		var elems []map[string]string
		switch val := arr[len(arr)-1]; {
		case json.Unmarshal(val, &obj) == nil && obj.SD != nil:
			if !sort.StringsAreSorted(obj.SD) {
				t.Errorf("%s: _sd list not sorted", FormatPath(n.path))
			}
			out[FormatPath(n.path)] = len(obj.SD)
		case json.Unmarshal(val, &elems) == nil && elems != nil:
			out[FormatPath(n.path)] = len(elems)
		}
	}
	return out
}

// TestDecoysHideTheCount: with decoys (V2), a payload of 3 top-level fields
// and one of 5, whose object has 3 and 5 members and whose array has 3 and
// 5 elements, have _sd lists and arrays of the same lengths (8, Bucket's
// minimum); without (V1) they show 3 and 5.
func TestDecoysHideTheCount(t *testing.T) {
	three := `{"a":1,"obj":{"x":1,"y":2,"z":3},"arr":[1,2,3]}`
	five := `{"a":1,"b":2,"c":3,"obj":{"v":1,"w":2,"x":3,"y":4,"z":5},"arr":[1,2,3,4,5]}`
	for _, c := range []struct {
		version int
		same    bool
	}{{V2, true}, {V1, false}} {
		a, err := BuildVersion(c.version, testSalt, []byte(three))
		if err != nil {
			t.Fatal(err)
		}
		b, err := BuildVersion(c.version, testSalt, []byte(five))
		if err != nil {
			t.Fatal(err)
		}
		la, lb := sdLists(t, a), sdLists(t, b)
		for _, k := range []string{"(root)", "obj", "arr"} {
			if (la[k] == lb[k]) != c.same {
				t.Errorf("version %d: %s: %d and %d entries", c.version, k, la[k], lb[k])
			}
		}
		if c.version == V2 && (la["(root)"] != MinBucket || la["obj"] != MinBucket || la["arr"] != MinBucket) {
			t.Errorf("version 2: lengths %v, want %d", la, MinBucket)
		}
		if c.version == V1 && (la["(root)"] != 3 || lb["(root)"] != 5) {
			t.Errorf("version 1: lengths %v and %v", la, lb)
		}
	}
	// Empty objects and arrays are padded too.
	empty, _ := Build(testSalt, []byte(`{"obj":{},"arr":[]}`))
	if l := sdLists(t, empty); l["obj"] != MinBucket || l["arr"] != MinBucket {
		t.Errorf("empty object and array: %v", l)
	}
	if _, err := Verify(empty.Hash(), empty.SD, empty.Disclosures()); err != nil {
		t.Error(err)
	}
	for n, want := range map[int]int{0: 8, 1: 8, 8: 8, 9: 16, 16: 16, 17: 32, 401: 512} {
		if got := Bucket(n); got != want {
			t.Errorf("Bucket(%d) = %d, want %d", n, got, want)
		}
	}
}

// TestDecoysFromTheSalt: the decoys are Decoy of the payload's salt, in
// the root's sorted list and at the end of an array; another salt makes
// other decoys; every disclosure verifies with the decoys present, and a
// disclosure of one field leaves the decoys undisclosed.
func TestDecoysFromTheSalt(t *testing.T) {
	payload := []byte(`{"model":"m","tools":[{"name":"a"}]}`)
	tr, _ := Build(testSalt, payload)
	root := map[string]bool{}
	for _, d := range tr.SD {
		root[d] = true
	}
	for j := range MinBucket - 2 {
		if !root[Decoy(testSalt, nil, j)] {
			t.Errorf("decoy %d of the root is not in its _sd list", j)
		}
	}
	tools, _ := b64dec(tr.nodes[1].encoded) // [salt, "tools", [{"...": d}, decoys...]]
	if !strings.HasSuffix(string(tools), `{"...":"`+Decoy(testSalt, []Step{{Name: "tools"}}, MinBucket-2)+`"}]]`) {
		t.Errorf("the tools array does not end with its last decoy: %s", tools)
	}
	other, _ := Build(bytes.Repeat([]byte{8}, 32), payload)
	for _, d := range other.SD {
		if root[d] {
			t.Errorf("digest %s under two salts", d)
		}
	}
	for _, fields := range []string{"model", "tools[*].name"} {
		ds, _ := tr.Select(mustFields(t, fields))
		v, err := Verify(tr.Hash(), tr.SD, ds)
		if err != nil {
			t.Fatalf("%s: %v", fields, err)
		}
		got, _ := json.Marshal(v.Claims)
		if strings.Contains(string(got), "...") || strings.Contains(string(got), "_sd") {
			t.Errorf("%s: claims %s", fields, got)
		}
	}
	if _, err := Verify(tr.Hash(), tr.SD, tr.Disclosures()); err != nil {
		t.Fatal(err)
	}
}

// TestVersion1StillOpens: a tree built without decoys (the leaves written
// before version 2, which have no "sd_v") opens its commitment as V1 (and
// as 0, an absent sd_v), not as V2, and its disclosures verify; a V2 tree
// opens as V2 only.
func TestVersion1StillOpens(t *testing.T) {
	v1, _ := BuildVersion(V1, testSalt, []byte(chatRequest))
	v2, _ := BuildVersion(V2, testSalt, []byte(chatRequest))
	if v1.Hash() == v2.Hash() || v1.Version != V1 || v2.Version != V2 {
		t.Fatal("versions 1 and 2 make the same tree")
	}
	for _, c := range []struct {
		sd   string
		v    int
		want bool
	}{{v1.Hash(), 0, true}, {v1.Hash(), V1, true}, {v1.Hash(), V2, false}, {v2.Hash(), V2, true}, {v2.Hash(), 0, false}, {v2.Hash(), 3, false}} {
		if got := Opens(c.sd, c.v, testSalt, []byte(chatRequest)); got != c.want {
			t.Errorf("Opens(version %d tree, %d) = %v", map[bool]int{true: 1, false: 2}[c.sd == v1.Hash()], c.v, got)
		}
	}
	ds, _ := v1.Select(mustFields(t, "model,usage"))
	v, err := Verify(v1.Hash(), v1.SD, ds)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(v.Claims); string(got) != `{"model":"gpt-4o","usage":{"completion_tokens":7,"prompt_tokens":42}}` {
		t.Errorf("claims %s", got)
	}
}

// TestCommitmentIsBuildHash: Commitment, which keeps no disclosure, gives
// the root hash of Build's tree in either version, decoys included, and
// Build's errors.
func TestCommitmentIsBuildHash(t *testing.T) {
	deep := `{"a":{"b":{"c":{"d":{"e":{"f":{"g":[1,{"h":2}]}}}}}},"z":[[[[[[[[1]]]]]]]]}`
	wide := `{"a":[` + strings.Repeat(`{"x":1,"y":[1,2,3,4,5,6,7,8,9]},`, 20) + `{}]}`
	payloads := []string{chatRequest, string(conversation(1)), string(conversation(20)), deep, wide,
		`{}`, `{"a":[]}`, `{"a":{}}`, `{"k\u00e9y":"v\"<&>\u2028","n":-1.5e3,"t":true,"x":null}`,
		`[1]`, `{"a":1,"a":2}`, `{"_sd":1}`, `{`, `"s"`, `{"0":00}`}
	for _, v := range []int{V1, V2, 0, 3} {
		for _, p := range payloads {
			tr, err := BuildVersion(v, testSalt, []byte(p))
			h, err2 := CommitmentVersion(v, testSalt, []byte(p))
			if (err == nil) != (err2 == nil) {
				t.Fatalf("version %d, %.40s: Build error %v, Commitment error %v", v, p, err, err2)
			}
			if err != nil {
				continue
			}
			if h != tr.Hash() {
				t.Errorf("version %d, %.40s: Commitment %s, Build's root hash %s", v, p, h, tr.Hash())
			}
			if !Opens(h, v, testSalt, []byte(p)) {
				t.Errorf("version %d, %.40s: Opens refuses its own commitment", v, p)
			}
		}
	}
	for _, p := range payloads {
		tr, err := Build(testSalt, []byte(p))
		h, err2 := Commitment(testSalt, []byte(p))
		if (err == nil) != (err2 == nil) || err == nil && (h != tr.Hash() || tr.Version != Current) {
			t.Errorf("%.40s: Commitment %s %v, Build's root hash %v", p, h, err2, err)
		}
	}
}

// TestCommitmentConcurrent: builders share pooled buffers, never at once.
func TestCommitmentConcurrent(t *testing.T) {
	payloads := [][]byte{[]byte(chatRequest), conversation(1), conversation(5), []byte(`{"prompt":"` + strings.Repeat("a", 3000) + `"}`)}
	versions := []int{V1, V2}
	want := make([][2]string, len(payloads))
	for i, p := range payloads {
		for k, v := range versions {
			tr, err := BuildVersion(v, testSalt, p)
			if err != nil {
				t.Fatal(err)
			}
			want[i][k] = tr.Hash()
		}
	}
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for n := range 50 {
				i, k := (g+n)%len(payloads), (g+n/len(payloads))%2
				if h, err := CommitmentVersion(versions[k], testSalt, payloads[i]); err != nil || h != want[i][k] {
					t.Errorf("payload %d, version %d: %q %v, want %q", i, versions[k], h, err, want[i][k])
					return
				}
				if n%10 == 0 { // Build shares the pool too
					if tr, err := BuildVersion(versions[k], testSalt, payloads[i]); err != nil || tr.Hash() != want[i][k] {
						t.Errorf("payload %d, version %d: Build %v", i, versions[k], err)
						return
					}
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
}

// TestKeyedHMAC: the builder's HMAC, rekeyed and reused, is crypto/hmac's
// for keys shorter than, as long as and longer than SHA-256's block.
func TestKeyedHMAC(t *testing.T) {
	var m keyedHMAC
	for _, n := range []int{0, 1, 16, 32, 63, 64, 65, 100, 200} {
		key := bytes.Repeat([]byte{byte(n + 1)}, n)
		m.key(key)
		for _, msg := range []string{"", "a", `["messages",3,"content"]`, strings.Repeat("x", 200)} {
			want := hmac.New(sha256.New, key)
			want.Write([]byte(msg))
			if got := m.sum([]byte(msg)); !bytes.Equal(got, want.Sum(nil)) {
				t.Fatalf("key of %d bytes, message %.20q: %x, crypto/hmac %x", n, msg, got, want.Sum(nil))
			}
		}
	}
}

// TestSortDigests: digests sort as their strings do, in short lists and
// long, with prefixes in common.
func TestSortDigests(t *testing.T) {
	for _, n := range []int{0, 1, 2, 8, 16, 17, 64} {
		ds := make([]digest, n)
		want := make([]string, n)
		for i := range ds {
			d := Digest(fmt.Sprint(n, i))
			if i%3 == 1 { // the first 8 bytes of the one before
				d = want[i-1][:8] + d[8:]
			}
			copy(ds[i][:], d)
			want[i] = d
		}
		sortDigests(ds)
		sort.Strings(want)
		for i := range ds {
			if string(ds[i][:]) != want[i] {
				t.Fatalf("%d digests: %d is %s, want %s", n, i, ds[i][:], want[i])
			}
		}
	}
}

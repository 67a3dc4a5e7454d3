package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// decodeLeaf is ParseLeaf's decoding by encoding/json, the reference that
// scanLeaf must agree with.
func decodeLeaf(data []byte) (*Leaf, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var l Leaf
	if err := dec.Decode(&l); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return &l, nil
}

func scanLeafSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, path := range []string{"../testdata/leaf-vector.json", "../testdata/leaf-vector-v1.json"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ Leaf string }
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, []byte(v.Leaf))
	}
	corrects := uint64(7)
	for _, l := range []Leaf{
		{V: 2, ID: "a", Kind: "k", Time: "t", Tenant: "x", Session: "s", Actor: Actor{Type: "agent", ID: "b"}, Writer: &Writer{Token: "t", Via: ViaAPI}},
		{V: 2, ID: "a", Kind: "k", Time: "t", Tenant: "x", Session: "s", Seq: 18446744073709551615, Prev: "p", Actor: Actor{Type: "agent", ID: "b"},
			Writer: &Writer{Token: "t", Via: ViaAPI}, Corrects: &corrects,
			Attributes: map[string]any{"n": json.Number("-1.5e+3"), "z": json.Number("0"), "b": true, "f": false, "arr": []any{"x", json.Number("2"), true},
				"empty": []any{}, "s": "with ünïcode and \u2028 and <html> & \"quotes\"", "tab": "a\tb"},
			Payload: &Commitment{Alg: CommitmentAlg, Digest: "ab", Size: 0, MediaType: "application/octet-stream"}},
		{V: 2, ID: "a", Kind: "k", Time: "t", Tenant: "x", Session: "s", Actor: Actor{Type: "agent", ID: "b"}, Writer: &Writer{Token: "t", Via: ViaAPI},
			Payload: &Commitment{Alg: CommitmentAlg, Digest: "ab", Size: 3, MediaType: "application/json", SD: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
	} {
		b, err := l.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return append(seeds,
		[]byte(`{"v":2,"id":"a","kind":"k","time":"t","tenant":"x","session":"s","seq":01,"actor":{"type":"a","id":"b"}}`),
		[]byte(`{"v":2,"id":"a","kind":"k","time":"t","tenant":"x","session":"s","seq":1.0,"actor":{"type":"a","id":"b"}}`),
		[]byte(`{"v":2,"id":"a","kind":"k","time":"t","tenant":"x","session":"s","seq":1,"actor":{"type":"a","id":"b"}} `),
		[]byte(`{"v":2,"id":"a","kind":"k","time":"t","tenant":"x","session":"s","seq":1,"actor":{"type":"a","id":"b"},"attributes":{"b":1,"a":2}}`),
		[]byte(`{"v":2,"id":"a","kind":"k","time":"t","tenant":"x","session":"s","seq":1,"actor":{"type":"a","id":"b"},"attributes":{"a":1,"a":2}}`),
		[]byte(`{"v":2,"id":"a","kind":"k","time":"t","tenant":"x","session":"s","seq":1,"actor":{"type":"a","id":"b"},"attributes":{"a":[[1]]}}`),
		[]byte(`{"v":2,"id":"a","kind":"k","time":"t","tenant":"x","session":"s","seq":1,"actor":{"type":"a","id":"b"},"attributes":{"a":-01}}`),
		[]byte(`{"v":2,"id":"a","kind":"k","time":"t","tenant":"x","session":"s","seq":1,"actor":{"type":"a","id":"b"},"attributes":{}}`),
		[]byte(`{"v":2,"id":"a","kind":"k","time":"t","tenant":"x","session":"s","seq":1,"prev":"","actor":{"type":"a","id":"b"}}`),
		[]byte(`{"v":2,"ID":"a","kind":"k","time":"t","tenant":"x","session":"s","seq":1,"actor":{"type":"a","id":"b"}}`),
	)
}

// TestScanLeafAgrees: the leaves this log writes are read without
// encoding/json, to the same Leaf; what the scan does not accept, and
// every error, is encoding/json's.
func TestScanLeafAgrees(t *testing.T) {
	scanned := 0
	for i, data := range scanLeafSeeds(t) {
		got, ok := scanLeaf(data)
		want, err := decodeLeaf(data)
		if ok {
			scanned++
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("seed %d %s: scanned %+v, decoded %+v (%v)", i, data, got, want, err)
			}
		}
		if IsCanonical(data) && !bytes.Contains(data, []byte(`\`)) && !ok {
			t.Errorf("seed %d %s: canonical, but not scanned", i, data)
		}
	}
	if scanned < 3 {
		t.Fatalf("only %d seeds scanned", scanned)
	}
}

// TestLeafPayloadAgrees: LeafPayload, which scans the leaves this log
// writes, gives encoding/json's id, commitment and error on every seed
// (FuzzScanLeaf holds it to that on any leaf too).
func TestLeafPayloadAgrees(t *testing.T) {
	for i, data := range append(scanLeafSeeds(t), []byte(`{"v":2,"id":"","kind":"k","time":"t","tenant":"x","session":"s","seq":1,"actor":{"type":"a","id":"b"}}`), []byte("{\"v\":2,\"id\":\"\xff\"}")) {
		leafPayloadAgrees(t, fmt.Sprint("seed ", i), data)
	}
}

func leafPayloadAgrees(t *testing.T, name string, data []byte) {
	t.Helper()
	id, c, err := LeafPayload(data)
	wid, wc, werr := leafPayloadJSON(data)
	if id != wid || !reflect.DeepEqual(c, wc) || (err == nil) != (werr == nil) {
		t.Errorf("%s %q: LeafPayload %q %+v %v, encoding/json %q %+v %v", name, data, id, c, err, wid, wc, werr)
	}
}

func FuzzScanLeaf(f *testing.F) {
	for _, s := range scanLeafSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		leafPayloadAgrees(t, "fuzz", data)
		if !utf8.Valid(data) { // ParseLeaf refuses it first
			return
		}
		got, ok := scanLeaf(data)
		if !ok {
			return
		}
		want, err := decodeLeaf(data)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: scanned %+v, decoded %+v (%v)", data, got, want, err)
		}
	})
}

func BenchmarkParseLeaf(b *testing.B) {
	raw, _ := os.ReadFile("../testdata/leaf-vector.json")
	var v struct{ Leaf string }
	json.Unmarshal(raw, &v)
	data := []byte(v.Leaf)
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseLeaf(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeLeaf(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestParseLeafFieldCommitment: a commitment's sd is 64 lower-case hex
// digits or absent.
func TestParseLeafFieldCommitment(t *testing.T) {
	base := `{"v":2,"id":"a","kind":"k","time":"t","tenant":"x","session":"s","seq":0,"actor":{"type":"agent","id":"b"},"writer":{"token":"t","via":"api"},` +
		`"payload":{"alg":"hmac-sha256","digest":"ab","size":3,"media_type":"application/json"%s}}`
	sd := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, c := range []struct {
		extra string
		ok    bool
	}{
		{"", true},
		{`,"sd":"` + sd + `"`, true},
		{`,"sd":"` + strings.ToUpper(sd) + `"`, false},
		{`,"sd":"` + sd[:62] + `"`, false},
		{`,"sd":"` + sd[:63] + `g"`, false},
		{`,"sd":"` + sd + `","sd_v":2`, true},
		{`,"sd":"` + sd + `","sd_v":1`, false}, // version 1 has no sd_v
		{`,"sd":"` + sd + `","sd_v":3`, false},
		{`,"sd_v":2`, false}, // no sd
	} {
		l, err := ParseLeaf(fmt.Appendf(nil, base, c.extra))
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.extra, err)
		}
		if err == nil && c.extra != "" && l.Payload.SD != sd {
			t.Errorf("sd read as %q", l.Payload.SD)
		}
		if err == nil && l.Payload.SDVersion() != map[bool]int{true: 2, false: 1}[strings.Contains(c.extra, "sd_v")] {
			t.Errorf("%s: sd_v read as %d", c.extra, l.Payload.SDVersion())
		}
	}
}

func BenchmarkLeafPayload(b *testing.B) {
	raw, _ := os.ReadFile("../testdata/leaf-vector.json")
	var v struct{ Leaf string }
	json.Unmarshal(raw, &v)
	data := []byte(v.Leaf)
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := LeafPayload(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := leafPayloadJSON(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

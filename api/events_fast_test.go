package api

import (
	"reflect"
	"testing"
)

var eventResponseSeeds = []string{
	`{"id":"0195","seq":3,"session":"s1","leaf":"eyJ2IjoxfQ==","leaf_hash":"ab12"}`,
	`{"id":"0195","index":42,"seq":0,"session":"s1","leaf":"eyJ2IjoxfQ==","leaf_hash":"ab12","envelope":"e30=","field_salt":"c2FsdA=="}`,
	` { "id" : "a" , "index" : 0 } `,
	`{}`,
	`{"index":null}`,
	`{"index":18446744073709551615}`,
	`{"index":9999999999999999999}`,
	`{"index":01}`,
	`{"index":1.5}`,
	`{"index":1e3}`,
	`{"index":-1}`,
	`{"id":"a","id":"b"}`,
	`{"ID":"a"}`,
	`{"id":"\u0061"}`,
	`{"id":"é"}`,
	`{"id":"a"} x`,
	`{"id":"a",}`,
	`{"receipt_error":"no checkpoint yet","id":"a"}`,
	`{"other":1}`,
	`[]`,
}

func checkFastEventResponse(t *testing.T, b []byte) (fast bool) {
	r, ok := fastEventResponse(b)
	if !ok {
		return false
	}
	want, err := decodeEventResponse(b)
	if err != nil {
		t.Fatalf("fastEventResponse(%q) read what encoding/json refuses: %v", b, err)
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("fastEventResponse(%q) = %+v, encoding/json %+v", b, r, want)
	}
	return true
}

// TestFastEventResponse: the fast reader takes the server's answers and
// reads them as encoding/json does, and leaves the rest to it.
func TestFastEventResponse(t *testing.T) {
	fast := map[string]bool{}
	for _, s := range eventResponseSeeds {
		fast[s] = checkFastEventResponse(t, []byte(s))
	}
	for _, s := range []string{eventResponseSeeds[0], eventResponseSeeds[1], eventResponseSeeds[2], `{}`, `{"index":9999999999999999999}`} {
		if !fast[s] {
			t.Errorf("%s: not read by the fast reader", s)
		}
	}
	// What the server writes.
	for _, r := range []EventResponse{
		{ID: "0195", Seq: 7, Session: "s", Leaf: "eyJ2IjoxfQ==", LeafHash: "00ff"},
		{ID: "0195", Index: 9, Indexed: true, Seq: 7, Session: "s", Leaf: "eyJ2IjoxfQ==", LeafHash: "00ff", Envelope: "e30=", FieldSalt: "AA=="},
	} {
		b, err := r.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !checkFastEventResponse(t, b) {
			t.Errorf("%s: not read by the fast reader", b)
		}
		if got, err := ParseEventResponse(b); err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("ParseEventResponse(%s) = %+v, %v; want %+v", b, got, err, r)
		}
	}
}

func FuzzParseEventResponse(f *testing.F) {
	for _, s := range eventResponseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFastEventResponse(t, b)
		got, err := ParseEventResponse(b)
		want, werr := decodeEventResponse(b)
		if (err == nil) != (werr == nil) || err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseEventResponse(%q) = %+v, %v; encoding/json %+v, %v", b, got, err, want, werr)
		}
	})
}

func BenchmarkParseEventResponse(b *testing.B) {
	leaf := make([]byte, 700)
	for i := range leaf {
		leaf[i] = 'A' + byte(i%26)
	}
	body, _ := EventResponse{ID: "019af1c2d3e4f5a6b7c8d9e0f1a2b3c4", Seq: 12, Session: "loadgen-0007", Leaf: string(leaf),
		LeafHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}.AppendJSON(nil)
	b.Run("ParseEventResponse", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseEventResponse(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeEventResponse(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

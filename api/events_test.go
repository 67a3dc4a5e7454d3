package api

import (
	"bytes"
	"encoding/json"
	"testing"
)

// AppendJSON writes the bytes encoding/json writes for the same response
// (index only when indexed, HTML characters and non-ASCII escaped as
// json.Marshal escapes them), and a batch as encoding/json writes a
// BatchResponse of those.
func TestEventResponseAppendJSON(t *testing.T) {
	rc := &Receipt{Index: 7, Leaf: []byte("<leaf>"), LeafHash: "ab", TreeSize: 9, InclusionProof: [][]byte{{1, 2}}, Checkpoint: "origin\n9\n<root>\n"}
	cases := []EventResponse{
		{ID: "0a1b", Seq: 3, Session: "s-1", Leaf: "eyJ2Ijoy", LeafHash: "00ff"},
		{ID: "0a1b", Index: 12, Indexed: true, Seq: 0, Session: "s:1@x", Leaf: "", LeafHash: ""},
		{ID: "a", Index: 0, Indexed: true, Session: "s", Receipt: rc},
		{ID: "a", Session: "s", ReceiptError: "not <sequenced> & \"quoted\" \\ \x01 é \u2028 \xff"},
		{ID: "a", Session: "s", ReceiptError: "<b>"},
		{ID: "a", Session: "s", ReceiptError: "a & b"},
		{ID: "a", Session: "s", ReceiptError: "tab\there"},
		{ID: "a", Index: 1<<64 - 1, Indexed: true, Seq: 1<<64 - 1, Session: "s", Receipt: rc, ReceiptError: "x"},
		{ID: "a", Index: 4, Indexed: true, Session: "s", Leaf: "eyJ2Ijoy", LeafHash: "00ff", Envelope: "eyJ2IjozLCJub25jZSI6Ii4uLiJ9", Receipt: rc},
	}
	for i, r := range cases {
		w := eventResponseJSON{plainEventResponse: plainEventResponse(r)}
		if r.Indexed {
			w.Index = &r.Index
		}
		want, err := json.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want)
		}
		var back EventResponse
		if err := json.Unmarshal(got, &back); err != nil || back.Indexed != r.Indexed || back.Index != r.Index || back.ReceiptError != r.ReceiptError && json.Valid([]byte(`"`+r.ReceiptError+`"`)) {
			t.Errorf("case %d: read back as %+v (%v)", i, back, err)
		}
	}
	for _, batch := range []BatchResponse{{}, {Events: []EventResponse{}}, {Events: cases}} {
		type plain struct {
			Events []EventResponse `json:"events"`
		}
		want, _ := json.Marshal(plain(batch))
		got, err := batch.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("batch of %d:\n got %s\nwant %s", len(batch.Events), got, want)
		}
	}
}

// BenchmarkEventResponse writes one answer of POST /v1/events as the
// server's writeJSON does.
func BenchmarkEventResponse(b *testing.B) {
	r := EventResponse{ID: "01a25031e7d37043ce69f04f22f1ce2c", Seq: 41, Session: "load-1", Leaf: string(bytes.Repeat([]byte("eyJ2"), 160)), LeafHash: string(bytes.Repeat([]byte("0f"), 32))}
	b.ReportAllocs()
	var v any = r
	for b.Loop() {
		var buf bytes.Buffer
		if a, ok := v.(interface{ AppendJSON([]byte) ([]byte, error) }); ok {
			out, err := a.AppendJSON(make([]byte, 0, 1024))
			if err != nil {
				b.Fatal(err)
			}
			buf.Write(append(out, '\n'))
			continue
		}
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			b.Fatal(err)
		}
	}
}

package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/transparency-dev/formats/proof"

	"github.com/llmaudittrail/llmaudittrail/api"
)

const sampleCheckpoint = "log.test/x\n3\n" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" + "\n\n\u2014 log.test/x AAAAAAAA\n"

func sampleReceipt() *api.Receipt {
	h1, h2 := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))
	return &api.Receipt{Index: 2, Leaf: []byte(`{"v":1}`), TreeSize: 3, InclusionProof: [][]byte{h1[:], h2[:]}, Checkpoint: sampleCheckpoint}
}

// TestTlogProofForm checks the text against c2sp.org/tlog-proof@v1 byte
// by byte, and that it parses back to the receipt.
func TestTlogProofForm(t *testing.T) {
	r := sampleReceipt()
	got, err := r.MarshalTlogProof()
	if err != nil {
		t.Fatal(err)
	}
	want := "c2sp.org/tlog-proof@v1\nextra " + base64.StdEncoding.EncodeToString(r.Leaf) + "\nindex 2\n" +
		base64.StdEncoding.EncodeToString(r.InclusionProof[0]) + "\n" + base64.StdEncoding.EncodeToString(r.InclusionProof[1]) + "\n\n" + sampleCheckpoint
	if string(got) != want {
		t.Fatalf("tlog-proof\n%q\nwant\n%q", got, want)
	}
	p, err := api.ParseReceipt(got)
	if err != nil {
		t.Fatal(err)
	}
	if p.Index != 2 || !bytes.Equal(p.Leaf, r.Leaf) || p.TreeSize != 3 || p.Checkpoint != sampleCheckpoint || len(p.InclusionProof) != 2 ||
		!bytes.Equal(p.InclusionProof[1], r.InclusionProof[1]) || p.TlogProof != string(got) {
		t.Fatalf("parsed %+v", p)
	}
	// A receipt whose checkpoint is for another size has no tlog-proof form.
	r.TreeSize = 4
	if _, err := r.MarshalTlogProof(); !errors.Is(err, api.ErrReceiptMalformed) {
		t.Fatalf("tree size 4 with a checkpoint of 3: err = %v", err)
	}
}

func TestParseTlogProofRefuses(t *testing.T) {
	good, _ := sampleReceipt().MarshalTlogProof()
	g := string(good)
	h := base64.StdEncoding.EncodeToString(sampleReceipt().InclusionProof[0])
	for name, text := range map[string]string{
		"no extra":            strings.Replace(g, "extra eyJ2IjoxfQ==\n", "", 1),
		"extra not canonical": strings.Replace(g, "extra eyJ2IjoxfQ==", "extra eyJ2IjoxfR==", 1),
		"index leading zero":  strings.Replace(g, "index 2\n", "index 02\n", 1),
		"index sign":          strings.Replace(g, "index 2\n", "index +2\n", 1),
		"no index":            strings.Replace(g, "index 2\n", "", 1),
		"short hash":          strings.Replace(g, h, base64.StdEncoding.EncodeToString(make([]byte, 31)), 1),
		"hash not canonical":  strings.Replace(g, h, h[:42]+"B=", 1),
		"CRLF":                strings.ReplaceAll(g, "\n", "\r\n"),
		"no empty line":       strings.Replace(g, "\n\nlog.test", "\nlog.test", 1),
		"no checkpoint":       g[:strings.Index(g, "\n\nlog.test")+2],
		"other header":        strings.Replace(g, "@v1", "@v2", 1),
		"trailing text":       strings.TrimSuffix(g, "\n"),
		"size leading zero":   strings.Replace(g, "\n3\n", "\n03\n", 1),
		"too many hashes":     strings.Replace(g, h+"\n", strings.Repeat(h+"\n", 65), 1),
	} {
		if _, err := api.ParseReceipt([]byte(text)); !errors.Is(err, api.ErrReceiptMalformed) {
			t.Errorf("%s: err = %v, want ErrReceiptMalformed", name, err)
		}
	}
}

// FuzzParseTlogProof holds our strict parser to the reference parser
// (transparency-dev/formats/proof): whatever we accept, it reads the same.
func FuzzParseTlogProof(f *testing.F) {
	good, _ := sampleReceipt().MarshalTlogProof()
	f.Add(good)
	f.Add([]byte("c2sp.org/tlog-proof@v1\nextra AA==\nindex 0\n\nx\n1\n"))
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 0\n\n"))
	f.Add([]byte("c2sp.org/tlog-proof@v1\nextra AA==\nindex 0\n\nx\r\n1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := api.ParseTlogProof(data)
		if err != nil {
			return
		}
		var p proof.TLogProof
		if err := p.Unmarshal(data); err != nil {
			if len(data) < 60_000 { // its line scanner stops at 64 KiB
				t.Fatalf("we accept what formats/proof refuses (%v): %q", err, data)
			}
			return
		}
		if p.Index != r.Index || !bytes.Equal(p.ExtraData, r.Leaf) || string(p.Checkpoint) != r.Checkpoint || len(p.Hashes) != len(r.InclusionProof) {
			t.Fatalf("formats/proof reads %+v, we read %+v", p, r)
		}
		for i := range p.Hashes {
			if !bytes.Equal(p.Hashes[i][:], r.InclusionProof[i]) {
				t.Fatalf("hash %d differs", i)
			}
		}
		again, err := r.MarshalTlogProof()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("not one form: %q re-encodes as %q (%v)", data, again, err)
		}
	})
}

// benchReceipt is a receipt of the size a log of a million entries hands
// out: a 700-byte leaf, 20 proof hashes, a checkpoint with three
// cosignatures.
func benchReceipt() *api.Receipt {
	r := &api.Receipt{Index: 765_432, Leaf: bytes.Repeat([]byte("x"), 700), TreeSize: 1_000_000}
	for i := range 20 {
		h := sha256.Sum256([]byte{byte(i)})
		r.InclusionProof = append(r.InclusionProof, h[:])
	}
	r.Checkpoint = "log.example/audit\n1000000\n" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n\n" +
		strings.Repeat("\u2014 witness.example/w "+base64.StdEncoding.EncodeToString(make([]byte, 76))+"\n", 3) +
		"\u2014 log.example/audit " + base64.StdEncoding.EncodeToString(make([]byte, 68)) + "\n"
	return r
}

// BenchmarkReceiptForms measures what the tlog-proof adds to a receipt:
// json is the JSON receipt without tlog_proof (the baseline), marshal the
// tlog-proof text, json+tlog_proof the JSON the server sends, parse the
// strict parse of the text.
func BenchmarkReceiptForms(b *testing.B) {
	r := benchReceipt()
	text, err := r.MarshalTlogProof()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			out, _ := json.Marshal(r)
			b.SetBytes(int64(len(out)))
		}
	})
	b.Run("marshal", func(b *testing.B) {
		for b.Loop() {
			out, _ := r.MarshalTlogProof()
			b.SetBytes(int64(len(out)))
		}
	})
	withProof := *r
	withProof.TlogProof = string(text)
	b.Run("json+tlog_proof", func(b *testing.B) {
		for b.Loop() {
			out, _ := json.Marshal(&withProof)
			b.SetBytes(int64(len(out)))
		}
	})
	b.Run("parse", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			if _, err := api.ParseTlogProof(text); err != nil {
				b.Fatal(err)
			}
		}
	})
}

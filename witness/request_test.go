package witness

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

var (
	hashA = bytes.Repeat([]byte{0xaa}, 32)
	hashB = bytes.Repeat([]byte{0xbb}, 32)
	b64A  = base64.StdEncoding.EncodeToString(hashA)
	b64B  = base64.StdEncoding.EncodeToString(hashB)
)

const cpText = "example.com/log\n5\nqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqo=\n\n— example.com/log AAAAAQ==\n"

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		old     uint64
		proof   [][]byte
		wantErr bool
	}{
		{name: "old 0 no proof", body: "old 0\n\n" + cpText, old: 0},
		{name: "proof lines", body: "old 3\n" + b64A + "\n" + b64B + "\n\n" + cpText, old: 3, proof: [][]byte{hashA, hashB}},
		{name: "max int64", body: "old 9223372036854775807\n\n" + cpText, old: 1<<63 - 1},
		{name: "63 proof lines", body: "old 1\n" + strings.Repeat(b64A+"\n", 63) + "\n" + cpText, old: 1, proof: repeatHash(hashA, 63)},

		{name: "empty", body: "", wantErr: true},
		{name: "no newline", body: "old 0", wantErr: true},
		{name: "missing old", body: "0\n\n" + cpText, wantErr: true},
		{name: "OLD uppercase", body: "OLD 0\n\n" + cpText, wantErr: true},
		{name: "two spaces", body: "old  0\n\n" + cpText, wantErr: true},
		{name: "leading zero", body: "old 01\n\n" + cpText, wantErr: true},
		{name: "plus sign", body: "old +1\n\n" + cpText, wantErr: true},
		{name: "negative", body: "old -1\n\n" + cpText, wantErr: true},
		{name: "2^63", body: "old 9223372036854775808\n\n" + cpText, wantErr: true},
		{name: "trailing space", body: "old 1 \n\n" + cpText, wantErr: true},
		{name: "CRLF", body: "old 1\r\n\r\n" + cpText, wantErr: true},
		{name: "no empty line", body: "old 0\n" + cpText, wantErr: true},
		{name: "no checkpoint", body: "old 0\n\n", wantErr: true},
		{name: "64 proof lines", body: "old 1\n" + strings.Repeat(b64A+"\n", 64) + "\n" + cpText, wantErr: true},
		{name: "short hash", body: "old 1\n" + base64.StdEncoding.EncodeToString(hashA[:31]) + "\n\n" + cpText, wantErr: true},
		{name: "long hash", body: "old 1\n" + base64.StdEncoding.EncodeToString(append(hashA, 0)) + "\n\n" + cpText, wantErr: true},
		{name: "unpadded hash", body: "old 1\n" + base64.RawStdEncoding.EncodeToString(hashA) + "\n\n" + cpText, wantErr: true},
		{name: "url alphabet", body: "old 1\n" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)) + "\n\n" + cpText, wantErr: true},
		{name: "non-canonical padding bits", body: "old 1\n" + b64A[:42] + "p=\n\n" + cpText, wantErr: true},
		{name: "CR inside hash", body: "old 1\n" + b64A[:43] + "\r\n\n" + cpText, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := ParseRequest([]byte(tc.body))
			if tc.wantErr {
				if !errors.Is(err, ErrMalformedRequest) {
					t.Fatalf("ParseRequest = %+v, %v; want ErrMalformedRequest", req, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if req.OldSize != tc.old {
				t.Errorf("OldSize = %d, want %d", req.OldSize, tc.old)
			}
			if len(req.Proof) != len(tc.proof) {
				t.Fatalf("len(Proof) = %d, want %d", len(req.Proof), len(tc.proof))
			}
			for i := range tc.proof {
				if !bytes.Equal(req.Proof[i], tc.proof[i]) {
					t.Errorf("Proof[%d] = %x, want %x", i, req.Proof[i], tc.proof[i])
				}
			}
			if string(req.Checkpoint) != cpText {
				t.Errorf("Checkpoint = %q, want %q", req.Checkpoint, cpText)
			}
			if got := req.Marshal(); string(got) != tc.body {
				t.Errorf("Marshal = %q, want %q", got, tc.body)
			}
		})
	}
}

func repeatHash(h []byte, n int) [][]byte {
	var out [][]byte
	for range n {
		out = append(out, h)
	}
	return out
}

// FuzzParseRequest checks that the parser never panics, that it either
// fails with ErrMalformedRequest or returns a request within the spec's
// limits, and that an accepted body is canonical: it re-encodes to exactly
// the same bytes.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("old 0\n\n" + cpText))
	f.Add([]byte("old 3\n" + b64A + "\n" + b64B + "\n\n" + cpText))
	f.Add([]byte("old 18446744073709551615\n\n" + cpText))
	f.Add([]byte("old 1\n" + strings.Repeat(b64A+"\n", 64) + "\n" + cpText))
	f.Add([]byte("old 01\n\n" + cpText))
	f.Add([]byte("old 1\n" + b64A[:43] + "\r\n\n" + cpText))
	f.Add([]byte("old 0\n\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseRequest(body)
		if err != nil {
			if !errors.Is(err, ErrMalformedRequest) {
				t.Fatalf("error %v does not wrap ErrMalformedRequest", err)
			}
			if req != nil {
				t.Fatalf("non-nil request with error")
			}
			return
		}
		if len(req.Proof) > MaxProofLines {
			t.Fatalf("%d proof lines accepted", len(req.Proof))
		}
		for i, h := range req.Proof {
			if len(h) != 32 {
				t.Fatalf("proof[%d] has %d bytes", i, len(h))
			}
		}
		if req.OldSize > 1<<63-1 {
			t.Fatalf("old size %d accepted", req.OldSize)
		}
		if len(req.Checkpoint) == 0 {
			t.Fatalf("empty checkpoint accepted")
		}
		if got := req.Marshal(); !bytes.Equal(got, body) {
			t.Fatalf("accepted non-canonical body:\n got %q\nwant %q", got, body)
		}
	})
}

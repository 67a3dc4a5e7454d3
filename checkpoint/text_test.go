package checkpoint

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	fmtlog "github.com/transparency-dev/formats/log"
)

var rootB64 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xaa}, 32)) // "qqqq...qqo="

func TestCheckText(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		ok         bool
	}{
		{"plain", "example.com/log\n5\n" + rootB64 + "\n", true},
		{"size 0", "example.com/log\n0\n" + rootB64 + "\n", true},
		{"max uint64", "example.com/log\n18446744073709551615\n" + rootB64 + "\n", true},
		{"extension lines", "example.com/log\n5\n" + rootB64 + "\next one\next two\n", true},

		{"size 03", "example.com/log\n03\n" + rootB64 + "\n", false},
		{"size 003", "example.com/log\n003\n" + rootB64 + "\n", false},
		{"size 00", "example.com/log\n00\n" + rootB64 + "\n", false},
		{"size +3", "example.com/log\n+3\n" + rootB64 + "\n", false},
		{"size -3", "example.com/log\n-3\n" + rootB64 + "\n", false},
		{"size with space", "example.com/log\n3 \n" + rootB64 + "\n", false},
		{"size empty", "example.com/log\n\n" + rootB64 + "\n", false},
		{"size 2^64", "example.com/log\n18446744073709551616\n" + rootB64 + "\n", false},
		{"size hex", "example.com/log\n0x3\n" + rootB64 + "\n", false},
		{"hash padding bits", "example.com/log\n5\n" + rootB64[:42] + "p=\n", false},
		{"hash unpadded", "example.com/log\n5\n" + strings.TrimRight(rootB64, "=") + "\n", false},
		{"hash url alphabet", "example.com/log\n5\n" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)) + "\n", false},
		{"hash 31 bytes", "example.com/log\n5\n" + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n", false},
		{"hash with space", "example.com/log\n5\n " + rootB64[1:] + "\n", false},
		{"origin empty", "\n5\n" + rootB64 + "\n", false},
		{"origin space", "example.com/log \n5\n" + rootB64 + "\n", false},
		{"origin plus", "example.com/log+x\n5\n" + rootB64 + "\n", false},
		{"origin tab", "example.com\tlog\n5\n" + rootB64 + "\n", false},
		{"origin not UTF-8", "example.com/\xfflog\n5\n" + rootB64 + "\n", false},
		{"no final newline", "example.com/log\n5\n" + rootB64, false},
		{"two lines", "example.com/log\n5\n", false},
		{"empty extension line", "example.com/log\n5\n" + rootB64 + "\n\n", false},
		{"CRLF", "example.com/log\r\n5\r\n" + rootB64 + "\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckText(tc.text)
			if tc.ok && err != nil {
				t.Fatalf("CheckText(%q) = %v, want nil", tc.text, err)
			}
			if !tc.ok && !errors.Is(err, ErrNonCanonical) {
				t.Fatalf("CheckText(%q) = %v, want ErrNonCanonical", tc.text, err)
			}
		})
	}
}

// FuzzCheckText: a text CheckText accepts is exactly the marshalled form
// of the checkpoint it parses to, extension lines included.
func FuzzCheckText(f *testing.F) {
	f.Add("example.com/log\n5\n" + rootB64 + "\n")
	f.Add("example.com/log\n03\n" + rootB64 + "\n")
	f.Add("example.com/log\n5\n" + rootB64[:42] + "p=\n")
	f.Add("example.com/log\n5\n" + rootB64 + "\next\n")
	f.Fuzz(func(t *testing.T, text string) {
		if CheckText(text) != nil {
			return
		}
		var cp fmtlog.Checkpoint
		rest, err := cp.Unmarshal([]byte(text))
		if err != nil {
			t.Fatalf("accepted %q, which does not parse: %v", text, err)
		}
		if got := string(cp.Marshal()) + string(rest); got != text {
			t.Fatalf("accepted non-canonical %q (canonical %q)", text, got)
		}
	})
}

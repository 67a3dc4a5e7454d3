package strictjson

import (
	"math/rand/v2"
	"testing"
)

// stringEndSlow is StringEnd a byte at a time, the reference.
func stringEndSlow(b []byte, open int) (end int, escaped, plain bool) {
	plain = true
	for i := open + 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, plain && !escaped
		case c == '\\':
			escaped = true
			i++
		case c < 0x20 || c >= 0x7f:
			plain = false
		}
	}
	return -1, escaped, false
}

func TestStringEnd(t *testing.T) {
	for _, tc := range []struct {
		in             string
		end            int
		escaped, plain bool
	}{
		{`""`, 2, false, true},
		{`"abc"`, 5, false, true},
		{`"abc"x"`, 5, false, true},
		{`"a\"b"`, 6, true, false},
		{`"a\\"b"`, 5, true, false},
		{`"a\\\"b"`, 8, true, false},
		{`"ab`, -1, false, false},
		{`"ab\"`, -1, false, false},
		{`"ab\`, -1, false, false},
		{`"\`, -1, false, false},
		{"\"abcdefgh\x7fijklmnop\"", 19, false, false},
		{"\"abcdefghijklmno\x1f\"", 18, false, false},
		{"\"abcdefghijklmnop\x80\"", 19, false, false},
		{"\"abcdefghijklmnop~ \"", 20, false, true},
		{"\"h\u00e9llo wonderful world\"", 24, false, false},
	} {
		end, esc, plain := StringEnd([]byte(tc.in), 0)
		if end != tc.end || end >= 0 && (esc != tc.escaped || plain != tc.plain) { // unterminated: only the end counts
			t.Errorf("StringEnd(%q) = %d, %v, %v; want %d, %v, %v", tc.in, end, esc, plain, tc.end, tc.escaped, tc.plain)
		}
	}
	// Random strings of the bytes that matter, against the byte loop.
	alphabet := []byte{'a', 'z', ' ', '~', '"', '\\', 0x1f, 0x20, 0x7e, 0x7f, 0x80, 0xff, 0x00, 'n'}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		b := make([]byte, 1+r.IntN(40))
		b[0] = '"'
		for i := 1; i < len(b); i++ {
			if r.IntN(3) == 0 {
				b[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				b[i] = byte(0x20 + r.IntN(0x5f))
			}
		}
		e1, x1, p1 := StringEnd(b, 0)
		e2, x2, p2 := stringEndSlow(b, 0)
		if e1 != e2 || (e1 >= 0 && (x1 != x2 || p1 != p2)) {
			t.Fatalf("StringEnd(%q) = %d, %v, %v; the byte loop: %d, %v, %v", b, e1, x1, p1, e2, x2, p2)
		}
	}
}

func BenchmarkStringEnd(b *testing.B) {
	s := []byte(`"` + string(make([]byte, 0)) + "")
	for range 1000 {
		s = append(s, 'a')
	}
	s = append(s, '"')
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		StringEnd(s, 0)
	}
}

func TestNoControl(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			if r.IntN(8) == 0 {
				b[i] = byte(r.IntN(256))
			} else {
				b[i] = byte(0x20 + r.IntN(0x60))
			}
		}
		want := true
		for _, c := range b {
			if c < 0x20 {
				want = false
			}
		}
		if got := noControl(b); got != want {
			t.Fatalf("noControl(%q) = %v, want %v", b, got, want)
		}
	}
}

func TestPlainRun(t *testing.T) {
	alphabet := []byte{'"', '\\', 0x1f, 0x20, 0x7e, 0x7f, 0x80, 0xff, 0x00, 0x21, 0x5b, 0x5d}
	r := rand.New(rand.NewPCG(7, 8))
	for range 200000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			if r.IntN(12) == 0 {
				b[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				b[i] = byte(0x20 + r.IntN(0x5f))
			}
		}
		want := 0
		for want < len(b) && b[want] >= 0x20 && b[want] < 0x7f && b[want] != '"' && b[want] != '\\' {
			want++
		}
		if got := plainRun(b); got != want {
			t.Fatalf("plainRun(%q) = %d, want %d", b, got, want)
		}
	}
}

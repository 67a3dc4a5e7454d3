package event

import "testing"

func TestSafeText(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"<script>alert(1)</script>", "<script>alert(1)</script>"}, // html/template escapes markup; SafeText keeps it as text
		{"a\nb\tc\rd", `a\nb\tc\rd`},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"bell\a nul\x00 del\x7f", `bell\x07 nul\x00 del\x7f`},
		{"c1 \u0085 \u009b", `c1 \x85 \x9b`},
		{"admin\u202e\u2066txt.exe", `admin\u202e\u2066txt.exe`},
		{"zero\u200bwidth\ufeff", `zero\u200bwidth\ufeff`},
		{"arabic letter mark \u061c", `arabic letter mark \u061c`},
		{"bad utf-8 \xff\xfe!", `bad utf-8 \xff\xfe!`},
		{"é, 中文, emoji 🙂", "é, 中文, emoji 🙂"},
	} {
		if got := SafeText(c.in); got != c.want {
			t.Errorf("SafeText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSafeBlock(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a\nb\tc", "a\nb\tc"},
		{"a\r\nb", `a\r` + "\nb"},
		{"\x1b]0;title\x07", `\x1b]0;title\x07`},
		{"rtl \u202eoverride", `rtl \u202eoverride`},
	} {
		if got := SafeBlock(c.in); got != c.want {
			t.Errorf("SafeBlock(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestShorten(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"longer than ten", 10, "longer …"},
		{"é中文🙂é", 8, "é中…"}, // never splits a UTF-8 sequence
		{"abcdef", 2, ""},
		{"abcdef", 3, "…"},
	} {
		got := Shorten(c.in, c.n)
		if got != c.want || len(got) > c.n {
			t.Errorf("Shorten(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

package strictjson

import (
	"encoding/json"
	"strings"
	"testing"
)

var validSeeds = []string{
	`{}`, `[]`, ` {"a":[1,-2.5e+3,0,true,false,null,"x\"\\\/\b\f\n\r\t\u00e9"]} `, `"é"`, "\"\xff\"", `0`, `-0.0E-0`,
	`01`, `1.`, `.5`, `-`, `1e`, `1e+`, `+1`, `tru`, `nul`, `"\x"`, `"\u12g4"`, "\"a\x01\"", `{"a" 1}`, `{"a":1,}`,
	`[1,]`, `[1 2]`, `{1:2}`, `"abc`, `[`, `{`, ``, ` `, `1 2`, `{"a":1}}`, `[[]]`, "\"\x7f\"", `"\ud800"`, `{"a":{"b":[{}]}}`,
}

func TestIsJSON(t *testing.T) {
	for _, s := range validSeeds {
		if got, want := IsJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("IsJSON(%q) = %v, json.Valid %v", s, got, want)
		}
	}
	for _, n := range []int{maxNesting, maxNesting + 1} {
		for _, open := range []string{"[", `{"a":`} {
			close := map[string]string{"[": "]", `{"a":`: "}"}[open]
			s := []byte(strings.Repeat(open, n) + "1" + strings.Repeat(close, n))
			if got, want := IsJSON(s), json.Valid(s); got != want {
				t.Errorf("IsJSON of %d levels of %s = %v, json.Valid %v", n, open, got, want)
			}
		}
	}
}

// FuzzIsJSON: IsJSON answers as json.Valid does.
func FuzzIsJSON(f *testing.F) {
	for _, s := range validSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := IsJSON(data), json.Valid(data); got != want {
			t.Fatalf("IsJSON(%q) = %v, json.Valid %v", data, got, want)
		}
	})
}

func BenchmarkIsJSON(b *testing.B) {
	data := []byte(`{"prompt":"` + strings.Repeat("a", 984) + `","n":[1,2.5,true],"s":"x\"y"}`)
	b.Run("strictjson", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			IsJSON(data)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			json.Valid(data)
		}
	})
}

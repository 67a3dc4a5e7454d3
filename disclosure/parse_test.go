package disclosure

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
)

// parseOld is parse as it was before parseDirect: strictjson.Check, then
// encoding/json into any (parseAny).
func parseOld(data []byte) (*value, error) {
	if err := strictjson.Check(data, anyKeys); err != nil {
		return nil, err
	}
	return parseAny(data)
}

// sameParse fails t unless parse and parseOld agree on data: both refuse
// it, or both give the same value (its JSON, members in the same order).
func sameParse(t *testing.T, data []byte) {
	t.Helper()
	a, errA := parse(data)
	b, errB := parseOld(data)
	if (errA == nil) != (errB == nil) {
		t.Fatalf("%q: parse says %v, encoding/json %v", data, errA, errB)
	}
	if errA != nil {
		return
	}
	if ja, jb := a.appendJSON(nil), b.appendJSON(nil); !bytes.Equal(ja, jb) {
		t.Fatalf("%q: parse reads\n%s\nencoding/json reads\n%s", data, ja, jb)
	}
	if count(a, 0) != count(b, 0) {
		t.Fatalf("%q: %d disclosures, encoding/json's reading %d", data, count(a, 0), count(b, 0))
	}
}

// parseCases are JSON texts at the edges of the grammar and of the
// escaping of strings; each is read by parse as by encoding/json.
var parseCases = []string{
	`{}`, `[]`, `{"a":1}`, ` {"b" : [1, 2.5, -0, 1e3, 1E-3, -1.5e+10, true, false, null, "x"] } `,
	`{"z":1,"a":2,"m":{"y":[],"b":{}}}`, `{"a":"\u00e9\n\t\"\\\/"}`, `{"\u0061b":1}`, `{"é":"ü","e":"\u2028"}`,
	`{"a":"<>&"}`, `{"a":"` + "\x7f" + `"}`, `{"a":"\ud83d\ude00"}`, `{"a":"\ud800"}`, `{"a":"\udc00x"}`,
	`{"a":"` + "\xff" + `"}`, `{"` + "\xff" + `":1,"` + "\xfe" + `":2}`, `{"a":"` + "\x01" + `"}`, `{"a":"\x"}`,
	`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":+1}`, `{"a":0x10}`, `{"a":tru}`, `{"a":nul}`,
	`{"a":1}x`, `{"a":1}{}`, `{"a":1,}`, `[1,]`, `{"a" 1}`, `{"_sd":1}`, `{"a":{"...":1}}`, `{"a":[{"_sd_alg":1}]}`,
	`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `"x"`, `1`, `null`, ``, `{`, `{"a":[1,2`, `{"a":"b`,
	`{"a":` + strings.Repeat("[", 511) + strings.Repeat("]", 511) + `}`,
	`{"a":` + strings.Repeat("[", 512) + strings.Repeat("]", 512) + `}`,
	`{"a":` + strings.Repeat(`{"a":`, 600) + "1" + strings.Repeat("}", 600) + `}`,
}

func TestParseAsEncodingJSON(t *testing.T) {
	for _, c := range parseCases {
		sameParse(t, []byte(c))
	}
	for _, turns := range []int{1, 20} {
		sameParse(t, conversation(turns))
	}
}

// randomJSON writes a random JSON value of nesting up to depth, with keys
// and strings drawn from escapes, non-ASCII and invalid UTF-8, numbers in
// every form, and now and then a flaw.
func randomJSON(r *rand.Rand, b *strings.Builder, depth int) {
	str := func() {
		parts := []string{"a", "b", "é", `\u00e9`, `\n`, `\"`, `\\`, `\/`, "\x7f", "\xff", `\ud83d\ude00`, `\ud800`, "<", " ", "_sd", "...", "\u2028"}
		b.WriteByte('"')
		for range r.IntN(4) {
			b.WriteString(parts[r.IntN(len(parts))])
		}
		b.WriteByte('"')
	}
	switch k := r.IntN(10); {
	case depth > 0 && k < 3:
		b.WriteByte('{')
		for i := range r.IntN(5) {
			if i > 0 {
				b.WriteByte(',')
			}
			str()
			b.WriteString(": ")
			randomJSON(r, b, depth-1)
		}
		b.WriteByte('}')
	case depth > 0 && k < 5:
		b.WriteByte('[')
		for i := range r.IntN(5) {
			if i > 0 {
				b.WriteString(" ,")
			}
			randomJSON(r, b, depth-1)
		}
		b.WriteByte(']')
	case k < 7:
		str()
	case k < 9:
		nums := []string{"0", "-0", "12", "1.5", "-2.25e3", "1E+2", "3e-7", "01", "1.", "-", "1e"}
		b.WriteString(nums[r.IntN(len(nums))])
	default:
		b.WriteString([]string{"true", "false", "null", "nul"}[r.IntN(4)])
	}
}

// TestParseRandomAsEncodingJSON: on random JSON objects parse reads what
// encoding/json reads, and refuses what it refuses.
func TestParseRandomAsEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	for range 20000 {
		var b strings.Builder
		b.WriteString(`{"m":`)
		randomJSON(r, &b, 5)
		b.WriteString(`}`)
		sameParse(t, []byte(b.String()))
		if _, err := parse([]byte(b.String())); err == nil {
			accepted++
		}
	}
	if accepted < 2000 {
		t.Fatalf("only %d of the random texts were JSON: the test reads too few", accepted)
	}
}

func FuzzParseAsEncodingJSON(f *testing.F) {
	for _, c := range parseCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) { sameParse(t, data) })
}

// BenchmarkParse compares the reading of a payload by parse with
// encoding/json's (parseOld), in the same run.
func BenchmarkParse(b *testing.B) {
	for _, turns := range []int{1, 20} {
		p := conversation(turns)
		for _, v := range []struct {
			name string
			f    func([]byte) (*value, error)
		}{{"direct", parse}, {"encoding-json", parseOld}} {
			b.Run(fmt.Sprintf("bytes=%d/%s", len(p), v.name), func(b *testing.B) {
				b.SetBytes(int64(len(p)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := v.f(p); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

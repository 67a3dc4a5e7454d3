package event

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

// Marshal writes exactly what encoding/json writes for the same leaf:
// strings with escapes, HTML characters, non-ASCII, invalid UTF-8, U+2028,
// every kind of attribute value, optional fields present and absent.
func FuzzLeafMarshal(f *testing.F) {
	f.Add("01a2", "llm.request", "s-1", "agent\x01", "<b>&é\u2028", "\xff", int64(-3), 1.5, uint64(7), true, true)
	f.Add("", "", "", "", "", "", int64(0), 0.0, uint64(0), false, false)
	f.Add("a\"b\\c", "k\nd", "s\tt", "x\u007f", "1e21", "π", int64(math.MaxInt64), 1e21, uint64(math.MaxUint64), true, false)
	f.Add("id", "llm.request", "s", "a", "application/json", "0123abcd", int64(7), 0.5, uint64(3), true, true)
	f.Fuzz(func(t *testing.T, id, kind, session, actor, text, other string, n int64, x float64, u uint64, full, arrays bool) {
		l := &Leaf{V: LeafVersion, ID: id, Kind: kind, Time: "2026-12-07T11:00:00.000000000Z", Tenant: other, Session: session, Seq: u,
			Actor: Actor{Type: "agent", ID: actor}, Writer: &Writer{Token: text, Via: ViaAPI}}
		if full {
			l.Prev, l.Actor.OnBehalfOf, l.Subject = text, other, actor
			l.Attributes = Attributes{text: text, other: n, "b": full, "f": x, "u": u, "i": int(n), "num": json.Number("12")}
			if arrays {
				l.Attributes["arr"] = []any{text, n, x, false}
			}
			l.Payload = &Commitment{Alg: CommitmentAlg, Digest: id, Size: int(n % 1000), MediaType: text}
			if arrays {
				l.Payload.SD = other         // the field commitment, when the payload has one
				l.Payload.SDV = int(n%3) * 2 // absent (version 1) or 2, at times 4
			}
			l.Corrects = &u
		}
		got, gerr := l.Marshal()
		want, werr := l.marshalReflect()
		if (gerr != nil) != (werr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("Marshal:\n%s (%v)\nencoding/json:\n%s (%v)", got, gerr, want, werr)
		}
	})
}

func BenchmarkLeafMarshal(b *testing.B) {
	l := &Leaf{V: LeafVersion, ID: "01a25031e7d37043ce69f04f22f1ce2c", Kind: "llm.request", Time: "2026-12-07T11:00:00.000000000Z", Tenant: "default", Session: "load-1", Seq: 41,
		Prev: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Actor: Actor{Type: "agent", ID: "loadgen"}, Writer: &Writer{Token: "tok_0a1b2c3d", Via: ViaAPI},
		Attributes: Attributes{"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": int64(712), "gen_ai.usage.output_tokens": int64(64), "gen_ai.response.finish_reasons": []any{"stop"}, "stream": false},
		Payload:    &Commitment{Alg: CommitmentAlg, Digest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Size: 1024, MediaType: "application/json"}}
	defer reportCPU(b)()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

package disclosure

import (
	"bytes"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
)

// parseCases are payloads whose reading by parseChecked must equal
// encoding/json's (parseDecoded), or be left to it.
var parseCases = []string{
	chatRequest, string(conversation(1)), string(conversation(20)),
	`{}`, `[]`, `{"a":[]}`, `{"a":{}}`, ` { "b" : 1 , "a" : [ 1 , 2 ] } `,
	`{"k\u00e9y":"v\"<&>\u2028","n":-1.5e3,"t":true,"f":false,"x":null}`,
	`{"s":"caf` + "\u00e9" + `","t":"tab\tx","d":"del` + "\x7f" + `","u":"\ud83d\ude00","lone":"\ud800"}`,
	`{"b":1,"a":2,"B":3,"\u0061b":4}`, `{"a":1,"\u0061":2}`, `{"_sd":1}`, `{"x":{"...":1}}`,
	`"s"`, `1`, `true`, `null`, `[1,"a",{"z":0}]`, `{"bad":"` + "\xff" + `"}`,
	strings.Repeat(`[`, 600) + strings.Repeat(`]`, 600),
}

// TestParseChecked: where parseChecked answers, it reads what
// encoding/json reads.
func TestParseChecked(t *testing.T) {
	answered := 0
	for _, c := range parseCases {
		if checkParse(t, []byte(c)) {
			answered++
		}
	}
	if answered < len(parseCases)-5 {
		t.Errorf("parseChecked answered %d of %d cases", answered, len(parseCases))
	}
}

func checkParse(t *testing.T, data []byte) (answered bool) {
	t.Helper()
	if strictjson.Check(data, anyKeys) != nil {
		return false
	}
	v, ok := parseChecked(data)
	if !ok {
		return false
	}
	w, err := parseDecoded(data)
	if err != nil {
		t.Fatalf("%.60q: parseChecked read it, encoding/json refused it: %v", data, err)
	}
	if a, b := v.appendJSON(nil), w.appendJSON(nil); !bytes.Equal(a, b) {
		t.Fatalf("%.60q: parseChecked read %.80s, encoding/json %.80s", data, a, b)
	}
	return true
}

func FuzzParseChecked(f *testing.F) {
	for _, c := range parseCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkParse(t, data) })
}

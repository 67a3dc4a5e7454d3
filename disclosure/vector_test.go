package disclosure

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/disclosure-vector.json and disclosure-vector-v1.json")

// vector is the test vector of docs/disclosure.md: a payload, its salt,
// every field's salt and disclosure, the root and its hash, and a
// selection.
type vector struct {
	Comment  string          `json:"comment"`
	Version  int             `json:"sd_v,omitempty"` // the leaf's "sd_v"; absent in the V1 vector
	Salt     string          `json:"salt"`           // hex, the payload commitment's salt
	Payload  json.RawMessage `json:"payload"`
	Fields   []vectorField   `json:"fields"`
	Decoys   []vectorDecoy   `json:"decoys,omitempty"` // V2
	Root     json.RawMessage `json:"root"`
	RootHash string          `json:"root_hash"` // the leaf commitment's "sd"
	Select   string          `json:"select"`
	Selected []string        `json:"selected"`
	Claims   map[string]any  `json:"claims"`
}

type vectorField struct {
	Path       string `json:"path"`
	Salt       string `json:"salt"`
	Disclosure string `json:"disclosure"`
	Decoded    string `json:"decoded"`
	Digest     string `json:"digest"`
}

// vectorDecoy is decoy number J of the "_sd" list or array at Container.
type vectorDecoy struct {
	Container string `json:"container"` // the path as JSON: [] is the root
	J         int    `json:"j"`
	Digest    string `json:"digest"`
}

const vectorPayload = `{"model":"gpt-4o","messages":[{"role":"user","content":"Patient Jane Doe reports chest pain."}],"tools":[{"name":"lookup_record","description":"Reads a record"}],"usage":{"input_tokens":42,"output_tokens":7}}`

func buildVector(t *testing.T, version int) []byte {
	salt := make([]byte, 32)
	for i := range salt {
		salt[i] = byte(i)
	}
	tr, err := BuildVersion(version, salt, []byte(vectorPayload))
	if err != nil {
		t.Fatal(err)
	}
	comment := "LLMAuditTrail field disclosure test vector: see docs/disclosure.md. Rebuild: go test ./disclosure -run TestDisclosureVector -update (only when the format changes on purpose)."
	if version == V2 {
		comment = "LLMAuditTrail field disclosure test vector, version 2 (decoy digests): see docs/disclosure.md. Rebuild: go test ./disclosure -run TestDisclosureVector -update (only when the format changes on purpose)."
	}
	v := vector{
		Comment:  comment,
		Salt:     hex.EncodeToString(salt),
		Payload:  json.RawMessage(vectorPayload),
		Root:     Root(tr.SD),
		RootHash: tr.Hash(),
		Select:   "model,tools[*].name",
	}
	for _, n := range tr.nodes {
		raw, _ := b64dec(n.encoded)
		v.Fields = append(v.Fields, vectorField{Path: FormatPath(n.path), Salt: Salt(salt, n.path), Disclosure: n.encoded, Decoded: string(raw), Digest: n.digest})
	}
	if version == V2 {
		v.Version = V2
		// The containers: the root, then every disclosed object or array
		// above MaxDepth, each padded to Bucket of its fields.
		containers := [][]Step{nil}
		fields := map[string]int{"[]": 0}
		for _, n := range tr.nodes {
			if n.parent >= 0 {
				fields[string(pathJSON(tr.nodes[n.parent].path))]++
			} else {
				fields["[]"]++
			}
		}
		for _, n := range tr.nodes {
			raw, _ := b64dec(n.encoded)
			if len(n.path) < MaxDepth && (bytes.Contains(raw, []byte(`{"_sd":[`)) || bytes.Contains(raw, []byte(`[{"...":`))) {
				containers = append(containers, n.path)
			}
		}
		for _, c := range containers {
			k := string(pathJSON(c))
			for j := range Bucket(fields[k]) - fields[k] {
				v.Decoys = append(v.Decoys, vectorDecoy{Container: k, J: j, Digest: Decoy(salt, c, j)})
			}
		}
	}
	f, _ := ParseFields(v.Select)
	v.Selected, _ = tr.Select(f)
	vd, err := Verify(tr.Hash(), tr.SD, v.Selected)
	if err != nil {
		t.Fatal(err)
	}
	v.Claims = vd.Claims
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	enc.Encode(v)
	return b.Bytes()
}

// TestDisclosureVector builds testdata/disclosure-vector.json (V2) and
// disclosure-vector-v1.json (V1, the leaves without "sd_v") from their
// inputs and fails if a file differs.
func TestDisclosureVector(t *testing.T) {
	for version, path := range map[int]string{V2: "../testdata/disclosure-vector.json", V1: "../testdata/disclosure-vector-v1.json"} {
		built := buildVector(t, version)
		if *update {
			if err := os.WriteFile(path, built, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, built) {
			t.Fatalf("%s differs from what buildVector makes now; the format changed? (rebuild with -update only if that was intended)", path)
		}
	}
}

func b64dec(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

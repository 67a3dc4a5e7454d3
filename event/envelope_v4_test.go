package event

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/disclosure"
)

const envelopeV4VectorPath = "../testdata/envelope-vector-v4.json"

// envelopeV4Vector is testdata/envelope-vector-v4.json: the inputs of
// envelope-vector.json, sealed in leaf version 4, with the body's field
// salt, its field tree (root digest list and every disclosure, by path)
// and the field commitment.
type envelopeV4Vector struct {
	Comment   string   `json:"comment"`
	Secret    string   `json:"secret"`
	Tenant    string   `json:"tenant"`
	Body      string   `json:"body"`
	FieldSalt string   `json:"field_salt"`
	SD        []string `json:"sd"`
	// Disclosed are the fields kind and attributes["gen_ai.request.model"]
	// disclosed alone: their disclosures and their ancestors'.
	Disclosed   []string `json:"disclosed"`
	Disclosures []string `json:"disclosures"`
	Fields      string   `json:"fields"`
	Envelope    string   `json:"envelope"`
	EntryHash   string   `json:"entry_hash"`
}

func buildEnvelopeV4Vector(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile(vectorPath)
	if err != nil {
		t.Fatal(err)
	}
	var lv leafVector
	if err := json.Unmarshal(raw, &lv); err != nil {
		t.Fatal(err)
	}
	secret := bytes.Repeat([]byte{0x5e}, 32)
	s, err := NewEnvelopeSealerVersion(secret, LeafVersionFields)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(lv.LeafText)
	e := s.Seal(lv.Leaf.Tenant, body)
	env := e.Marshal()
	salt := s.FieldSalt(body)
	tree, err := disclosure.Build(salt, body)
	if err != nil {
		t.Fatal(err)
	}
	fields, err := disclosure.ParseFields(`kind,attributes["gen_ai.request.model"]`)
	if err != nil {
		t.Fatal(err)
	}
	ds, unmatched := tree.Select(fields)
	if len(unmatched) > 0 {
		t.Fatalf("unmatched %v", unmatched)
	}
	v := envelopeV4Vector{
		Comment:     "leaf version 4 (docs/leaf-format.md): as envelope-vector.json, and field_salt = HMAC-SHA256(HMAC-SHA256(secret, 'llmaudittrail body fields v1'), body); the body's field tree is the SD-JWT tree of docs/disclosure.md (version 2, with decoys) of the body with that salt: sd is its root digest list, disclosures those of the two fields named in disclosed (with their ancestor's), fields = SHA-256 of {\"_sd\":sd,\"_sd_alg\":\"sha-256\"}; envelope = {\"v\":4,\"nonce\",\"tag\",\"body\",\"fields\"}; entry_hash = SHA-256(0x00 || envelope).",
		Secret:      hex.EncodeToString(secret),
		Tenant:      lv.Leaf.Tenant,
		Body:        lv.LeafText,
		FieldSalt:   hex.EncodeToString(salt),
		SD:          tree.SD,
		Disclosed:   []string{"kind", `attributes["gen_ai.request.model"]`},
		Disclosures: ds,
		Fields:      hex.EncodeToString(e.Fields[:]),
		Envelope:    string(env),
		EntryHash:   hex.EncodeToString(LeafHash(env)),
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func TestEnvelopeV4Vector(t *testing.T) {
	built := buildEnvelopeV4Vector(t)
	if *update {
		if err := os.WriteFile(envelopeV4VectorPath, built, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(envelopeV4VectorPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, built) {
		t.Fatalf("%s differs from what the code makes now (rebuild with -update only if the format changed on purpose)\nfile:\n%s\nbuilt:\n%s", envelopeV4VectorPath, raw, built)
	}
	var v envelopeV4Vector
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	var v3 envelopeVector
	raw3, err := os.ReadFile(envelopeVectorPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw3, &v3); err != nil {
		t.Fatal(err)
	}
	// Recompute from the vector's inputs with HMAC and SHA-256 alone.
	m := hmac.New(sha256.New, mustHex(t, v.Secret))
	m.Write([]byte("llmaudittrail body fields v1"))
	m = hmac.New(sha256.New, m.Sum(nil))
	m.Write([]byte(v.Body))
	if got := hex.EncodeToString(m.Sum(nil)); got != v.FieldSalt {
		t.Errorf("field salt = %s, want %s", got, v.FieldSalt)
	}
	root, _ := json.Marshal(map[string]any{"_sd": v.SD, "_sd_alg": "sha-256"})
	if sum := sha256.Sum256(root); hex.EncodeToString(sum[:]) != v.Fields {
		t.Errorf("SHA-256(%s) = %x, want %s", root, sum, v.Fields)
	}
	// The same nonce, tag and body hash as version 3; the field
	// commitment besides.
	want := strings.TrimSuffix(v3.Envelope, `"}`) + `","fields":"` + v.Fields + `"}`
	want = strings.Replace(want, `{"v":3,`, `{"v":4,`, 1)
	if v.Envelope != want || len(v.Envelope) != EnvelopeSizeFields {
		t.Errorf("envelope = %s (%d bytes), want %s (%d)", v.Envelope, len(v.Envelope), want, EnvelopeSizeFields)
	}
	e, err := ParseEnvelope([]byte(v.Envelope))
	if err != nil || !e.HasFields || e.Version() != LeafVersionFields {
		t.Fatalf("ParseEnvelope = %+v, %v", e, err)
	}
	if err := CheckFields(&e, []byte(v.Body), mustHex(t, v.FieldSalt)); err != nil {
		t.Errorf("CheckFields(vector) = %v", err)
	}
	// Two fields disclosed alone verify against the commitment and show
	// the body's values.
	ver, err := disclosure.Verify(v.Fields, v.SD, v.Disclosures)
	if err != nil {
		t.Fatalf("verifying kind and the model: %v", err)
	}
	got := map[string]any{}
	for _, f := range ver.Fields {
		got[disclosure.FormatPath(f.Path)] = f.Value
	}
	if got["kind"] != "llm.request" || got[`attributes["gen_ai.request.model"]`] != "gpt-4o" || len(got) != 3 {
		t.Errorf("revealed %v, want kind, attributes (partly) and the model", got)
	}
	for _, d := range v.Disclosures {
		for _, secret := range []string{"clinic-a", "sess-42", "triage-bot", "chat"} {
			if dec, _ := base64.RawURLEncoding.DecodeString(d); strings.Contains(string(dec), secret) {
				t.Errorf("disclosure %s reveals %q", dec, secret)
			}
		}
	}
}

func TestEnvelopeV4Fields(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	s4, err := NewEnvelopeSealerVersion(secret, LeafVersionFields)
	if err != nil {
		t.Fatal(err)
	}
	s3, _ := NewEnvelopeSealer(secret)
	body := []byte(`{"v":2,"id":"00112233445566778899aabbccddeeff","kind":"tool.call","time":"2026-12-07T10:00:00.000000000Z","tenant":"t","session":"s","seq":0,"attributes":{"gen_ai.tool.name":"lookup"}}`)
	e4, e3 := s4.Seal("t", body), s3.Seal("t", body)
	if e4.Nonce != e3.Nonce || e4.Tag != e3.Tag || e4.Body != e3.Body || e3.HasFields {
		t.Fatalf("version 4 differs from 3 beyond the fields: %+v %+v", e4, e3)
	}
	if s3.FieldSalt(body) != nil {
		t.Error("a version 3 sealer has a field salt")
	}
	raw := e4.Marshal()
	if len(raw) != EnvelopeSizeFields || !IsEnvelope(raw) {
		t.Fatalf("%s: %d bytes", raw, len(raw))
	}
	if _, err := OpenEnvelope(raw, body, nil); err != nil {
		t.Fatal(err)
	}
	salt := s4.FieldSalt(body)
	if err := CheckFields(&e4, body, salt); err != nil {
		t.Fatal(err)
	}
	// Another salt, another body, or another commitment: refused.
	bad := bytes.Clone(salt)
	bad[0] ^= 1
	if err := CheckFields(&e4, body, bad); !errors.Is(err, ErrFieldsMismatch) {
		t.Errorf("wrong salt: %v", err)
	}
	if err := CheckFields(&e4, nil, salt); !errors.Is(err, ErrFieldsMismatch) {
		t.Errorf("no body: %v", err)
	}
	other := bytes.Replace(body, []byte("lookup"), []byte("delete"), 1)
	if err := CheckFields(&e4, other, salt); !errors.Is(err, ErrFieldsMismatch) {
		t.Errorf("another body: %v", err)
	}
	// A version 3 envelope has nothing to check.
	if err := CheckFields(&e3, other, nil); err != nil {
		t.Errorf("version 3: %v", err)
	}
	// Parsing is exact: a version 3 header with a fields member, upper-case
	// hex, or a truncated version 4 envelope are refused.
	for _, b := range [][]byte{
		bytes.Replace(raw, []byte(`{"v":4,`), []byte(`{"v":3,`), 1),
		bytes.ToUpper(raw),
		raw[:len(raw)-1],
		append(e3.Marshal(), ' '),
	} {
		if _, err := ParseEnvelope(b); !errors.Is(err, ErrEnvelope) {
			t.Errorf("ParseEnvelope(%s) = %v", b, err)
		}
	}
	if _, err := NewEnvelopeSealerVersion(secret, 2); err == nil {
		t.Error("a sealer of version 2")
	}
}

package signature

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/signature-vector.json")

const vectorPath = "../testdata/signature-vector.json"

// vector is the published test vector of the statement format: a fixed
// key, a statement, the exact bytes signed and the signature (Ed25519 is
// deterministic, so the vector is stable).
type vector struct {
	Comment    string          `json:"comment"`
	Seed       string          `json:"private_key_seed"` // hex, 32 bytes: test key only
	PublicKey  string          `json:"public_key"`       // base64, as signer.public_key carries it
	KeyID      string          `json:"key_id"`
	Fields     json.RawMessage `json:"statement_fields"`
	Statement  string          `json:"statement"`   // canonical text
	MessageHex string          `json:"message_hex"` // domain line + statement
	Signature  string          `json:"signature"`   // base64
}

func buildVector() (*vector, error) {
	seed, _ := hex.DecodeString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	s := &Statement{
		Origin: "audit.example.org/clinic", Index: 4711,
		LeafHash: "7d3c9b1a2f4e5d6c8b0a9f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a", Meaning: "approved",
		Reason: "triage summary checked against the chart <ok> & signed", Tenant: "clinic-a", Signer: "dr-ada",
		PrintedName: "Dr. Ada Lovelace", KeyID: KeyID(pub), Time: "2026-12-01T14:03:07.123456789Z",
		Nonce: "00112233445566778899aabbccddeeff",
	}
	canon, err := s.Marshal()
	if err != nil {
		return nil, err
	}
	msg, _ := s.Message()
	fields, _ := json.MarshalIndent(s, "  ", "  ")
	return &vector{
		Comment: "LLMAuditTrail signature statement v1 test vector: see docs/signatures.md. The key is a test key. " +
			"Rebuild: go test ./signature -run TestVector -update (not needed unless the format changes).",
		Seed: hex.EncodeToString(seed), PublicKey: base64.StdEncoding.EncodeToString(pub), KeyID: KeyID(pub),
		Fields: fields, Statement: string(canon), MessageHex: hex.EncodeToString(msg),
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(priv, msg)),
	}, nil
}

func TestVector(t *testing.T) {
	v, err := buildVector()
	if err != nil {
		t.Fatal(err)
	}
	built, _ := json.MarshalIndent(v, "", "  ")
	built = append(built, '\n')
	if *update {
		if err := os.WriteFile(vectorPath, built, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(vectorPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, built) {
		t.Fatalf("%s differs from what buildVector makes now; the statement format changed? (rebuild with -update only if intended)\nfile:\n%s\nbuilt:\n%s", vectorPath, raw, built)
	}
	// The vector checks with plain ed25519 on the documented bytes.
	var f vector
	json.Unmarshal(raw, &f)
	pub, _ := base64.StdEncoding.DecodeString(f.PublicKey)
	sig, _ := base64.StdEncoding.DecodeString(f.Signature)
	if msg := []byte(Domain + f.Statement); hex.EncodeToString(msg) != f.MessageHex || !ed25519.Verify(pub, msg, sig) {
		t.Fatal("the vector does not verify on its documented bytes")
	}
	// The canonical text: struct order, compact, no HTML escaping.
	if !strings.HasPrefix(f.Statement, `{"origin":"audit.example.org/clinic","index":4711,"leaf_hash":`) || !strings.Contains(f.Statement, `<ok> & signed`) {
		t.Fatalf("canonical statement %s", f.Statement)
	}
	s, err := ParseStatement([]byte(f.Statement))
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(pub, s, sig); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	v, _ := buildVector()
	pub, _ := base64.StdEncoding.DecodeString(v.PublicKey)
	sig, _ := base64.StdEncoding.DecodeString(v.Signature)
	good, _ := ParseStatement([]byte(v.Statement))
	for name, mod := range map[string]func(s *Statement){
		"another index":        func(s *Statement) { s.Index++ },
		"another leaf":         func(s *Statement) { s.LeafHash = strings.Repeat("ab", 32) },
		"another meaning":      func(s *Statement) { s.Meaning = "rejected" },
		"another reason":       func(s *Statement) { s.Reason = "" },
		"another log":          func(s *Statement) { s.Origin = "other.example/log" },
		"another signer":       func(s *Statement) { s.Signer = "dr-bob" },
		"another printed name": func(s *Statement) { s.PrintedName = "Dr. Bob" },
		"another time":         func(s *Statement) { s.Time = "2026-12-01T14:03:08.123456789Z" },
		"another nonce":        func(s *Statement) { s.Nonce = strings.Repeat("0", 32) },
		"an unknown meaning":   func(s *Statement) { s.Meaning = "liked" },
		"a bad time":           func(s *Statement) { s.Time = "yesterday" },
		"a short leaf hash":    func(s *Statement) { s.LeafHash = "abcd" },
	} {
		s := *good
		mod(&s)
		if err := Verify(pub, &s, sig); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, other, _ := ed25519.GenerateKey(nil)
	if err := Verify(other.Public().(ed25519.PublicKey), good, sig); err == nil || !strings.Contains(err.Error(), "names key") {
		t.Errorf("another key: %v", err)
	}
	for _, bad := range []string{
		v.Statement + " {}",
		strings.Replace(v.Statement, `"nonce"`, `"extra":1,"nonce"`, 1),
		`{"origin":`,
	} {
		if _, err := ParseStatement([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseStatement(%.60q): %v", bad, err)
		}
	}
}

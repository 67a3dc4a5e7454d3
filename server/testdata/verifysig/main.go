// Command verifysig checks an exported LLMAuditTrail signature (the answer
// of GET /v1/signatures/{index}) with nothing but the Go standard library,
// following docs/signatures.md: the Ed25519 signature over the domain line
// and the statement, with the public key that the enrollment leaf carries.
// It does not check the receipts' inclusion proofs and checkpoint (that is
// monitor verify-receipt's job); it shows that the statement format alone
// lets a third party check who signed what.
//
//	go run ./testdata/verifysig SIGNATURE.json
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
)

const domain = "llmaudittrail/signature/v1\n"

type receipt struct {
	Index uint64 `json:"index"`
	Leaf  []byte `json:"leaf"` // base64 in JSON
}

type export struct {
	Statement  string   `json:"statement"`
	Signature  string   `json:"signature"`
	Enrollment receipt  `json:"enrollment"`
	Record     *receipt `json:"record"`
}

type statement struct {
	Origin      string `json:"origin"`
	Index       uint64 `json:"index"`
	LeafHash    string `json:"leaf_hash"`
	Meaning     string `json:"meaning"`
	Tenant      string `json:"tenant"`
	Signer      string `json:"signer"`
	PrintedName string `json:"printed_name"`
	KeyID       string `json:"key_id"`
	Time        string `json:"time"`
}

type leaf struct {
	Kind       string         `json:"kind"`
	Tenant     string         `json:"tenant"`
	Attributes map[string]any `json:"attributes"`
}

func main() {
	if err := run(); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 2 {
		return fmt.Errorf("usage: verifysig SIGNATURE.json")
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		return err
	}
	var x export
	if err := json.Unmarshal(data, &x); err != nil {
		return err
	}
	var st statement
	if err := json.Unmarshal([]byte(x.Statement), &st); err != nil {
		return fmt.Errorf("statement: %v", err)
	}
	var enr leaf
	if err := json.Unmarshal(x.Enrollment.Leaf, &enr); err != nil {
		return fmt.Errorf("enrollment leaf: %v", err)
	}
	if enr.Kind != "signer.enrolled" && enr.Kind != "signer.key_rotated" {
		return fmt.Errorf("the enrollment leaf is a %s", enr.Kind)
	}
	id, _ := enr.Attributes["signer.id"].(string)
	name, _ := enr.Attributes["signer.printed_name"].(string)
	b64, _ := enr.Attributes["signer.public_key"].(string)
	pub, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("the enrollment leaf carries no Ed25519 key")
	}
	kid := sha256.Sum256(pub)
	switch {
	case enr.Tenant != st.Tenant || id != st.Signer:
		return fmt.Errorf("enrolled %s/%s, statement by %s/%s", enr.Tenant, id, st.Tenant, st.Signer)
	case name != st.PrintedName:
		return fmt.Errorf("enrolled as %q, statement says %q", name, st.PrintedName)
	case hex.EncodeToString(kid[:]) != st.KeyID:
		return fmt.Errorf("the statement names key %s, the enrollment carries %x", st.KeyID, kid)
	}
	sig, err := base64.StdEncoding.DecodeString(x.Signature)
	if err != nil {
		return fmt.Errorf("signature: %v", err)
	}
	if !ed25519.Verify(ed25519.PublicKey(pub), []byte(domain+x.Statement), sig) {
		return fmt.Errorf("the Ed25519 signature does not verify")
	}
	if x.Record != nil {
		// RFC 6962 leaf hash: SHA-256(0x00 || leaf).
		lh := sha256.Sum256(append([]byte{0}, x.Record.Leaf...))
		if x.Record.Index != st.Index || !bytes.Equal([]byte(hex.EncodeToString(lh[:])), []byte(st.LeafHash)) {
			return fmt.Errorf("the record is entry %d with leaf hash %x, the statement signs %d %s", x.Record.Index, lh, st.Index, st.LeafHash)
		}
	}
	fmt.Printf("OK: %q (%s) %s entry %d (leaf %s) of %s at %s\n", st.PrintedName, st.Signer, st.Meaning, st.Index, st.LeafHash, st.Origin, st.Time)
	return nil
}

package signature

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// Export is a signature with what a third party needs to check it offline:
// the receipt of the enrollment (or key rotation) event that put the
// signer's key in the log, and optionally the receipts of the signature
// event and of the signed record. The server answers one for
// GET /v1/signatures/{index}.
type Export struct {
	// Statement is the canonical statement, exactly as signed (without the
	// domain line).
	Statement string `json:"statement"`
	// Signature is the standard base64 Ed25519 signature.
	Signature  string       `json:"signature"`
	Enrollment *api.Receipt `json:"enrollment"`
	Event      *api.Receipt `json:"event,omitempty"`
	Record     *api.Receipt `json:"record,omitempty"`
}

// MaxExportBytes caps an export read from outside.
const MaxExportBytes = 4 << 20

// Verified is what an export proves.
type Verified struct {
	Statement *Statement
	// EnrollmentIndex is the log index of the event that enrolled the key.
	EnrollmentIndex uint64
	// EventIndex and RecordChecked say what else was proved: the signature
	// event is in the log at EventIndex (if its receipt came along), and the
	// signed record is the one at Statement.Index (if its receipt came
	// along).
	EventIndex    *uint64
	RecordChecked bool
}

// VerifyExport checks an export with the log's key (and, if not nil, a
// witness policy): every receipt verifies; the enrollment leaf enrolls the
// statement's signer, in its tenant, with its printed name and key; the
// signature verifies with that key; the statement names this log; the
// signature event carries this very statement and comes after the
// enrollment; the record receipt is for the statement's index and leaf hash.
// Whether the key was revoked later than the enrollment is not visible
// offline: monitor verify checks that against the whole log.
func VerifyExport(data []byte, logKey note.Verifier, policy *checkpoint.Policy) (*Verified, error) {
	if len(data) > MaxExportBytes {
		return nil, invalid("export larger than %d bytes", MaxExportBytes)
	}
	var x Export
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&x); err != nil {
		return nil, invalid("decoding export: %v", err)
	}
	return verifyExport(&x, logKey, policy)
}

// VerifyProofs checks a signature given as tlog-proofs (c2sp.org/tlog-proof@v1,
// each with its leaf as extra data, as GET /v1/entries/{index}/proof
// answers): eventProof is the proof of the human.signature event, which carries
// the statement and the signature; enrollmentProof that of the event that put
// the signer's key in the log; recordProof, if not nil, that of the signed
// record. The checks are VerifyExport's, with the statement and the
// signature taken from the verified signature event. JSON receipts are
// accepted in place of any of the proofs.
func VerifyProofs(eventProof, enrollmentProof, recordProof []byte, logKey note.Verifier, policy *checkpoint.Policy) (*Verified, error) {
	x := &Export{}
	var err error
	if x.Event, err = api.ParseReceipt(eventProof); err != nil {
		return nil, fmt.Errorf("%w: signature event: %v", ErrInvalid, err)
	}
	if x.Enrollment, err = api.ParseReceipt(enrollmentProof); err != nil {
		return nil, fmt.Errorf("%w: enrollment: %v", ErrInvalid, err)
	}
	if recordProof != nil {
		if x.Record, err = api.ParseReceipt(recordProof); err != nil {
			return nil, fmt.Errorf("%w: record: %v", ErrInvalid, err)
		}
	}
	// The statement and signature come from the leaf, which verifyExport
	// then checks against the verified signature event.
	l, err := event.ParseLeaf(x.Event.Leaf)
	if err != nil {
		return nil, fmt.Errorf("%w: signature event leaf: %v", ErrInvalid, err)
	}
	st, sig, err := FromLeaf(l)
	if err != nil {
		return nil, err
	}
	canon, err := st.Marshal()
	if err != nil {
		return nil, err
	}
	x.Statement, x.Signature = string(canon), base64.StdEncoding.EncodeToString(sig)
	return verifyExport(x, logKey, policy)
}

func verifyExport(x *Export, logKey note.Verifier, policy *checkpoint.Policy) (*Verified, error) {
	if x.Enrollment == nil {
		return nil, invalid("the export has no enrollment receipt")
	}
	s, err := ParseStatement([]byte(x.Statement))
	if err != nil {
		return nil, err
	}
	if canon, err := s.Marshal(); err != nil || string(canon) != x.Statement {
		return nil, invalid("the statement is not in canonical form")
	}
	sig, err := base64.StdEncoding.DecodeString(x.Signature)
	if err != nil {
		return nil, invalid("signature is not base64")
	}
	if s.Origin != logKey.Name() {
		return nil, invalid("the statement signs a record of log %q, not of %q", s.Origin, logKey.Name())
	}
	rv := api.NewReceiptVerifier(logKey, policy)
	verify := func(what string, r *api.Receipt) (*api.VerifiedReceipt, *event.Leaf, error) {
		vr, err := rv.Verify(r)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s receipt: %v", ErrInvalid, what, err)
		}
		l, err := vr.Event()
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s leaf: %v", ErrInvalid, what, err)
		}
		return vr, l, nil
	}
	enr, el, err := verify("enrollment", x.Enrollment)
	if err != nil {
		return nil, err
	}
	id, name, pub, err := PublicKeyFromLeaf(el)
	if err != nil {
		return nil, err
	}
	switch {
	case el.Tenant != s.Tenant || id != s.Signer:
		return nil, invalid("the enrollment is of signer %s/%s, the statement of %s/%s", el.Tenant, id, s.Tenant, s.Signer)
	case name != s.PrintedName:
		return nil, invalid("the statement's printed name %q is not the enrolled %q", s.PrintedName, name)
	}
	if err := Verify(pub, s, sig); err != nil {
		return nil, err
	}
	out := &Verified{Statement: s, EnrollmentIndex: enr.Index}
	if x.Event != nil {
		ev, l, err := verify("signature event", x.Event)
		if err != nil {
			return nil, err
		}
		st, esig, err := FromLeaf(l)
		if err != nil {
			return nil, err
		}
		if m1, _ := st.Marshal(); string(m1) != x.Statement || !bytes.Equal(esig, sig) {
			return nil, invalid("the signature event at %d carries another statement or signature", ev.Index)
		}
		if ev.Index <= enr.Index || ev.Index <= s.Index {
			return nil, invalid("the signature event (%d) does not come after the enrollment (%d) and the record (%d)", ev.Index, enr.Index, s.Index)
		}
		out.EventIndex = &ev.Index
	}
	if x.Record != nil {
		rr, err := rv.Verify(x.Record)
		if err != nil {
			return nil, fmt.Errorf("%w: record receipt: %v", ErrInvalid, err)
		}
		if rr.Index != s.Index || fmt.Sprintf("%x", rr.LeafHash) != s.LeafHash {
			return nil, invalid("the record receipt is for entry %d (%x), the statement signs %d (%s)", rr.Index, rr.LeafHash, s.Index, s.LeafHash)
		}
		out.RecordChecked = true
	}
	return out, nil
}

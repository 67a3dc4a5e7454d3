package console

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/disclosure"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/signature"
)

// The event detail: the leaf's fields, its inclusion proof and checkpoint
// (verified here), the receipt to download, the signatures made on it
// (their manifestations, 21 CFR 11.50), the payload behind an explicit,
// logged action, and the signing form.

type entryData struct {
	V          *verifiedEntry
	Fields     []attr
	Attrs      []attr
	Commitment *event.Commitment
	Proof      []string
	// SessionLink is the timeline of the entry's session.
	SessionLink string
	// Signatures are the signatures on this record; Carries is the one
	// this entry carries, if it is a human.signature event.
	Signatures    []manifestation
	SignaturesErr string
	Carries       *manifestation
	Payload       *payloadView
	PayloadErr    string
	// Disclosed and FieldsErr are the field picker's answer (fields.go);
	// Choices the fields it offers.
	Disclosed *fieldsView
	FieldsErr string
	Choices   []string
	Meanings  []string
	Signer    string
	// Signed is the signature just made, when the page follows a signing.
	Signed *manifestation
}

// manifestation is what a signature shows (21 CFR 11.50): printed name,
// date and time, meaning; and whether it verified.
type manifestation struct {
	Event       uint64 // the human.signature event
	Record      uint64 // the signed record
	Signer      string
	PrintedName string
	Time        string
	Meaning     string
	Reason      string
	Valid       bool
	Problem     string
}

type payloadView struct {
	MediaType  string
	Size       int
	Text       string
	Clipped    bool
	Salt       string
	Digest     string // the leaf's
	Recomputed string // HMAC-SHA256(salt, payload) over what was disclosed
	Opens      bool
	SameLeaf   bool
	Access     uint64 // the access.read event of this read
	Pseudonyms []attr
}

func parseIndex(s string) (uint64, bool) {
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// jumpToEntry goes to the entry a form names.
func (c *Console) jumpToEntry(w http.ResponseWriter, r *http.Request, u *user) {
	idx, ok := parseIndex(strings.TrimSpace(r.URL.Query().Get("index")))
	if !ok {
		c.fail(w, r, u, http.StatusBadRequest, "An entry is named by its log index, a number.")
		return
	}
	http.Redirect(w, r, fmt.Sprintf("%sentries/%d", Path, idx), http.StatusSeeOther)
}

func (c *Console) entryPage(w http.ResponseWriter, r *http.Request, u *user) {
	d, ok := c.entry(w, r, u)
	if !ok {
		return
	}
	if s, ok := parseIndex(r.URL.Query().Get("signed")); ok {
		for i := range d.Signatures {
			if d.Signatures[i].Event == s {
				d.Signed = &d.Signatures[i]
			}
		}
	}
	c.render(w, r, http.StatusOK, "entry", page{Title: fmt.Sprintf("Entry %d", d.V.Index), Nav: "sessions", User: u, Data: d})
}

// entry reads, verifies and describes the entry of the request's path; it
// answers the error itself (ok false).
func (c *Console) entry(w http.ResponseWriter, r *http.Request, u *user) (*entryData, bool) {
	idx, ok := parseIndex(r.PathValue("index"))
	if !ok {
		c.fail(w, r, u, http.StatusBadRequest, "An entry is named by its log index, a number.")
		return nil, false
	}
	v, err := c.verifyEntry(r.Context(), u.log, idx, true)
	if err != nil {
		c.failErr(w, r, u, fmt.Sprintf("Entry %d", idx), err)
		return nil, false
	}
	d := &entryData{V: v, Meanings: signature.Meanings, Choices: FieldChoices}
	u.mu.Lock()
	d.Signer = u.signer
	u.mu.Unlock()
	for _, h := range v.Receipt.InclusionProof {
		d.Proof = append(d.Proof, hex.EncodeToString(h))
	}
	l := v.Leaf
	if l == nil {
		return d, true
	}
	d.SessionLink = sessionLink(l.Tenant, l.Session)
	f := func(k, v string) {
		if v != "" {
			d.Fields = append(d.Fields, attr{Key: k, Value: event.SafeText(v)})
		}
	}
	f("version", strconv.Itoa(l.V))
	f("id", l.ID)
	f("kind", l.Kind)
	f("time", l.Time)
	f("tenant", l.Tenant)
	f("session", l.Session)
	f("seq", strconv.FormatUint(l.Seq, 10))
	f("prev", l.Prev)
	f("actor.type", l.Actor.Type)
	f("actor.id", l.Actor.ID)
	f("actor.on_behalf_of", l.Actor.OnBehalfOf)
	f("subject", l.Subject)
	if l.Writer != nil {
		f("writer.token", l.Writer.Token)
		f("writer.via", l.Writer.Via)
	}
	if l.Corrects != nil {
		f("corrects", strconv.FormatUint(*l.Corrects, 10))
	}
	d.Attrs = attrs(l.Attributes)
	d.Commitment = l.Payload
	if l.Kind == event.KindHumanSignature {
		m := c.manifest(r, u, v.Index)
		d.Carries = &m
	}
	d.Signatures, d.SignaturesErr = c.signaturesOn(r, u, v)
	return d, true
}

// sessionLink is the console's URL of a session's timeline.
func sessionLink(tenant, session string) string {
	return Path + "sessions/" + session + "?tenant=" + tenant
}

// maxSignatureScan caps the events of a session read to find the
// signatures on one of its records, and maxSignaturesShown the signatures
// read and verified.
const (
	maxSignatureScan   = 10000
	maxSignaturesShown = 50
)

// signaturesOn finds the signatures on the entry: human.signature events
// of its session after it, whose statements name it, each verified from
// its export (statement, key enrolled in the log, receipts).
func (c *Console) signaturesOn(r *http.Request, u *user, v *verifiedEntry) ([]manifestation, string) {
	l := v.Leaf
	if l.Kind == event.KindHumanSignature {
		return nil, ""
	}
	var out []manifestation
	var from uint64 = l.Seq + 1
	read := 0
	for scanned := 0; scanned < maxSignatureScan; {
		p, err := u.log.Session(r.Context(), l.Session, client.SessionQuery{Tenant: l.Tenant, FromSeq: from, Limit: 1000})
		if errors.Is(err, client.ErrNotFound) {
			break
		}
		if err != nil {
			return out, "the signatures on this record could not be read: " + err.Error()
		}
		for _, e := range p.Events {
			if e.Kind != event.KindHumanSignature {
				continue
			}
			if read++; read > maxSignaturesShown {
				return out, fmt.Sprintf("only the first %d signatures of this session were read", maxSignaturesShown)
			}
			if m := c.manifest(r, u, e.Index); m.Record == v.Index {
				out = append(out, m)
			}
		}
		scanned += len(p.Events)
		if len(p.Events) < 1000 {
			break
		}
		from = p.Events[len(p.Events)-1].Seq + 1
	}
	return out, ""
}

// manifest reads and verifies the signature event at index.
func (c *Console) manifest(r *http.Request, u *user, index uint64) manifestation {
	m := manifestation{Event: index}
	data, err := u.log.SignatureExport(r.Context(), index)
	if err != nil {
		m.Problem = "the signature could not be read: " + err.Error()
		return m
	}
	var x signature.Export
	if json.Unmarshal(data, &x) == nil {
		if st, err := signature.ParseStatement([]byte(x.Statement)); err == nil {
			// Shown even if it does not verify, marked as such.
			m.Record, m.Signer, m.PrintedName, m.Time, m.Meaning, m.Reason = st.Index, st.Signer, st.PrintedName, st.Time, st.Meaning, st.Reason
		}
	}
	vf, err := signature.VerifyExport(data, c.cfg.Key, c.cfg.Policy)
	if err != nil {
		m.Problem = err.Error()
		return m
	}
	st := vf.Statement
	m.Record, m.Signer, m.PrintedName, m.Time, m.Meaning, m.Reason = st.Index, st.Signer, st.PrintedName, st.Time, st.Meaning, st.Reason
	m.Valid = vf.EventIndex != nil && *vf.EventIndex == index && vf.RecordChecked
	if !m.Valid {
		m.Problem = "the export does not prove the signature event and the signed record"
	}
	return m
}

// receiptDownload answers the entry's receipt (leaf, inclusion proof,
// cosigned checkpoint) as a JSON file (/receipt) or as a C2SP tlog-proof
// (/proof), after verifying it (which holds the tlog-proof to the JSON).
func (c *Console) receiptDownload(w http.ResponseWriter, r *http.Request, u *user) {
	idx, ok := parseIndex(r.PathValue("index"))
	if !ok {
		c.fail(w, r, u, http.StatusBadRequest, "An entry is named by its log index, a number.")
		return
	}
	v, err := c.verifyEntry(r.Context(), u.log, idx, false)
	if err != nil {
		c.failErr(w, r, u, fmt.Sprintf("Entry %d", idx), err)
		return
	}
	if !v.Included {
		c.fail(w, r, u, http.StatusBadGateway, "The log's receipt for this entry does not verify: "+strings.Join(v.Badge.Reasons, "; "))
		return
	}
	if strings.HasSuffix(r.URL.Path, "/proof") {
		if v.Receipt.TlogProof == "" {
			c.fail(w, r, u, http.StatusBadGateway, "The log's receipt for this entry carries no tlog-proof.")
			return
		}
		download(w, fmt.Sprintf("entry-%d%s", idx, api.TlogProofExt), "text/plain; charset=utf-8", []byte(v.Receipt.TlogProof))
		return
	}
	b, err := json.MarshalIndent(v.Receipt, "", "  ")
	if err != nil {
		c.fail(w, r, u, http.StatusInternalServerError, err.Error())
		return
	}
	download(w, fmt.Sprintf("receipt-%d.json", idx), "application/json", append(b, '\n'))
}

// signatureExport answers a signature's export (what monitor
// verify-signature checks offline), after verifying it.
func (c *Console) signatureExport(w http.ResponseWriter, r *http.Request, u *user) {
	idx, ok := parseIndex(r.PathValue("index"))
	if !ok {
		c.fail(w, r, u, http.StatusBadRequest, "A signature is named by the log index of its event, a number.")
		return
	}
	data, err := u.log.SignatureExport(r.Context(), idx)
	if err != nil {
		c.failErr(w, r, u, fmt.Sprintf("The signature of entry %d", idx), err)
		return
	}
	if _, err := signature.VerifyExport(data, c.cfg.Key, c.cfg.Policy); err != nil {
		c.fail(w, r, u, http.StatusBadGateway, "The log's export of this signature does not verify: "+err.Error())
		return
	}
	download(w, fmt.Sprintf("signature-%d.json", idx), "application/json", data)
}

// download answers a file to save.
func download(w http.ResponseWriter, name, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename=%q`, name))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// openPayload discloses the entry's payload (audit scope): the log
// records the read as an access.read event before it answers. The page
// shows the payload, the commitment check and the access event.
func (c *Console) openPayload(w http.ResponseWriter, r *http.Request, u *user) {
	d, ok := c.entry(w, r, u)
	if !ok {
		return
	}
	status := http.StatusOK
	disc, err := u.log.Payload(r.Context(), d.V.Index)
	switch {
	case err == nil:
		pv := &payloadView{MediaType: event.SafeText(disc.MediaType), Size: len(disc.Payload), Salt: hex.EncodeToString(disc.Salt),
			Recomputed: hex.EncodeToString(event.Commit(disc.Salt, disc.Payload)), Access: disc.Access.Index,
			SameLeaf: hex.EncodeToString(disc.LeafHash) == d.V.LeafHash}
		if d.Commitment != nil {
			pv.Digest = d.Commitment.Digest
			pv.Opens = d.V.Leaf != nil && event.CheckCommitment(d.V.Leaf.Payload, disc.Salt, disc.Payload) &&
				disclosure.Opens(d.V.Leaf.Payload.SD, d.V.Leaf.Payload.SDVersion(), disc.Salt, disc.Payload)
		}
		pv.Text, pv.Clipped = payloadText(disc.MediaType, disc.Payload, maxPayloadPage)
		keys := make([]string, 0, len(disc.Pseudonyms))
		for k := range disc.Pseudonyms {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			pv.Pseudonyms = append(pv.Pseudonyms, attr{Key: event.SafeText(k), Value: event.SafeText(disc.Pseudonyms[k])})
		}
		d.Payload = pv
	case errors.Is(err, client.ErrCommitment):
		status, d.PayloadErr = http.StatusBadGateway, "The payload the log disclosed does NOT open the leaf's commitment: it is not the payload this entry committed to."
	case errors.Is(err, client.ErrErased):
		d.PayloadErr = "The payload was erased (a logged erasure destroyed it); the leaf and its proofs stay valid."
	case errors.Is(err, client.ErrForbidden):
		status, d.PayloadErr = http.StatusForbidden, "Opening payloads needs a token with the audit scope."
	case errors.Is(err, client.ErrNotFound):
		status, d.PayloadErr = http.StatusNotFound, "This entry has no payload. "+clientMessage(err)
	default:
		status, d.PayloadErr = http.StatusBadGateway, "The payload could not be read: "+err.Error()
	}
	c.render(w, r, status, "entry", page{Title: fmt.Sprintf("Entry %d", d.V.Index), Nav: "sessions", User: u, Data: d})
}

// maxPayloadPage caps the payload text an entry page shows.
const maxPayloadPage = 256 << 10

// signErrors words the server's refusals of a signing.
var signErrors = map[string]string{
	"wrong_secret":    "The secret is wrong. The log recorded the failed attempt; after 5 failures within 15 minutes the signer is locked.",
	"locked":          "The signer is locked after failed attempts (30 minutes, or until an admin unlocks).",
	"not_bound":       "Your token is not bound to that signer: a signer signs with a token of the sign scope bound to them.",
	"signer_revoked":  "That signer's key is revoked.",
	"leaf_mismatch":   "The record changed under the signature: its leaf hash is not the log's.",
	"already_signed":  "You already signed this record with this meaning.",
	"signing_session": "Your signing session ended: sign again with your signer id and secret.",
	"forbidden":       "Signing needs a token of the sign scope.",
}

// sign signs the entry (a token of the sign scope, bound to the signer)
// with the meaning, reason and secret of the form, and shows the
// manifestation. Within a signing session (21 CFR 11.200(a)(1)) the
// secret suffices; the console keeps the session, never the secret.
func (c *Console) sign(w http.ResponseWriter, r *http.Request, u *user) {
	d, ok := c.entry(w, r, u)
	if !ok {
		return
	}
	signer := strings.TrimSpace(r.PostFormValue("signer"))
	secret := r.PostFormValue("secret")
	meaning := r.PostFormValue("meaning")
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	refuse := func(status int, msg string) {
		c.render(w, r, status, "entry", page{Title: fmt.Sprintf("Entry %d", d.V.Index), Nav: "sessions", User: u, Error: msg, Data: d})
	}
	switch {
	case !d.V.Included || d.V.Leaf == nil:
		refuse(http.StatusConflict, "This entry did not verify; the console signs only what it verified.")
		return
	case !event.ValidID(signer):
		refuse(http.StatusBadRequest, "Give your signer id.")
		return
	case secret == "":
		refuse(http.StatusBadRequest, "Give your signing secret.")
		return
	case !slices.Contains(signature.Meanings, meaning):
		refuse(http.StatusBadRequest, "Choose what your signature means.")
		return
	case len(reason) > signature.MaxReason:
		refuse(http.StatusBadRequest, fmt.Sprintf("The reason is longer than %d bytes.", signature.MaxReason))
		return
	}
	req := api.SignRequest{Secret: secret, Index: d.V.Index, LeafHash: d.V.LeafHash, Meaning: meaning, Reason: reason}
	u.mu.Lock()
	if u.signer == signer && u.signing != "" {
		req.SigningSession = u.signing
	} else {
		req.Signer = signer
	}
	u.mu.Unlock()
	resp, err := u.log.Sign(r.Context(), req, client.WaitForCheckpoint())
	var ce *client.Error
	if errors.As(err, &ce) && ce.Code == "signing_session" && req.SigningSession != "" {
		// The session ended: the first signing of a new one takes every
		// component.
		req.SigningSession, req.Signer = "", signer
		resp, err = u.log.Sign(r.Context(), req, client.WaitForCheckpoint())
	}
	if err != nil {
		msg := "The signing failed: " + err.Error()
		if errors.As(err, &ce) {
			if m, ok := signErrors[ce.Code]; ok {
				msg = m
			}
		}
		refuse(http.StatusForbidden, msg)
		return
	}
	u.mu.Lock()
	u.signer, u.signing = signer, resp.SigningSession
	u.mu.Unlock()
	c.logger.Info("console: signed", "record", d.V.Index, "signature_event", resp.Event.Index, "meaning", meaning)
	http.Redirect(w, r, fmt.Sprintf("%sentries/%d?signed=%d", Path, d.V.Index, resp.Event.Index), http.StatusSeeOther)
}

package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/disclosure"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// The field picker of an entry whose payload is committed field by field
// (docs/disclosure.md): the auditor picks fields, the log discloses those
// (and logs an access.read naming them), the console verifies the answer
// against the log key and the leaf on this page, and shows the fields.

// FieldChoices are the fields the picker offers as boxes: what auditors
// ask of LLM payloads most (the formats of docs/disclosure.md); any other
// field is typed.
var FieldChoices = []string{
	"model", "usage", "messages[*].role", "tools[*].name", "tools[*].function.name",
	"choices[*].finish_reason", "choices[*].message.tool_calls[*].function.name",
	"stop_reason", "content[*].name", "usageMetadata",
}

// fieldsView is what a field disclosure shows.
type fieldsView struct {
	Asked     []string
	Fields    []attr // path, value as JSON text
	Unmatched []string
	// Disclosures counts the disclosures that verified; Digests the
	// root's digest list.
	Disclosures, Digests int
	Verified             bool
	Problem              string
	SameLeaf             bool
	Access               uint64
}

// maxFieldText caps the text of one disclosed value on the page.
const maxFieldText = 64 << 10

// discloseFields discloses the fields picked in the form (audit scope).
func (c *Console) discloseFields(w http.ResponseWriter, r *http.Request, u *user) {
	d, ok := c.entry(w, r, u)
	if !ok {
		return
	}
	var asked []string
	for _, f := range r.PostForm["field"] {
		if f = strings.TrimSpace(f); f != "" {
			asked = append(asked, f)
		}
	}
	for _, f := range strings.Split(r.PostFormValue("fields"), ",") {
		if f = strings.TrimSpace(f); f != "" && !contains(asked, f) {
			asked = append(asked, f)
		}
	}
	status := http.StatusOK
	if _, err := disclosure.ParseFields(strings.Join(asked, ",")); err != nil {
		d.FieldsErr = "Pick or type at least one field, of the form name, name.name, name[*].name or name[2]: " + err.Error()
		c.render(w, r, http.StatusBadRequest, "entry", page{Title: fmt.Sprintf("Entry %d", d.V.Index), Nav: "sessions", User: u, Data: d})
		return
	}
	ans, err := u.log.Fields(r.Context(), d.V.Index, asked)
	switch {
	case err == nil:
		d.Disclosed = c.verifyFields(d, ans)
		if !d.Disclosed.Verified || !d.Disclosed.SameLeaf {
			status = http.StatusBadGateway
		}
	case errors.Is(err, client.ErrErased):
		status, d.FieldsErr = http.StatusGone, "The payload was erased (a logged erasure destroyed it and the salts of its fields); no field can be disclosed."
	case errors.Is(err, client.ErrForbidden):
		status, d.FieldsErr = http.StatusForbidden, "Disclosing fields needs a token with the audit scope."
	case errors.Is(err, client.ErrNotFound), errors.Is(err, client.ErrConflict):
		status, d.FieldsErr = http.StatusNotFound, "Nothing disclosed: "+clientMessage(err)
	default:
		status, d.FieldsErr = http.StatusBadGateway, "The fields could not be read: "+err.Error()
	}
	c.render(w, r, status, "entry", page{Title: fmt.Sprintf("Entry %d", d.V.Index), Nav: "sessions", User: u, Data: d})
}

// verifyFields checks the log's answer with the console's log key and
// policy, and against the entry this page verified.
func (c *Console) verifyFields(d *entryData, ans *api.DisclosureResponse) *fieldsView {
	fv := &fieldsView{Asked: ans.Fields, Unmatched: ans.Unmatched, Digests: len(ans.SD), Access: ans.Access.Index}
	vd, err := api.NewReceiptVerifier(c.cfg.Key, c.cfg.Policy).VerifyDisclosure(ans)
	if err != nil {
		fv.Problem = err.Error()
		return fv
	}
	fv.Verified = true
	fv.SameLeaf = fmt.Sprintf("%x", vd.Receipt.LeafHash) == d.V.LeafHash
	fv.Disclosures = len(vd.Fields.Fields)
	for _, f := range vd.Fields.Complete() {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false) // the template escapes; the auditor reads < as <
		enc.Encode(f.Value)
		s := strings.TrimSuffix(b.String(), "\n")
		if len(s) > maxFieldText {
			s = s[:maxFieldText] + " …"
		}
		fv.Fields = append(fv.Fields, attr{Key: event.SafeText(disclosure.FormatPath(f.Path)), Value: event.SafeText(s)})
	}
	return fv
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

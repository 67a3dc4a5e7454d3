package api

// Statuses of one event's payload in GET /v1/sessions/{id}/payloads and in
// a session export with payloads.
const (
	PayloadOK        = "ok"         // disclosed; it opens the leaf's commitment
	PayloadNone      = "no_payload" // the leaf commits to no payload
	PayloadErased    = "erased"     // erased with the session's data key
	PayloadMissing   = "missing"    // committed to, but not in the vault
	PayloadIntegrity = "integrity"  // the vault's payload does not open the commitment
)

// SessionPayloadEntry is one event of GET /v1/sessions/{id}/payloads.
type SessionPayloadEntry struct {
	Index         uint64 `json:"index"`
	Seq           uint64 `json:"seq"`
	Leaf          string `json:"leaf"` // standard base64
	Status        string `json:"status"`
	MediaType     string `json:"media_type,omitempty"`
	PayloadBase64 string `json:"payload_base64,omitempty"`
	Salt          string `json:"salt,omitempty"` // hex
}

// SessionPayloadsResponse is the body of GET /v1/sessions/{id}/payloads.
type SessionPayloadsResponse struct {
	Tenant  string                `json:"tenant"`
	Session string                `json:"session"`
	Events  []SessionPayloadEntry `json:"events"`
	// NextSeq, when present, is the from_seq of the next page.
	NextSeq *uint64       `json:"next_seq,omitempty"`
	Access  EventResponse `json:"access"` // the one access.read event of this page
}

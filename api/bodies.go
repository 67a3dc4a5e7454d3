package api

// MaxBodiesRange is the most entries one GET /v1/bodies covers (an entry
// bundle's width).
const MaxBodiesRange = 256

// Bodies is the answer of GET /v1/bodies?start=S&end=E[&size=N]: the
// bodies (events) of the entries [start, end) of the tree of size
// tree_size that the token may read: its tenant's and the log-wide records
// (event.LogWide), or every tenant's with a global token. On a log of leaf version 3 each body is checked by the
// reader against the envelope at its index in the public entry bundles
// (event.OpenEnvelope); on a version 2 log a body is the entry itself.
type Bodies struct {
	TreeSize uint64 `json:"tree_size"`
	Start    uint64 `json:"start"`
	End      uint64 `json:"end"`
	Entries  []Body `json:"entries"`
}

// Body is one event body at its index. On a log of leaf version 4 it
// carries the body's field salt, with which the reader checks the
// envelope's field commitment (event.CheckFields).
type Body struct {
	Index     uint64 `json:"index"`
	Body      []byte `json:"body"`                 // standard base64 in JSON
	FieldSalt []byte `json:"field_salt,omitempty"` // standard base64 in JSON
}

// TenantKeyResponse is the answer of GET /v1/tenant-key: the key with
// which the tenant recognises its entries on a log of leaf version 3 (hex,
// event.ParseTenantKey), the log-wide key with which every tenant
// recognises the log-wide records (event.LogWide), and the
// access.tenant_key event that recorded the read.
type TenantKeyResponse struct {
	Tenant string        `json:"tenant"`
	Key    string        `json:"key"`
	LogKey string        `json:"log_key"`
	Access EventResponse `json:"access"`
}

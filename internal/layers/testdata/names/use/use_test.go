package use

// Tests may spell the wire format.
var _ = map[string]string{"fix.kind": "fix.key"}

package monitor

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// chainHead is what a full audit needs from a leaf: its session and its
// place in the session's hash chain.
type chainHead struct {
	tenant, session, prev string
	seq                   uint64
}

// leafHead reads the chain fields of a leaf in canonical form (fields in
// the order Leaf.Marshal writes them) without decoding the whole leaf, and
// checks that the leaf is valid JSON. ok is false for anything else; the
// caller then falls back to auditlog.ParseLeaf.
func leafHead(d []byte) (h chainHead, ok bool) {
	p := d
	lit := func(s string) bool {
		if !bytes.HasPrefix(p, []byte(s)) {
			return false
		}
		p = p[len(s):]
		return true
	}
	str := func() (string, bool) {
		i := bytes.IndexByte(p, '"')
		if i < 0 || bytes.IndexByte(p[:i], '\\') >= 0 {
			return "", false
		}
		s := string(p[:i])
		p = p[i+1:]
		return s, true
	}
	var ok1, ok2 bool
	if !lit(`{"v":1,"id":"`) {
		return h, false
	}
	if _, ok1 = str(); !ok1 || !lit(`,"kind":"`) {
		return h, false
	}
	if _, ok1 = str(); !ok1 || !lit(`,"time":"`) {
		return h, false
	}
	if _, ok1 = str(); !ok1 || !lit(`,"tenant":"`) {
		return h, false
	}
	if h.tenant, ok1 = str(); !ok1 || !lit(`,"session":"`) {
		return h, false
	}
	if h.session, ok2 = str(); !ok2 || !lit(`,"seq":`) {
		return h, false
	}
	i := 0
	for i < len(p) && p[i] >= '0' && p[i] <= '9' {
		i++
	}
	seq, err := strconv.ParseUint(string(p[:i]), 10, 64)
	if err != nil {
		return h, false
	}
	h.seq, p = seq, p[i:]
	if lit(`,"prev":"`) {
		if h.prev, ok1 = str(); !ok1 {
			return h, false
		}
	}
	if !lit(`,"actor":{`) || !json.Valid(d) {
		return h, false
	}
	return h, true
}

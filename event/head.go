package event

import (
	"bytes"
	"errors"
	"strconv"

	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
)

// Head is the part of a leaf that places it: its identity, kind, time and
// its link in the session's hash chain.
type Head struct {
	ID      string
	Kind    string
	Time    string
	Tenant  string
	Session string
	Seq     uint64
	Prev    string // hex leaf hash of the previous event, "" at seq 0
}

// ParseHead reads a leaf's head without building its attribute map. A leaf
// whose head is in canonical form (every leaf this log writes) is read by a
// fast scan that checks only the head fields and that the whole leaf is
// valid JSON; anything else is decoded strictly with ParseLeaf. Use ParseLeaf
// where the rest of the leaf matters.
func ParseHead(data []byte) (Head, error) {
	if h, ok := scanHead(data); ok {
		return h, nil
	}
	l, err := ParseLeaf(data)
	if err != nil {
		return Head{}, err
	}
	if l.Tenant == "" || l.Session == "" {
		return Head{}, errors.New("leaf has no tenant or session")
	}
	return l.Head(), nil
}

// Head returns l's head.
func (l *Leaf) Head() Head {
	return Head{ID: l.ID, Kind: l.Kind, Time: l.Time, Tenant: l.Tenant, Session: l.Session, Seq: l.Seq, Prev: l.Prev}
}

// scanHead reads the head of a canonical leaf (fields in the order
// Leaf.Marshal writes them, strings without escapes). ok is false for
// anything else.
func scanHead(d []byte) (h Head, ok bool) {
	p := d
	lit := func(s string) bool {
		if !bytes.HasPrefix(p, []byte(s)) {
			return false
		}
		p = p[len(s):]
		return true
	}
	str := func(dst *string) bool {
		i := bytes.IndexByte(p, '"')
		if i < 0 || bytes.IndexByte(p[:i], '\\') >= 0 {
			return false
		}
		*dst = string(p[:i])
		p = p[i+1:]
		return true
	}
	if !(lit(`{"v":2,"id":"`) || lit(`{"v":1,"id":"`)) || !str(&h.ID) ||
		!lit(`,"kind":"`) || !str(&h.Kind) ||
		!lit(`,"time":"`) || !str(&h.Time) ||
		!lit(`,"tenant":"`) || !str(&h.Tenant) ||
		!lit(`,"session":"`) || !str(&h.Session) ||
		!lit(`,"seq":`) {
		return h, false
	}
	i := 0
	for i < len(p) && p[i] >= '0' && p[i] <= '9' {
		i++
	}
	seq, err := strconv.ParseUint(string(p[:i]), 10, 64)
	if err != nil || (i > 1 && p[0] == '0') {
		return h, false
	}
	h.Seq, p = seq, p[i:]
	if lit(`,"prev":"`) && !str(&h.Prev) {
		return h, false
	}
	if h.Tenant == "" || h.Session == "" || !lit(`,"actor":{`) || !strictjson.IsJSON(d) {
		return h, false
	}
	return h, true
}

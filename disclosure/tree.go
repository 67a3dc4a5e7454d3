// Package disclosure is field-level disclosure of a JSON payload with the
// construction of SD-JWT (RFC 9901): every object member and every array
// element down to MaxDepth is a disclosure, base64url(JSON [salt, name,
// value]) for a member and base64url(JSON [salt, value]) for an element,
// whose digest base64url(SHA-256(disclosure)) stands in its place: in the
// "_sd" list of its object, or as {"...": digest} in its array. The root's
// "_sd" list, sorted, with "_sd_alg", is the root object; the leaf's payload
// commitment carries the hex SHA-256 of its compact JSON (RootHash), so a
// chosen subset of disclosures verifies against the log (Verify) and
// reveals nothing of the rest.
//
// In version V2 every "_sd" list and every array is padded with decoy
// digests up to Bucket of its length (Decoy), so that a disclosure does not
// show how many members an object has or how many elements an array has.
//
// Salts and decoys are derived from the payload's commitment salt, which
// only the vault holds (Salt): erasing the payload's key destroys every
// field's salt with it. The format is in docs/disclosure.md. The package is the format
// alone: no I/O.
package disclosure

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"mime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
)

// Alg is the digest algorithm, the "_sd_alg" of the root object.
const Alg = "sha-256"

// Limits of the decomposition.
const (
	// MaxDepth is the depth of the deepest disclosure: a top-level member
	// is at depth 1, an element of its array at 2 (messages[3]), a member
	// of that element at 3 (messages[3].content), ... down to a tool
	// call's name in a chat completion at 6
	// (choices[0].message.tool_calls[0].function.name). An object or array
	// at MaxDepth is disclosed whole.
	MaxDepth = 6
	// MaxDisclosures caps the disclosures of one payload: a payload with
	// more has no field commitment (it is disclosed whole only).
	MaxDisclosures = 20000
)

// Keys that a payload must not use: they are the structure's own.
const (
	keySD    = "_sd"
	keySDAlg = "_sd_alg"
	keyArray = "..."
)

// saltLabel separates the field salts from the payload commitment, which is
// keyed with the same salt: k = HMAC-SHA256(salt, saltLabel).
const saltLabel = "llmaudittrail disclosure salts v1"

// decoyLabel separates the decoys' key from the salts' and the payload
// commitment's: kd = HMAC-SHA256(salt, decoyLabel).
const decoyLabel = "llmaudittrail disclosure decoys v2"

// Versions of the construction, the leaf commitment's "sd_v" (absent: V1).
const (
	// V1 has no decoy digests: a disclosed object shows how many members
	// it has, a disclosed array how many elements.
	V1 = 1
	// V2 pads every "_sd" list and every array with decoy digests (RFC
	// 9901 section 4.2.5) up to Bucket of its length.
	V2 = 2
	// Current is the version Build makes.
	Current = V2
)

// MinBucket is the shortest padded "_sd" list or array of V2.
const MinBucket = 8

// Bucket is the length V2 pads a list of n digests to: the smallest power
// of two that is at least n and at least MinBucket.
func Bucket(n int) int {
	b := MinBucket
	for b < n {
		b *= 2
	}
	return b
}

// ErrNotDisclosable: the payload is not a JSON object that can be
// decomposed (another media type, not an object, invalid or duplicate
// keys, a key of the structure's own, more than MaxDisclosures fields).
var ErrNotDisclosable = errors.New("payload has no field-level commitment")

// Disclosable reports whether a payload of mediaType may have a field
// commitment: application/json or a type ending in +json.
func Disclosable(mediaType string) bool {
	mt, _, err := mime.ParseMediaType(mediaType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// Step is one step of a field's path: a member name, or an array index.
type Step struct {
	Name    string
	Index   int
	IsIndex bool
}

// node is one disclosure of a tree.
type node struct {
	path    []Step
	parent  int // index of the parent disclosure, -1 at the top
	encoded string
	digest  string
	end     int // nodes[i+1:end] are the descendants of node i
}

// Tree is the field commitment of one payload: every disclosure in
// document order with its path, and the root's digests.
type Tree struct {
	// SD is the root's "_sd" list, sorted.
	SD []string
	// Version is the construction's, V1 or V2 (the leaf's "sd_v").
	Version int
	// Decoys is the number of decoy digests in the tree (V2).
	Decoys int
	nodes  []node
}

// Hash is RootHash(t.SD), the value the leaf's commitment carries.
func (t *Tree) Hash() string { return RootHash(t.SD) }

// Len is the number of disclosures.
func (t *Tree) Len() int { return len(t.nodes) }

// rootObject is the root object of a tree, in its canonical form.
type rootObject struct {
	SD    []string `json:"_sd"`
	SDAlg string   `json:"_sd_alg"`
}

// Root returns the compact JSON of the root object {"_sd": sd, "_sd_alg":
// "sha-256"}: the SD-JWT payload that the disclosures unpack against.
func Root(sd []string) []byte {
	if sd == nil {
		sd = []string{}
	}
	b, _ := json.Marshal(rootObject{SD: sd, SDAlg: Alg})
	return b
}

// RootHash is the hex SHA-256 of Root(sd).
func RootHash(sd []string) string {
	h := sha256.Sum256(Root(sd))
	return hex.EncodeToString(h[:])
}

// Digest is the digest of an encoded disclosure: base64url(SHA-256(s)),
// over the ASCII of s, as RFC 9901 section 4.2.3 has it.
func Digest(encoded string) string {
	h := sha256.Sum256([]byte(encoded))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// Salt returns the salt of the field at path of a payload committed with
// salt: base64url of the first 16 bytes of HMAC-SHA256(k, path), k =
// HMAC-SHA256(salt, "llmaudittrail disclosure salts v1"), path the compact
// JSON array of its steps (["messages",3,"content"]).
func Salt(salt []byte, path []Step) string {
	return saltWith(saltKey(salt), path)
}

func saltKey(salt []byte) []byte {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(saltLabel))
	return m.Sum(nil)
}

func saltWith(k []byte, path []Step) string {
	return saltHMAC(hmac.New(sha256.New, k), path)
}

// saltHMAC is saltWith with m, an HMAC keyed with k, reset and reused.
func saltHMAC(m hash.Hash, path []Step) string {
	m.Reset()
	m.Write(pathJSON(path))
	var sum [sha256.Size]byte
	return base64.RawURLEncoding.EncodeToString(m.Sum(sum[:0])[:16])
}

func pathJSON(path []Step) []byte { return appendPathJSON(nil, path) }

// appendPathJSON appends the compact JSON array of path's steps to b.
func appendPathJSON(b []byte, path []Step) []byte {
	b = append(b, '[')
	for i, s := range path {
		if i > 0 {
			b = append(b, ',')
		}
		if s.IsIndex {
			b = strconv.AppendInt(b, int64(s.Index), 10)
		} else {
			b = appendString(b, s.Name)
		}
	}
	return append(b, ']')
}

// Build decomposes payload, committed with salt, into its disclosures, in
// the Current version. A payload that is not a JSON object, that repeats a
// key in an object, that uses "_sd", "_sd_alg" or "..." as a key, or that
// has more than MaxDisclosures fields is ErrNotDisclosable. Build is
// deterministic: the same salt and payload give the same tree.
func Build(salt, payload []byte) (*Tree, error) { return BuildVersion(Current, salt, payload) }

// Decoy is the decoy digest number j of the "_sd" list or array at
// container (nil: the root) of a V2 payload committed with salt:
// base64url(SHA-256(HMAC-SHA256(kd, path))), kd = HMAC-SHA256(salt, "llmaudittrail
// disclosure decoys v2"), path the compact JSON of container's steps and j
// (["messages",3,0]).
func Decoy(salt []byte, container []Step, j int) string {
	return decoyHMAC(hmac.New(sha256.New, decoyKey(salt)), container, j)
}

func decoyKey(salt []byte) []byte {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(decoyLabel))
	return m.Sum(nil)
}

// decoyHMAC is Decoy with m, an HMAC keyed with kd, reset and reused.
func decoyHMAC(m hash.Hash, container []Step, j int) string {
	m.Reset()
	m.Write(pathJSON(append(container[:len(container):len(container)], Step{Index: j, IsIndex: true})))
	var sum [sha256.Size]byte
	h := sha256.Sum256(m.Sum(sum[:0]))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// BuildVersion is Build in version v (V1 or V2).
func BuildVersion(v int, salt, payload []byte) (*Tree, error) {
	b, val, err := newBuilder(v, salt, payload, true)
	if err != nil {
		return nil, err
	}
	defer b.done()
	base := b.members(val, nil, -1)
	ds := b.ds[base:]
	sortDigests(ds)
	var sd []string // nil when empty, as Tree.SD of a V1 {} has been
	if len(ds) > 0 {
		sd = make([]string, len(ds))
		for i := range ds {
			sd[i] = string(ds[i][:])
		}
	}
	return &Tree{SD: sd, Version: v, Decoys: b.ndecoys, nodes: b.nodes}, nil
}

// Commitment is Build(salt, payload).Hash(), the root hash of payload's
// tree in the Current version, with Build's errors, computed without
// keeping the disclosures (an append needs the root hash only).
func Commitment(salt, payload []byte) (string, error) {
	return CommitmentVersion(Current, salt, payload)
}

// CommitmentVersion is BuildVersion(v, salt, payload).Hash(), with
// BuildVersion's errors, computed as Commitment is: without a copy of
// any disclosure, digest or path.
func CommitmentVersion(v int, salt, payload []byte) (string, error) {
	b, val, err := newBuilder(v, salt, payload, false)
	if err != nil {
		return "", err
	}
	defer b.done()
	base := b.members(val, b.path[:0], -1)
	ds := b.ds[base:]
	sortDigests(ds)
	// RootHash of ds: the SHA-256 of Root's bytes, written as
	// encoding/json writes rootObject (base64url needs no escape).
	root := append(b.enc[:0], `{"_sd":[`...)
	for i := range ds {
		if i > 0 {
			root = append(root, ',')
		}
		root = append(append(append(root, '"'), ds[i][:]...), '"')
	}
	b.enc = append(root, `],"_sd_alg":"`+Alg+`"}`...)
	h := sha256.Sum256(b.enc)
	return hex.EncodeToString(h[:]), nil
}

// newBuilder parses payload for BuildVersion (keep) or CommitmentVersion
// in version v.
func newBuilder(v int, salt, payload []byte, keep bool) (*builder, *value, error) {
	if v != V1 && v != V2 {
		return nil, nil, fmt.Errorf("%w: unknown version %d", ErrNotDisclosable, v)
	}
	b := &builder{keep: keep, v2: v == V2, scratch: scratchPool.Get().(*scratch)}
	val, err := parseIn(payload, &b.arena)
	if err == nil && val.kind != kindObject {
		err = errors.New("not a JSON object")
	}
	if err == nil {
		if n := count(val, 0); n > MaxDisclosures {
			err = fmt.Errorf("%d fields, more than %d", n, MaxDisclosures)
		}
	}
	if err != nil {
		b.done()
		return nil, nil, fmt.Errorf("%w: %v", ErrNotDisclosable, err)
	}
	b.salts.key(salt)
	b.salts.key(b.salts.sum([]byte(saltLabel)))
	if b.v2 {
		b.decoys.key(salt)
		b.decoys.key(b.decoys.sum([]byte(decoyLabel)))
	}
	return b, val, nil
}

// count is the number of disclosures v's members or elements make at
// depth+1 and below.
func count(v *value, depth int) int {
	if depth >= MaxDepth {
		return 0
	}
	n := 0
	switch v.kind {
	case kindObject:
		for _, m := range v.members {
			n += 1 + count(m.v, depth+1)
		}
	case kindArray:
		for _, e := range v.elems {
			n += 1 + count(e, depth+1)
		}
	}
	return n
}

type builder struct {
	// v2: pad every list with decoys (b.decoys is keyed).
	v2 bool
	// keep: keep every disclosure in nodes (Build); without it
	// (Commitment) only the digests are made, and a path is not copied
	// per field.
	keep    bool
	ndecoys int
	nodes   []node
	*scratch
}

// digest is a disclosure's or a decoy's digest, base64url of its SHA-256.
type digest [digestLen]byte

// sortDigests sorts ds as sort.Strings sorts their strings: a short list
// (an object's, with its decoys) by insertion, comparing first the 8
// bytes that nearly always differ.
func sortDigests(ds []digest) {
	if len(ds) > 16 {
		slices.SortFunc(ds, func(a, b digest) int { return bytes.Compare(a[:], b[:]) })
		return
	}
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && digestLess(&ds[j], &ds[j-1]); j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
}

// digestLess reports whether a sorts before b.
func digestLess(a, b *digest) bool {
	x, y := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])
	if x != y {
		return x < y
	}
	return bytes.Compare(a[8:], b[8:]) < 0
}

// scratch is a builder's state, reused field after field and, through
// scratchPool, call after call. buf and ds are stacks: a field's
// disclosure array is written at the end of buf and its digest pushed on
// ds, and a field's children use what lies above them and give it back
// before the field is hashed; pj, dp and enc are a path's JSON, a
// decoy's path and a disclosure's encoding.
type scratch struct {
	buf, enc, pj, dp []byte
	ds               []digest
	// salts is keyed with k, decoys with kd (V2).
	salts, decoys keyedHMAC
	path          [MaxDepth + 1]Step
	arena         arena
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// maxPooled is the largest buffer put back in scratchPool.
const maxPooled = 64 << 10

// done returns b's scratch to the pool.
func (b *builder) done() {
	sc := b.scratch
	b.scratch = nil
	a := &sc.arena
	if cap(sc.buf) > maxPooled || cap(sc.enc) > maxPooled || cap(sc.pj) > maxPooled || cap(sc.dp) > maxPooled || cap(sc.ds) > maxPooled/digestLen ||
		cap(a.mems) > maxPooled/32 || cap(a.elems) > maxPooled/8 || cap(a.mstack) > maxPooled/32 || cap(a.estack) > maxPooled/8 {
		return
	}
	sc.buf, sc.ds = sc.buf[:0], sc.ds[:0]
	a.reset()
	sc.path = [MaxDepth + 1]Step{}
	scratchPool.Put(sc)
}

// keyedHMAC is HMAC-SHA256 (RFC 2104) under one key, for many short
// messages: the key's padded blocks are hashed once, and their states
// restored for each message (as crypto/hmac does after its first Reset),
// with hashes that are reused from key to key instead of made anew.
type keyedHMAC struct {
	inner, outer   hash.Hash
	istate, ostate []byte
	in, out        [sha256.Size]byte
	pad            [sha256.BlockSize]byte
}

// key keys m with key.
func (m *keyedHMAC) key(key []byte) {
	if m.inner == nil {
		m.inner, m.outer = sha256.New(), sha256.New()
	}
	pad := &m.pad // m's: a local array passed to Write would be made on the heap
	*pad = [sha256.BlockSize]byte{}
	if len(key) > len(pad) {
		k := sha256.Sum256(key)
		copy(pad[:], k[:])
	} else {
		copy(pad[:], key)
	}
	for i := range pad {
		pad[i] ^= 0x36
	}
	m.inner.Reset()
	m.inner.Write(pad[:])
	m.istate, _ = m.inner.(encoding.BinaryAppender).AppendBinary(m.istate[:0])
	for i := range pad {
		pad[i] ^= 0x36 ^ 0x5c
	}
	m.outer.Reset()
	m.outer.Write(pad[:])
	m.ostate, _ = m.outer.(encoding.BinaryAppender).AppendBinary(m.ostate[:0])
}

// sum is the HMAC of msg, valid until m's next use. (Its buffers are
// m's: a hash.Hash's Sum makes an array passed to it escape.)
func (m *keyedHMAC) sum(msg []byte) []byte {
	m.inner.(encoding.BinaryUnmarshaler).UnmarshalBinary(m.istate)
	m.inner.Write(msg)
	in := m.inner.Sum(m.in[:0])
	m.outer.(encoding.BinaryUnmarshaler).UnmarshalBinary(m.ostate)
	m.outer.Write(in)
	return m.outer.Sum(m.out[:0])
}

// appendSalt appends the salt of the field at path as a JSON string
// (appendString(dst, saltWith(k, path)): base64url needs no escape).
func (b *builder) appendSalt(dst []byte, path []Step) []byte {
	b.pj = appendPathJSON(b.pj[:0], path)
	dst = append(dst, '"')
	dst = base64.RawURLEncoding.AppendEncode(dst, b.salts.sum(b.pj)[:16])
	return append(dst, '"')
}

// members makes the disclosures of object v's members (or array v's
// elements) at path, children of disclosure parent, and pushes their
// digests on b.ds in document order, then (V2) the decoys that pad them
// to Bucket. They are b.ds[base:]; the caller pops them.
func (b *builder) members(v *value, path []Step, parent int) (base int) {
	base = len(b.ds)
	switch v.kind {
	case kindObject:
		for _, m := range v.members {
			b.field(Step{Name: m.name}, m.v, path, parent)
		}
	case kindArray:
		for j, e := range v.elems {
			b.field(Step{Index: j, IsIndex: true}, e, path, parent)
		}
	}
	if b.v2 {
		b.pad(base, path)
	}
	return base
}

// field makes the disclosure of the member or element st of the object
// or array at path, child value, and pushes its digest on b.ds.
func (b *builder) field(st Step, child *value, path []Step, parent int) {
	// Without keep nothing holds p after this call, so the fields of one
	// level take turns in path's spare capacity.
	var p []Step
	i := len(b.nodes)
	if b.keep {
		p = append(path[:len(path):len(path)], st)
		b.nodes = append(b.nodes, node{path: p, parent: parent})
	} else {
		p = append(path, st)
	}
	// The disclosure [salt, name, value] is written at the end of b.buf;
	// the value of an object or array there after its own fields, which
	// use b.buf beyond it and give it back.
	start := len(b.buf)
	b.buf = append(b.buf, '[')
	b.buf = b.appendSalt(b.buf, p)
	if !st.IsIndex {
		b.buf = appendString(append(b.buf, ','), st.Name)
	}
	b.buf = append(b.buf, ',')
	if len(p) < MaxDepth && (child.kind == kindObject || child.kind == kindArray) {
		b.appendSDValue(child, p, i)
	} else {
		b.buf = child.appendJSON(b.buf)
	}
	b.buf = append(b.buf, ']')
	b.enc = base64.RawURLEncoding.AppendEncode(b.enc[:0], b.buf[start:])
	b.buf = b.buf[:start]
	h := sha256.Sum256(b.enc)
	var d digest
	base64.RawURLEncoding.Encode(d[:], h[:])
	if b.keep {
		b.nodes[i].encoded, b.nodes[i].digest, b.nodes[i].end = string(b.enc), string(d[:]), len(b.nodes)
	}
	b.ds = append(b.ds, d)
}

// pad pushes the decoys of the list or array at path, whose digests are
// b.ds[base:], up to Bucket of them: Decoy's digests, without its
// allocations.
func (b *builder) pad(base int, path []Step) {
	n := len(b.ds) - base
	want := Bucket(n)
	prefix := appendPathJSON(b.dp[:0], path)
	prefix = prefix[:len(prefix)-1] // without its ]
	if len(path) > 0 {
		prefix = append(prefix, ',')
	}
	k := len(prefix)
	b.ndecoys += want - n
	for j := range want - n {
		prefix = append(strconv.AppendInt(prefix[:k], int64(j), 10), ']')
		h := sha256.Sum256(b.decoys.sum(prefix))
		var d digest
		base64.RawURLEncoding.Encode(d[:], h[:])
		b.ds = append(b.ds, d)
	}
	b.dp = prefix
}

// appendSDValue appends to b.buf the value of the disclosure at path of
// an object or array v above MaxDepth: an object as {"_sd": [...]}, an
// array as [{"...": d}, ...], each of their fields a disclosure.
func (b *builder) appendSDValue(v *value, path []Step, self int) {
	base := b.members(v, path, self)
	ds := b.ds[base:]
	out := b.buf
	if v.kind == kindObject {
		if len(ds) == 0 {
			out = append(out, "{}"...)
		} else {
			sortDigests(ds)
			out = append(out, `{"_sd":[`...)
			for i := range ds {
				if i > 0 {
					out = append(out, ',')
				}
				out = append(append(append(out, '"'), ds[i][:]...), '"') // base64url needs no escape
			}
			out = append(out, "]}"...)
		}
	} else {
		out = append(out, '[')
		for i := range ds {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(append(append(out, `{"...":"`...), ds[i][:]...), `"}`...)
		}
		out = append(out, ']')
	}
	b.buf = out
	b.ds = b.ds[:base]
}

// digestLen is the length of a digest, base64url of 32 bytes.
const digestLen = 43

// Select returns the disclosures that reveal fields: those at a path a
// field matches, their ancestors (without which they would not verify)
// and their descendants (their whole value), in document order; and the
// fields that matched nothing.
func (t *Tree) Select(fields []Field) (disclosures []string, unmatched []string) {
	take := make([]bool, len(t.nodes))
	for _, f := range fields {
		hit := false
		for i := range t.nodes {
			if !f.match(t.nodes[i].path) {
				continue
			}
			hit = true
			for j := i; j < t.nodes[i].end; j++ {
				take[j] = true
			}
			for p := t.nodes[i].parent; p >= 0; p = t.nodes[p].parent {
				take[p] = true
			}
		}
		if !hit {
			unmatched = append(unmatched, f.String())
		}
	}
	for i, ok := range take {
		if ok {
			disclosures = append(disclosures, t.nodes[i].encoded)
		}
	}
	return disclosures, unmatched
}

// Disclosures returns every disclosure of the tree, in document order.
func (t *Tree) Disclosures() []string {
	out := make([]string, len(t.nodes))
	for i := range t.nodes {
		out[i] = t.nodes[i].encoded
	}
	return out
}

// FormatPath writes a path as a field name: model, messages[3].content;
// a name that has a dot, a bracket or a quote, or is empty, as ["name"]
// (attributes["gen_ai.request.model"]; ParseField reads the form back
// when the name has no quote, backslash, comma or control character).
func FormatPath(path []Step) string {
	var b strings.Builder
	for i, s := range path {
		switch {
		case s.IsIndex:
			b.WriteString("[" + strconv.Itoa(s.Index) + "]")
		case strings.ContainsAny(s.Name, "\"\\"):
			// A name ParseField cannot read back: shown as a JSON
			// string, so that it cannot pass for another path.
			b.WriteString("[" + string(appendString(nil, s.Name)) + "]")
		case s.Name == "" || strings.ContainsAny(s.Name, ".[]"):
			b.WriteString(`["` + s.Name + `"]`)
		case i > 0:
			b.WriteString("." + s.Name)
		default:
			b.WriteString(s.Name)
		}
	}
	return b.String()
}

// appendString appends s as a JSON string, without HTML escaping, as
// encoding/json writes it.
func appendString(b []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			plain = false
			break
		}
	}
	if plain {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

// A parsed JSON value, its members in key order.
type kind int

const (
	kindScalar kind = iota
	kindObject
	kindArray
)

type member struct {
	name string
	v    *value
}

type value struct {
	kind    kind
	scalar  []byte // compact JSON of a scalar
	members []member
	elems   []*value
}

func (v *value) appendJSON(b []byte) []byte {
	switch v.kind {
	case kindObject:
		b = append(b, '{')
		for i, m := range v.members {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(appendString(b, m.name), ':')
			b = m.v.appendJSON(b)
		}
		return append(b, '}')
	case kindArray:
		b = append(b, '[')
		for i, e := range v.elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.appendJSON(b)
		}
		return append(b, ']')
	}
	return append(b, v.scalar...)
}

// maxNesting bounds the nesting of a parsed payload.
const maxNesting = 512

// anyKeys is the strictjson rule for a payload: any keys, none twice in an
// object, at every depth.
var anyKeys = func() *strictjson.Object {
	r := &strictjson.Object{AnyKeys: true}
	r.Values = r
	return r
}()

// parse reads one JSON value strictly: no trailing data, no key twice in
// an object (strictjson), none of the structure's keys. Members are in
// key order.
func parse(data []byte) (*value, error) { return parseIn(data, new(arena)) }

// parseIn is parse with a's values.
func parseIn(data []byte, a *arena) (*value, error) {
	if err := strictjson.Check(data, anyKeys); err != nil {
		return nil, err
	}
	if v, ok := parseDirect(data, a); ok {
		return v, nil
	}
	return parseAny(data)
}

func convert(x any, depth int) (*value, error) {
	if depth > maxNesting {
		return nil, errors.New("nested too deeply")
	}
	switch x := x.(type) {
	case map[string]any:
		v := &value{kind: kindObject, members: make([]member, 0, len(x))}
		keys := make([]string, 0, len(x))
		for k := range x {
			if k == keySD || k == keySDAlg || k == keyArray {
				return nil, fmt.Errorf("key %q is reserved", k)
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			mv, err := convert(x[k], depth+1)
			if err != nil {
				return nil, err
			}
			v.members = append(v.members, member{name: k, v: mv})
		}
		return v, nil
	case []any:
		v := &value{kind: kindArray, elems: make([]*value, 0, len(x))}
		for _, e := range x {
			ev, err := convert(e, depth+1)
			if err != nil {
				return nil, err
			}
			v.elems = append(v.elems, ev)
		}
		return v, nil
	case string:
		return &value{scalar: appendString(nil, x)}, nil
	case json.Number:
		return &value{scalar: []byte(x)}, nil
	case bool:
		return &value{scalar: []byte(strconv.FormatBool(x))}, nil
	case nil:
		return &value{scalar: []byte("null")}, nil
	}
	return nil, fmt.Errorf("unexpected %T", x)
}

// Opens reports whether payload, committed with salt, has the field
// commitment sd in version v (the leaf commitment's "sd" and "sd_v"; 0 is
// V1): its tree's root hash. A commitment without sd is opened by any
// payload. Whoever holds a whole payload and its salt checks this beside
// the HMAC, so that the fields disclosed one by one are those of the
// payload committed whole.
func Opens(sd string, v int, salt, payload []byte) bool {
	if sd == "" {
		return true
	}
	if v == 0 {
		v = V1
	}
	h, err := CommitmentVersion(v, salt, payload)
	return err == nil && h == sd
}

package disclosure

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
)

// Verification errors, each wrapped with the disclosure or digest at fault.
var (
	// ErrRoot: the digests do not hash to the leaf's commitment, or are not
	// a sorted list of distinct SHA-256 digests.
	ErrRoot = errors.New("disclosure digests do not match the leaf's commitment")
	// ErrMalformed: a disclosure is not base64url of a JSON array [salt,
	// name, value] or [salt, value].
	ErrMalformed = errors.New("malformed disclosure")
	// ErrUnreferenced: a disclosure's digest is not in the root's list nor
	// in the value of another disclosure that verified: its value or salt
	// was changed, or it belongs to another payload.
	ErrUnreferenced = errors.New("disclosure is not referenced by the committed digests")
	// ErrRepeated: a digest or a disclosure occurs twice.
	ErrRepeated = errors.New("digest referenced twice")
)

// MaxVerify caps the disclosures Verify takes.
const MaxVerify = MaxDisclosures

// Revealed is one verified disclosure: the path of its field and its value
// with the disclosed parts of it unpacked.
type Revealed struct {
	Path  []Step
	Value any // JSON value; numbers as json.Number
	// Partial: some digests in the value are not disclosed: fields left
	// out of Value, or decoys (V2), which a verifier cannot tell apart;
	// so an object or array of a V2 payload is always Partial.
	Partial bool
}

// Verified is what a set of disclosures proves about a payload whose
// commitment carries the root hash.
type Verified struct {
	// Claims is the payload with only the disclosed fields: the root
	// object unpacked as RFC 9901 section 7.1 has it (an array keeps only
	// its disclosed elements).
	Claims map[string]any
	// Fields are the disclosures in the order given.
	Fields []Revealed
}

// parsed is one disclosure, decoded.
type parsed struct {
	salt, name string
	member     bool
	value      any
	used       bool
	path       []Step
	partial    bool
	unpacked   any
}

// Verify checks disclosures against sd, the root's digest list, and sd
// against rootHash, the leaf commitment's "sd": the list must hash to it,
// and every disclosure must be reached from it (its digest in the root's
// list or in the value of a disclosure reached before), each once.
func Verify(rootHash string, sd []string, disclosures []string) (*Verified, error) {
	if !sort.StringsAreSorted(sd) {
		return nil, fmt.Errorf("%w: the digest list is not sorted", ErrRoot)
	}
	for i, d := range sd {
		if !validDigest(d) {
			return nil, fmt.Errorf("%w: %q is not a base64url SHA-256 digest", ErrRoot, clip(d))
		}
		if i > 0 && sd[i-1] == d {
			return nil, fmt.Errorf("%w: %s twice", ErrRoot, d)
		}
	}
	if RootHash(sd) != rootHash {
		return nil, fmt.Errorf("%w: they hash to %s, the leaf has %s", ErrRoot, RootHash(sd), clip(rootHash))
	}
	if len(disclosures) > MaxVerify {
		return nil, fmt.Errorf("%w: %d disclosures, at most %d", ErrMalformed, len(disclosures), MaxVerify)
	}
	byDigest := make(map[string]*parsed, len(disclosures))
	order := make([]*parsed, len(disclosures))
	for i, enc := range disclosures {
		p, err := decode(enc)
		if err != nil {
			return nil, fmt.Errorf("%w: disclosures[%d]: %v", ErrMalformed, i, err)
		}
		d := Digest(enc)
		if byDigest[d] != nil {
			return nil, fmt.Errorf("%w: disclosures[%d] is given twice", ErrRepeated, i)
		}
		byDigest[d], order[i] = p, p
	}
	w := &walker{byDigest: byDigest, seen: map[string]bool{}}
	claims := map[string]any{}
	for _, d := range sd {
		w.seen[d] = true
	}
	for _, d := range sd {
		p := byDigest[d]
		if p == nil {
			continue
		}
		if !p.member {
			return nil, fmt.Errorf("%w: the root lists an array element's disclosure", ErrMalformed)
		}
		v, _, err := w.reveal(p, []Step{{Name: p.name}})
		if err != nil {
			return nil, err
		}
		claims[p.name] = v
	}
	out := &Verified{Claims: claims}
	for i, p := range order {
		if !p.used {
			return nil, fmt.Errorf("%w: disclosures[%d] (digest %s)", ErrUnreferenced, i, Digest(disclosures[i]))
		}
		out.Fields = append(out.Fields, Revealed{Path: p.path, Value: p.unpacked, Partial: p.partial})
	}
	return out, nil
}

type walker struct {
	byDigest map[string]*parsed
	seen     map[string]bool
}

// take reads x, what (an _sd entry, an array's "..."), as a digest that
// no other place of the structure names, and returns its disclosure (nil:
// not disclosed).
func (w *walker) take(x any, what string) (*parsed, error) {
	d, ok := x.(string)
	if !ok || !validDigest(d) {
		return nil, fmt.Errorf("%w: %s is not a digest", ErrMalformed, what)
	}
	if w.seen[d] {
		return nil, fmt.Errorf("%w: %s", ErrRepeated, d)
	}
	w.seen[d] = true
	return w.byDigest[d], nil
}

// reveal marks p reached at path and unpacks its value.
func (w *walker) reveal(p *parsed, path []Step) (any, bool, error) {
	p.used, p.path = true, path
	v, partial, err := w.unpack(p.value, path)
	if err != nil {
		return nil, false, err
	}
	p.unpacked, p.partial = v, partial
	return v, partial, nil
}

// unpack replaces the digests in v by the disclosures they stand for,
// leaving out those not disclosed (partial).
func (w *walker) unpack(v any, path []Step) (_ any, partial bool, _ error) {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			if k == keySD {
				continue
			}
			if k == keyArray || k == keySDAlg {
				return nil, false, fmt.Errorf("%w: key %q in an object value", ErrMalformed, k)
			}
			u, part, err := w.unpack(x, append(path[:len(path):len(path)], Step{Name: k}))
			if err != nil {
				return nil, false, err
			}
			out[k], partial = u, partial || part
		}
		if raw, ok := v[keySD]; ok {
			list, ok := raw.([]any)
			if !ok {
				return nil, false, fmt.Errorf("%w: _sd is not a list", ErrMalformed)
			}
			for _, x := range list {
				p, err := w.take(x, "an _sd entry")
				if err != nil {
					return nil, false, err
				}
				if p == nil {
					partial = true
					continue
				}
				if !p.member {
					return nil, false, fmt.Errorf("%w: an object lists an array element's disclosure", ErrMalformed)
				}
				if _, dup := out[p.name]; dup {
					return nil, false, fmt.Errorf("%w: member %q disclosed twice", ErrMalformed, clip(p.name))
				}
				u, part, err := w.reveal(p, append(path[:len(path):len(path)], Step{Name: p.name}))
				if err != nil {
					return nil, false, err
				}
				out[p.name], partial = u, partial || part
			}
		}
		return out, partial, nil
	case []any:
		out := []any{}
		for i, x := range v {
			elPath := append(path[:len(path):len(path)], Step{Index: i, IsIndex: true})
			if m, ok := x.(map[string]any); ok && len(m) == 1 && m[keyArray] != nil {
				p, err := w.take(m[keyArray], `an array's "..."`)
				if err != nil {
					return nil, false, err
				}
				if p == nil {
					partial = true
					continue
				}
				if p.member {
					return nil, false, fmt.Errorf("%w: an array lists a member's disclosure", ErrMalformed)
				}
				u, part, err := w.reveal(p, elPath)
				if err != nil {
					return nil, false, err
				}
				out, partial = append(out, u), partial || part
				continue
			}
			u, part, err := w.unpack(x, elPath)
			if err != nil {
				return nil, false, err
			}
			out, partial = append(out, u), partial || part
		}
		return out, partial, nil
	}
	return v, false, nil
}

// decode reads one encoded disclosure.
func decode(enc string) (*parsed, error) {
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil, errors.New("not base64url without padding")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var arr []any
	if err := dec.Decode(&arr); err != nil {
		return nil, fmt.Errorf("not a JSON array: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	p := &parsed{}
	var ok bool
	switch len(arr) {
	case 2:
		p.value = arr[1]
	case 3:
		p.member, p.value = true, arr[2]
		if p.name, ok = arr[1].(string); !ok {
			return nil, errors.New("the name is not a string")
		}
		if p.name == keySD || p.name == keyArray || p.name == keySDAlg {
			return nil, fmt.Errorf("reserved name %q", p.name)
		}
	default:
		return nil, fmt.Errorf("%d elements, want 2 or 3", len(arr))
	}
	if p.salt, ok = arr[0].(string); !ok || p.salt == "" {
		return nil, errors.New("the salt is not a string")
	}
	return p, nil
}

func validDigest(d string) bool {
	b, err := base64.RawURLEncoding.DecodeString(d)
	return err == nil && len(b) == 32 && base64.RawURLEncoding.EncodeToString(b) == d
}

// Complete returns the disclosed fields whose whole value is disclosed and
// whose parent's is not (or that are at the top): what was revealed, each
// once, in the order given.
func (v *Verified) Complete() []Revealed {
	whole := map[string]bool{}
	for _, f := range v.Fields {
		if !f.Partial {
			whole[string(pathJSON(f.Path))] = true
		}
	}
	var out []Revealed
	for _, f := range v.Fields {
		if f.Partial || (len(f.Path) > 1 && whole[string(pathJSON(f.Path[:len(f.Path)-1]))]) {
			continue
		}
		out = append(out, f)
	}
	return out
}

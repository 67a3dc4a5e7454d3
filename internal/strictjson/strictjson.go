// Package strictjson checks the keys of JSON from outside before it is
// decoded with encoding/json, which takes the last of duplicate keys and
// matches struct fields without regard to case: {"session":"a","session":"b"}
// and {"Session":"b"} would both be read as session "b". Check refuses both.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Object is the rule for a JSON object: Keys lists the allowed keys (exact
// case) and the rule for each one's value (nil: any value, not checked).
// With AnyKeys set, any key is allowed and Values is the rule for every
// value (nil: any). Either way, no key may appear twice. A rule for an
// object applies to each element of an array in its place.
type Object struct {
	Keys    map[string]*Object
	AnyKeys bool
	Values  *Object
}

// ErrKeys is wrapped by every error Check returns.
var ErrKeys = errors.New("bad JSON keys")

// Check reads the JSON value in data and applies rule to it if it is an
// object. Values that are not objects where rule expects one are left to the
// decoder that follows. Malformed JSON is an error.
func Check(data []byte, rule *Object) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := value(dec, rule, ""); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data", ErrKeys)
	}
	return nil
}

func value(dec *json.Decoder, rule *Object, path string) error {
	if rule == nil {
		var skip json.RawMessage
		return dec.Decode(&skip)
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '[':
		for dec.More() {
			if err := value(dec, rule, path+"[]"); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ]
		return err
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			k := kt.(string)
			if seen[k] {
				return fmt.Errorf("%w: duplicate key %q%s", ErrKeys, k, at(path))
			}
			seen[k] = true
			sub := rule.Values
			if !rule.AnyKeys {
				r, ok := rule.Keys[k]
				if !ok {
					return fmt.Errorf("%w: unknown field %q%s (field names are case-sensitive)", ErrKeys, k, at(path))
				}
				sub = r
			}
			if err := value(dec, sub, path+"."+k); err != nil {
				return err
			}
		}
		_, err := dec.Token() // }
		return err
	}
	return nil
}

func at(path string) string {
	if path == "" {
		return ""
	}
	return " in " + path[1:]
}

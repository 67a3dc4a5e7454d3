// Package hsm keeps Ed25519 signing keys in a PKCS#11 token (an HSM, a
// smart card, SoftHSM2) and signs with them there (CKM_EDDSA): the private
// key never leaves the token. It gives the log a note signer for its
// checkpoints and the witness a cosignature/v1 signer. Keys are named by
// RFC 7512 PKCS#11 URIs:
//
//	pkcs11:token=llmaudit;object=log-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/llmaudit/pin
package hsm

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// URI is the part of an RFC 7512 PKCS#11 URI that names a key and how to
// reach it.
type URI struct {
	Token  string // path attribute "token": the token label
	Serial string // "serial"
	Object string // "object": the key's label
	ID     []byte // "id"
	// ModulePath is the query attribute "module-path": the PKCS#11 module
	// to load. Required.
	ModulePath string
	// PinValue ("pin-value") or PinSource ("pin-source", a file: URI of a
	// file of mode 0600) give the user PIN.
	PinValue, PinSource string
}

var errURI = errors.New("bad PKCS#11 URI")

// ParseURI parses an RFC 7512 URI. Unknown path attributes are refused
// (they could narrow the key in ways this package would ignore); unknown
// query attributes too.
func ParseURI(s string) (*URI, error) {
	rest, ok := strings.CutPrefix(s, "pkcs11:")
	if !ok {
		return nil, fmt.Errorf("%w: %q does not start with pkcs11:", errURI, s)
	}
	path, query, _ := strings.Cut(rest, "?")
	u := &URI{}
	attr := func(part string) (string, string, error) {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return "", "", fmt.Errorf("%w: attribute %q has no value", errURI, part)
		}
		dv, err := url.PathUnescape(v)
		if err != nil {
			return "", "", fmt.Errorf("%w: %v", errURI, err)
		}
		return k, dv, nil
	}
	for part := range strings.SplitSeq(path, ";") {
		if part == "" {
			continue
		}
		k, v, err := attr(part)
		if err != nil {
			return nil, err
		}
		switch k {
		case "token":
			u.Token = v
		case "serial":
			u.Serial = v
		case "object":
			u.Object = v
		case "id":
			u.ID = []byte(v)
		case "type":
			if v != "private" {
				return nil, fmt.Errorf("%w: type=%s, the signing key is type=private", errURI, v)
			}
		default:
			return nil, fmt.Errorf("%w: path attribute %q is not supported", errURI, k)
		}
	}
	if query != "" {
		for part := range strings.SplitSeq(query, "&") {
			k, v, err := attr(part)
			if err != nil {
				return nil, err
			}
			switch k {
			case "module-path":
				u.ModulePath = v
			case "pin-value":
				u.PinValue = v
			case "pin-source":
				u.PinSource = v
			default:
				return nil, fmt.Errorf("%w: query attribute %q is not supported", errURI, k)
			}
		}
	}
	switch {
	case u.ModulePath == "":
		return nil, fmt.Errorf("%w: module-path is required", errURI)
	case u.Token == "" && u.Serial == "":
		return nil, fmt.Errorf("%w: name the token (token= or serial=)", errURI)
	case u.Object == "" && len(u.ID) == 0:
		return nil, fmt.Errorf("%w: name the key (object= or id=)", errURI)
	case u.PinValue != "" && u.PinSource != "":
		return nil, fmt.Errorf("%w: give pin-value or pin-source, not both", errURI)
	}
	return u, nil
}

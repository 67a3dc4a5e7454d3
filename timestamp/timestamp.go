// Package timestamp is RFC 3161 time-stamping of checkpoints: the request
// a log sends to a timestamp authority (TSA) for a checkpoint, the check of
// the TSA's answer, and the verification of a stored token against the
// checkpoint it stamps and the TSA's certificate roots. It does no I/O.
//
// The message imprint is SHA-256 of the checkpoint exactly as the log
// published it: the whole signed note (the note text, a blank line and
// every signature line, the witnesses' cosignatures included), the bytes
// GET /checkpoint answered. So `openssl ts -verify -data FILE` checks a
// token against that file as it is.
package timestamp

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/digitorus/pkcs7"
	dts "github.com/digitorus/timestamp"
)

// Errors. Each is wrapped with what went wrong.
var (
	// ErrMalformed: the answer or the token is not a DER RFC 3161
	// time-stamp response or token.
	ErrMalformed = errors.New("malformed time-stamp token")
	// ErrRefused: the TSA answered with a status other than granted.
	ErrRefused = errors.New("the TSA refused the time-stamp request")
	// ErrMismatch: the answer is not for the request: another nonce, or
	// another hash algorithm.
	ErrMismatch = errors.New("the time-stamp answer is not for this request")
	// ErrImprint: the token's message imprint is not SHA-256 of the
	// checkpoint given.
	ErrImprint = errors.New("the time-stamp token stamps another message than this checkpoint")
	// ErrSignature: the token's signature does not verify, or its signer's
	// certificate does not chain to the roots given with the time-stamping
	// extended key usage.
	ErrSignature = errors.New("the time-stamp token's signature or certificate chain does not verify")
)

// MaxTokenBytes caps a token or a TSA's answer read from outside.
const MaxTokenBytes = 64 << 10

// MaxChainBytes caps a PEM certificate chain file.
const MaxChainBytes = 1 << 20

// Imprint is the message imprint of a checkpoint: SHA-256 of its bytes as
// published.
func Imprint(checkpoint []byte) []byte {
	h := sha256.Sum256(checkpoint)
	return h[:]
}

// Request is a time-stamp request for one checkpoint.
type Request struct {
	// DER is the TimeStampReq to POST to the TSA (Content-Type
	// application/timestamp-query): SHA-256 imprint of the checkpoint,
	// certReq set (the token carries the TSA's certificate), a random
	// 63-bit nonce, no policy (the TSA's default).
	DER     []byte
	imprint []byte
	nonce   *big.Int
}

// NewRequest returns the time-stamp request for checkpoint.
func NewRequest(checkpoint []byte) (*Request, error) {
	nonce, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return nil, err
	}
	r := &dts.Request{HashAlgorithm: crypto.SHA256, HashedMessage: Imprint(checkpoint), Certificates: true, Nonce: nonce}
	der, err := r.Marshal()
	if err != nil {
		return nil, err
	}
	return &Request{DER: der, imprint: r.HashedMessage, nonce: nonce}, nil
}

// Token checks a TSA's answer (a DER TimeStampResp) to r: granted, with
// r's nonce and imprint and a signature that verifies with the certificate
// it carries. It returns the TimeStampToken (the DER CMS ContentInfo) that
// a log stores; the chain is checked by Verify, against the roots
// configured for the TSA.
func (r *Request) Token(answer []byte) ([]byte, error) {
	if len(answer) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, MaxTokenBytes)
	}
	var head struct {
		Status struct {
			Status int
			Rest   asn1.RawValue `asn1:"optional"`
		}
		Token asn1.RawValue `asn1:"optional"`
	}
	if _, err := asn1.Unmarshal(answer, &head); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if head.Status.Status != 0 {
		_, err := dts.ParseResponse(answer) // says why
		return nil, fmt.Errorf("%w: status %d: %v", ErrRefused, head.Status.Status, err)
	}
	ts, err := dts.ParseResponse(answer)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if ts.Nonce == nil || ts.Nonce.Cmp(r.nonce) != 0 {
		return nil, fmt.Errorf("%w: nonce %v, sent %v", ErrMismatch, ts.Nonce, r.nonce)
	}
	if ts.HashAlgorithm != crypto.SHA256 {
		return nil, fmt.Errorf("%w: hash algorithm %v", ErrMismatch, ts.HashAlgorithm)
	}
	if !bytes.Equal(ts.HashedMessage, r.imprint) {
		return nil, fmt.Errorf("%w: imprint %x", ErrImprint, ts.HashedMessage)
	}
	if !ts.AddTSACertificate {
		return nil, fmt.Errorf("%w: the token carries no certificate although certReq was set", ErrMalformed)
	}
	return ts.RawToken, nil
}

// Verifier verifies tokens against the certificate roots of the TSAs a
// verifier trusts. It is safe for concurrent use.
type Verifier struct {
	roots         *x509.CertPool
	intermediates *x509.CertPool
	certs         []*x509.Certificate // every certificate of the chains
}

// NewVerifier returns a Verifier for the TSAs whose certificate chains are
// given, each PEM: a chain's self-signed certificates are roots, the others
// intermediates (or the TSA's own certificate, for tokens that do not
// carry it).
func NewVerifier(chains ...[]byte) (*Verifier, error) {
	v := &Verifier{roots: x509.NewCertPool(), intermediates: x509.NewCertPool()}
	nroots := 0
	for i, chain := range chains {
		certs, err := ParseChain(chain)
		if err != nil {
			return nil, fmt.Errorf("chain %d: %w", i+1, err)
		}
		for _, c := range certs {
			v.certs = append(v.certs, c)
			if bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil {
				v.roots.AddCert(c)
				nroots++
			} else {
				v.intermediates.AddCert(c)
			}
		}
	}
	if nroots == 0 {
		return nil, errors.New("no root certificate (a self-signed one) in the TSA chains")
	}
	return v, nil
}

// ParseChain parses a PEM file of certificates: at least one, nothing but
// CERTIFICATE blocks.
func ParseChain(pemText []byte) ([]*x509.Certificate, error) {
	if len(pemText) > MaxChainBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxChainBytes)
	}
	var out []*x509.Certificate
	rest := pemText
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a PEM block of type %q, not CERTIFICATE", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("text after the last PEM certificate")
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

// Stamp is what a verified token says.
type Stamp struct {
	// Time is the TSA's genTime: the checkpoint existed no later than it.
	Time time.Time
	// Accuracy is the TSA's stated accuracy (0 if it states none).
	Accuracy time.Duration
	// Serial is the token's serial number at its TSA.
	Serial *big.Int
	// Signer is the TSA's certificate (verified to a root).
	Signer *x509.Certificate
	// Policy is the TSA policy OID the token was issued under.
	Policy string
}

// TSA names the authority: its certificate's subject.
func (s *Stamp) TSA() string { return s.Signer.Subject.String() }

// Verify checks token, a DER TimeStampToken, against checkpoint (the
// bytes it stamps): the message imprint is SHA-256 of checkpoint
// (ErrImprint), the signature verifies with the signer's certificate, which
// chains to one of v's roots with the time-stamping extended key usage, at
// the token's time (ErrSignature).
func (v *Verifier) Verify(token, checkpoint []byte) (*Stamp, error) {
	if len(token) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, MaxTokenBytes)
	}
	p7, err := pkcs7.Parse(token)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	ts, err := dts.Parse(token) // checks the signature with a certificate the token carries
	if err != nil {
		if len(p7.Certificates) > 0 && p7.Verify() != nil {
			return nil, fmt.Errorf("%w: %v", ErrSignature, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if ts.HashAlgorithm != crypto.SHA256 || !bytes.Equal(ts.HashedMessage, Imprint(checkpoint)) {
		return nil, fmt.Errorf("%w: the token's imprint is %v %x, the checkpoint's SHA-256 is %x", ErrImprint, ts.HashAlgorithm, ts.HashedMessage, Imprint(checkpoint))
	}
	// A token that does not carry its signer's certificate is checked
	// with the configured chains'.
	p7.Certificates = append(p7.Certificates, v.certs...)
	inter := v.intermediates.Clone()
	for _, c := range p7.Certificates {
		inter.AddCert(c)
	}
	err = p7.VerifyWithOpts(x509.VerifyOptions{Roots: v.roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}, CurrentTime: ts.Time})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	signer := p7.GetOnlySigner()
	if signer == nil {
		return nil, fmt.Errorf("%w: not exactly one signer", ErrSignature)
	}
	return &Stamp{Time: ts.Time, Accuracy: ts.Accuracy, Serial: ts.SerialNumber, Signer: signer, Policy: ts.Policy.String()}, nil
}

// Unverified is what a token claims, before Verify.
type Unverified = dts.Timestamp

// ParseUnverified parses a DER TimeStampToken without checking its
// signer's chain: its time and imprint are claims until Verify.
func ParseUnverified(token []byte) (*Unverified, error) {
	if len(token) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, MaxTokenBytes)
	}
	ts, err := dts.Parse(token)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return ts, nil
}

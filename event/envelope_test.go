package event

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

const envelopeVectorPath = "../testdata/envelope-vector.json"

// envelopeVector is testdata/envelope-vector.json: the server secret, a
// tenant, a body (the version 2 leaf of leaf-vector.json) and everything
// derived from them.
type envelopeVector struct {
	Comment   string `json:"comment"`
	Secret    string `json:"secret"`
	Tenant    string `json:"tenant"`
	Body      string `json:"body"`
	TenantKey string `json:"tenant_key"`
	LogKey    string `json:"log_key"`
	Nonce     string `json:"nonce"`
	Tag       string `json:"tag"`
	BodyHash  string `json:"body_hash"`
	Envelope  string `json:"envelope"`
	EntryHash string `json:"entry_hash"`
}

func buildEnvelopeVector(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile(vectorPath)
	if err != nil {
		t.Fatal(err)
	}
	var lv leafVector
	if err := json.Unmarshal(raw, &lv); err != nil {
		t.Fatal(err)
	}
	secret := bytes.Repeat([]byte{0x5e}, 32)
	s, err := NewEnvelopeSealer(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(lv.LeafText)
	e := s.Seal(lv.Leaf.Tenant, body)
	env := e.Marshal()
	v := envelopeVector{
		Comment:   "leaf version 3 (docs/leaf-format.md): tenant_key = HMAC-SHA256(secret, 'llmaudittrail tenant key v1' || 0x00 || tenant); nonce = HMAC-SHA256(HMAC-SHA256(secret, 'llmaudittrail envelope nonce v1'), body)[:16]; tag = HMAC-SHA256(tenant_key, nonce) (a log-wide record's: HMAC-SHA256(log_key, nonce), log_key = HMAC-SHA256(secret, 'llmaudittrail log-wide key v1')); body_hash = SHA-256(0x00 || body); entry_hash = SHA-256(0x00 || envelope). Hex throughout; body and envelope are text.",
		Secret:    hex.EncodeToString(secret),
		Tenant:    lv.Leaf.Tenant,
		Body:      lv.LeafText,
		TenantKey: s.TenantKey(lv.Leaf.Tenant).String(),
		LogKey:    s.LogKey().String(),
		Nonce:     hex.EncodeToString(e.Nonce[:]),
		Tag:       hex.EncodeToString(e.Tag[:]),
		BodyHash:  hex.EncodeToString(e.Body[:]),
		Envelope:  string(env),
		EntryHash: hex.EncodeToString(LeafHash(env)),
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func TestEnvelopeVector(t *testing.T) {
	built := buildEnvelopeVector(t)
	if *update {
		if err := os.WriteFile(envelopeVectorPath, built, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(envelopeVectorPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, built) {
		t.Fatalf("%s differs from what the code makes now (rebuild with -update only if the format changed on purpose)\nfile:\n%s\nbuilt:\n%s", envelopeVectorPath, raw, built)
	}
	var v envelopeVector
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	// Recompute each value from the vector's own inputs, step by step,
	// with the exported API (as an auditor would).
	k, err := ParseTenantKey(v.TenantKey)
	if err != nil {
		t.Fatal(err)
	}
	e, err := OpenEnvelope([]byte(v.Envelope), []byte(v.Body), &k)
	if err != nil {
		t.Fatalf("OpenEnvelope(vector) = %v", err)
	}
	nonce, _ := hex.DecodeString(v.Nonce)
	if tag := k.Tag(nonce); hex.EncodeToString(tag[:]) != v.Tag || !bytes.Equal(e.Nonce[:], nonce) {
		t.Errorf("tag = %x, want %s", tag, v.Tag)
	}
	if got := hex.EncodeToString(LeafHash([]byte(v.Body))); got != v.BodyHash {
		t.Errorf("body hash = %s, want %s", got, v.BodyHash)
	}
	if got := hex.EncodeToString(LeafHash([]byte(v.Envelope))); got != v.EntryHash {
		t.Errorf("entry hash = %s, want %s", got, v.EntryHash)
	}
	if len(v.Envelope) != EnvelopeSize {
		t.Errorf("envelope is %d bytes, EnvelopeSize %d", len(v.Envelope), EnvelopeSize)
	}
	m := hmac.New(sha256.New, mustHex(t, v.Secret))
	m.Write([]byte("llmaudittrail log-wide key v1"))
	if got := hex.EncodeToString(m.Sum(nil)); got != v.LogKey {
		t.Errorf("log key = %s, want %s", got, v.LogKey)
	}
	// The envelope shows nothing of the body.
	for _, s := range []string{v.Tenant, `"session"`, `"kind"`, "llm"} {
		if strings.Contains(v.Envelope, s) {
			t.Errorf("envelope contains %q", s)
		}
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenEnvelopeRefuses(t *testing.T) {
	s, err := NewEnvelopeSealer(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"v":2,"id":"00112233445566778899aabbccddeeff"}`)
	e := s.Seal("bank-a", body)
	env := e.Marshal()
	ka, kb := s.TenantKey("bank-a"), s.TenantKey("bank-b")
	if ka == kb {
		t.Fatal("two tenants have one key")
	}
	if _, err := OpenEnvelope(env, body, &ka); err != nil {
		t.Fatalf("OpenEnvelope = %v", err)
	}
	if _, err := OpenEnvelope(env, body, &kb); !errors.Is(err, ErrWrongTag) {
		t.Errorf("another tenant's key: %v, want ErrWrongTag", err)
	}
	if _, err := OpenEnvelope(env, append(bytes.Clone(body), ' '), &ka); !errors.Is(err, ErrBodyMismatch) {
		t.Errorf("another body: %v, want ErrBodyMismatch", err)
	}
	upper := bytes.Replace(env, []byte(hex.EncodeToString(e.Tag[:])), []byte(strings.ToUpper(hex.EncodeToString(e.Tag[:]))), 1)
	for name, bad := range map[string][]byte{
		"upper-case hex": upper,
		"short":          env[:len(env)-1],
		"trailing":       append(bytes.Clone(env), ' '),
		"v2":             bytes.Replace(env, []byte(`"v":3`), []byte(`"v":2`), 1),
		"fields swapped": bytes.Replace(env, []byte(`"tag"`), []byte(`"tog"`), 1),
	} {
		if _, err := ParseEnvelope(bad); !errors.Is(err, ErrEnvelope) {
			t.Errorf("%s: ParseEnvelope = %v, want ErrEnvelope", name, err)
		}
	}
	// Equal bodies of two tenants get unlinkable nonces only through the
	// body: different bodies, different nonces.
	e2 := s.Seal("bank-a", append(bytes.Clone(body), ' '))
	if e2.Nonce == e.Nonce {
		t.Error("two bodies, one nonce")
	}
	if _, err := ParseTenantKey(ka.String() + "\n"); err != nil {
		t.Errorf("ParseTenantKey(String()) = %v", err)
	}
	if _, err := ParseTenantKey("00"); err == nil {
		t.Error("ParseTenantKey accepted a short key")
	}
}

func FuzzParseEnvelope(f *testing.F) {
	s, _ := NewEnvelopeSealer(bytes.Repeat([]byte{2}, 32))
	e := s.Seal("t", []byte("body"))
	f.Add(e.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEnvelope(data)
		if err != nil {
			return
		}
		if !bytes.Equal(e.Marshal(), data) {
			t.Fatalf("ParseEnvelope accepted a non-canonical form %q", data)
		}
	})
}

func BenchmarkEnvelope(b *testing.B) {
	raw, err := os.ReadFile(vectorPath)
	if err != nil {
		b.Fatal(err)
	}
	var lv leafVector
	if err := json.Unmarshal(raw, &lv); err != nil {
		b.Fatal(err)
	}
	body := []byte(lv.LeafText)
	s, _ := NewEnvelopeSealer(bytes.Repeat([]byte{3}, 32))
	k := s.TenantKey(lv.Leaf.Tenant)
	// v2: the leaf is the entry; the log hashes it once.
	b.Run("v2-leaf", func(b *testing.B) {
		for b.Loop() {
			LeafHash(body)
		}
		b.ReportMetric(float64(len(body)), "entry-bytes")
	})
	// v3: the server seals (tenant key, nonce, tag, body hash) and hashes
	// the envelope; the body is stored beside it.
	b.Run("v3-seal", func(b *testing.B) {
		for b.Loop() {
			e := s.Seal(lv.Leaf.Tenant, body)
			LeafHash(e.Marshal())
		}
		b.ReportMetric(float64(EnvelopeSize), "entry-bytes")
		b.ReportMetric(float64(EnvelopeSize+len(body)), "stored-bytes")
	})
	// v3: a tenant's auditor checks one entry of its own (tag and body).
	env := s.Seal(lv.Leaf.Tenant, body)
	data := env.Marshal()
	b.Run("v3-open", func(b *testing.B) {
		for b.Loop() {
			if _, err := OpenEnvelope(data, body, &k); err != nil {
				b.Fatal(err)
			}
		}
	})
	// v3: a tenant's auditor tests an entry of another tenant (tag only).
	b.Run("v3-recognise", func(b *testing.B) {
		for b.Loop() {
			e, _ := ParseEnvelope(data)
			k.Recognises(&e)
		}
	})
	// v4: the server seals as in version 3 and also derives the body's
	// field salt and builds its field tree (BodyFields).
	s4, _ := NewEnvelopeSealerVersion(bytes.Repeat([]byte{3}, 32), LeafVersionFields)
	b.Run("v4-seal", func(b *testing.B) {
		for b.Loop() {
			e := s4.Seal(lv.Leaf.Tenant, body)
			LeafHash(e.Marshal())
		}
		b.ReportMetric(float64(EnvelopeSizeFields), "entry-bytes")
		b.ReportMetric(float64(EnvelopeSizeFields+len(body)), "stored-bytes")
	})
	// v4: a tenant's auditor (monitor verify, the writer) checks one
	// entry of its own: tag, body and field commitment with the salt.
	env4 := s4.Seal(lv.Leaf.Tenant, body)
	data4, salt4 := env4.Marshal(), s4.FieldSalt(body)
	b.Run("v4-open", func(b *testing.B) {
		for b.Loop() {
			e, err := OpenEnvelope(data4, body, &k)
			if err != nil {
				b.Fatal(err)
			}
			if err := CheckFields(&e, body, salt4); err != nil {
				b.Fatal(err)
			}
		}
	})
}

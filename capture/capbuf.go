package capture

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"mime"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
)

// capBuf keeps the first max bytes of a body and, once the body outgrows
// them, the SHA-256 of all of it. With a budget, the bytes it keeps are
// taken from it as the buffer grows, for client (the share of the agent
// whose call it records); when the budget or the share is spent, it keeps
// no more (the body is recorded truncated, with its size and digest).
type capBuf struct {
	max    int
	buf    []byte
	total  int64
	h      hash.Hash
	budget *BodyBudget
	client string
	held   int64
	// hint, if positive, is the body's announced length (Content-Length):
	// a budgeted buffer's first growth is to it when it is below
	// capBufStep, so that a small body does not take (and allocate) a whole
	// step. An announced length never makes a buffer larger.
	hint int64
}

// capBufStep is the least a budgeted buffer grows by.
const capBufStep = 64 << 10

func (b *capBuf) write(p []byte) {
	b.total += int64(len(p))
	if b.h == nil {
		if need := len(b.buf) + len(p); b.budget != nil && need > cap(b.buf) && need <= b.max {
			step := capBufStep
			if b.hint > 0 && cap(b.buf) == 0 {
				step = int(min(b.hint, capBufStep))
			}
			grow := min(max(cap(b.buf), step, need-cap(b.buf)), b.max-cap(b.buf))
			if b.budget.take(b.client, int64(grow)) == nil {
				b.held += int64(grow)
				nb := make([]byte, len(b.buf), cap(b.buf)+grow)
				copy(nb, b.buf)
				b.buf = nb
			} else {
				b.max = len(b.buf) // the budget is spent: keep what we have
			}
		}
		if len(b.buf)+len(p) <= b.max {
			b.buf = append(b.buf, p...)
			return
		}
		b.h = sha256.New()
		b.h.Write(b.buf)
		b.buf = append(b.buf, p[:b.max-len(b.buf)]...)
	}
	b.h.Write(p)
}

// whole keeps the first max bytes of a body held whole in memory without
// copying them (the body must not change until payload is called).
func (b *capBuf) whole(body []byte) {
	b.total = int64(len(body))
	if len(body) <= b.max {
		b.buf = body
		return
	}
	b.h = sha256.New()
	b.h.Write(body)
	b.buf = body[:b.max:b.max]
}

// release gives the buffer's bytes back to the budget.
func (b *capBuf) release() {
	if b.budget != nil && b.held > 0 {
		b.budget.give(b.client, b.held)
		b.held = 0
	}
}

func (b *capBuf) truncated() bool { return b.h != nil }

// payload puts the body in ev (exact bytes); when it was truncated, its
// full size and digest go in a.
func (b *capBuf) payload(ev *event.Request, a attrs, mt string) {
	if b.total == 0 {
		return
	}
	if b.truncated() {
		// The leaf's payload size is what was kept.
		a.set(event.AttrCaptureBodySize, b.total)
		a.set(event.AttrCaptureBodyTruncated, true)
		a.set(event.AttrCaptureBodySHA256, hex.EncodeToString(b.h.Sum(nil)))
	}
	ev.PayloadBase64, ev.MediaType = base64.StdEncoding.EncodeToString(b.buf), mt
}

// mediaType normalises a Content-Type for the vault: lower-case type, its
// parameters kept when they are printable ASCII, def when there is none or
// it is malformed.
func mediaType(ct, def string) string {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !event.MediaTypeName(mt) {
		return def
	}
	if len(params) == 0 {
		return mt
	}
	full := mime.FormatMediaType(mt, params)
	if full == "" || len(full) > 128 || strings.ContainsFunc(full, func(r rune) bool { return r < ' ' || r > '~' }) {
		return mt
	}
	return full
}

// completeJSONObject reports whether b is one whole JSON object (with
// surrounding white space at most). A cut-off object is never valid JSON.
func completeJSONObject(b []byte) bool {
	t := bytes.TrimSpace(b)
	return len(t) > 0 && t[0] == '{' && strictjson.IsJSON(t)
}

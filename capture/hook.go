package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Hook records the calls of a Go program. Its Middleware method plugs into
// the official SDKs, keeping their own timeouts and retries (every attempt is
// recorded, grouped into one call by the SDKs' X-Stainless-Retry-Count):
//
//	hook, _ := capture.NewHook(capture.NewHTTPRecorder(logURL, auditToken, nil))
//	defer hook.Close(ctx)
//	oc := openai.NewClient(option.WithMiddleware(hook.Middleware)) // openai-go/v3
//
// (every Stainless-generated SDK takes it the same way: see ExampleHook),
// and RoundTripper wraps the transport of any other http.Client. A Hook is
// safe for concurrent use.
type Hook struct {
	c       *core
	rec     Recorder
	session string
	scope   string
}

// NewHook returns a Hook that records through rec. Its options are the
// shared ones (WithMode, WithFingerprintKey, WithMaxRecordedBytes,
// WithRecordTimeout, WithRecordLinger, WithGapRetryInterval, WithLogger) and
// WithSession, WithActor and WithAgentID.
func NewHook(rec Recorder, opts ...HookOption) (*Hook, error) {
	if rec == nil {
		return nil, errors.New("capture: a Recorder is required")
	}
	max := DefaultMaxRecordedBytes
	if _, ok := rec.(*HTTPRecorder); ok {
		max = DefaultHTTPMaxRecordedBytes
	}
	o := defaultOptions(max)
	for _, f := range opts {
		f.applyHook(&o)
	}
	c, err := newCore("middleware", o)
	if err != nil {
		return nil, err
	}
	h := &Hook{c: c, rec: rec, session: c.o.session, scope: "hook:" + event.NewID()}
	if h.session == "" {
		h.session = event.NewID()
	}
	if !event.ValidID(h.session) {
		return nil, fmt.Errorf("capture: session %q is not a valid id", h.session)
	}
	if !event.ValidID(c.o.actor.ID) {
		return nil, fmt.Errorf("capture: actor id %q is not a valid id", c.o.actor.ID)
	}
	return h, nil
}

// Session is the session the Hook records in when the call's context names
// none (ContextWithSession).
func (h *Hook) Session() string { return h.session }

// Flush waits until every event recorded in the background so far has been
// recorded or noted as a gap.
func (h *Hook) Flush(ctx context.Context) error { return h.c.bg.wait(ctx) }

// Close flushes, tries once more to record pending gaps, and returns an
// error if missed events are left without a capture.gap event.
func (h *Hook) Close(ctx context.Context) error { return h.c.close(ctx) }

// Middleware records one attempt of an SDK call. Its type is the
// option.Middleware of openai-go/v3 and the other Stainless-generated SDKs:
// func(*http.Request, option.MiddlewareNext) (*http.Response, error).
//
// In FailClosed mode an attempt whose request cannot be recorded is not
// sent; the error wraps ErrNotRecorded (the SDK retries it like a
// connection error, then returns it).
func (h *Hook) Middleware(req *http.Request, next func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	return h.do(req, next)
}

// RoundTripper returns a transport that records every request it carries
// through next (http.DefaultTransport if nil).
func (h *Hook) RoundTripper(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripper{h: h, next: next}
}

type roundTripper struct {
	h    *Hook
	next http.RoundTripper
}

func (rt roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	// A RoundTripper must not modify its request.
	r := req.Clone(req.Context())
	r.Body = req.Body
	return rt.h.do(r, rt.next.RoundTrip)
}

func (h *Hook) do(req *http.Request, next func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	received := time.Now()
	ctx := req.Context()
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("capture: reading request body: %w", err)
		}
		body = b
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.ContentLength = int64(len(body))
	}
	session := sessionFrom(ctx)
	if session == "" || !event.ValidID(session) {
		session = h.session
	}
	subject := subjectFrom(ctx)
	if !event.ValidID(subject) {
		subject = ""
	}
	explicit := req.Header.Get(HeaderCall)
	if !event.ValidID(explicit) {
		explicit = ""
	}
	x, err := h.c.begin(ctx, &callSpec{
		rec: h.rec, scope: h.scope, principal: h.scope, session: session, explicit: explicit,
		actor: h.c.o.actor, subject: subject, agentID: h.c.o.agentID, upstream: req.URL.Host,
		provider: providerFor(req.URL.Hostname(), req.Method, req.URL.Path, req.Header),
		server:   req.URL.Hostname(), method: req.Method, path: req.URL.Path, rawQuery: req.URL.RawQuery,
		header: req.Header, body: body, received: received,
	})
	if err != nil {
		return nil, err
	}
	for k := range req.Header {
		if isAuditHeader(k) {
			req.Header.Del(k)
		}
	}
	// Let the transport negotiate (and undo) compression itself, so the
	// body the Hook sees is plaintext.
	req.Header.Del("Accept-Encoding")

	resp, err := next(req)
	if err != nil {
		how := endUpstream
		if ctx.Err() != nil {
			how = endClient
		}
		x.finish(how, err)
		return resp, err
	}
	x.response(resp.StatusCode, resp.Header, resp.ContentLength)
	if resp.StatusCode >= 400 && !x.stream {
		// The SDKs close an error body unread before retrying: read it now
		// (it is small) so that it is recorded.
		limit := min(int64(h.c.o.maxRecordedBytes), 1<<20)
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if int64(len(b)) <= limit || rerr != nil {
			resp.Body.Close()
			x.observe(b)
			how := endEOF
			if rerr != nil {
				how = endUpstream
				if ctx.Err() != nil {
					how = endClient
				}
			}
			x.finish(how, rerr)
			resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b), errReader{rerr}))
			return resp, nil
		}
		resp.Body = readCloser{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
	}
	resp.Body = &tapBody{rc: resp.Body, x: x, ctx: ctx}
	return resp, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) {
	if e.err == nil {
		return 0, io.EOF
	}
	return 0, e.err
}

type readCloser struct {
	io.Reader
	io.Closer
}

// tapBody passes a response body to the SDK and shows every chunk to the
// exchange; the attempt ends at EOF, on a read error, or when the SDK
// closes the body.
type tapBody struct {
	rc  io.ReadCloser
	x   *exchange
	ctx context.Context

	mu    sync.Mutex
	ended bool
}

func (t *tapBody) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return n, err
	}
	t.x.observe(p[:n])
	switch {
	case err == io.EOF:
		t.end(endEOF, nil)
	case err != nil && t.ctx.Err() != nil:
		t.end(endClient, context.Cause(t.ctx))
	case err != nil:
		t.end(endUpstream, err)
	}
	return n, err
}

func (t *tapBody) Close() error {
	err := t.rc.Close()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ended {
		t.end(endClient, errors.New("response body closed before its end"))
	}
	return err
}

func (t *tapBody) end(how endKind, cause error) {
	t.ended = true
	t.x.finish(how, cause)
}

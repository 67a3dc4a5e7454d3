// Package capture records LLM API calls in the audit log, through two front
// doors that share one recorder:
//
//   - Proxy, a reverse proxy mounted by the log server at /proxy/NAME/...,
//     which agents in any language reach by changing only their base URL;
//   - Hook, in-process middleware for Go programs: Hook.Middleware plugs into
//     option.WithMiddleware of github.com/openai/openai-go/v3 and the other
//     official Stainless-generated SDKs (ExampleHook), and
//     Hook.RoundTripper wraps any http.RoundTripper.
//
// The providers it knows are registered with package llmapi, one file each
// (registry.go lists them).
//
// Every attempt of a call becomes an llm.request event, recorded before the
// attempt goes upstream, and an llm.response event when it ends; tool calls
// the model asks for become tool.call events. Bodies go to the vault (the
// events' payloads); the leaves carry only commitments and a few GenAI
// attributes. Credentials are never recorded, only keyed fingerprints.
//
// In FailClosed mode (the default) the request event is durable before the
// call is forwarded, and a call whose request cannot be recorded is refused
// (ErrNotRecorded) without anything being sent upstream. In FailOpen mode the
// call proceeds while the request is recorded alongside, and events that
// could not be recorded are described by a capture.gap event in their
// session as soon as recording works again.
package capture

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Recorder appends audit events durably. Record appends events in order,
// all or none (events of one session are chained in the order given); when it
// returns without error every event is durable and results[i] describes
// events[i]. HTTPRecorder records through a log server's event API; the log
// server's proxy records into its engine directly.
type Recorder interface {
	Record(ctx context.Context, events []*event.Request) ([]event.Appended, error)
}

// Mode says what happens to a call whose request cannot be recorded.
type Mode string

// Modes.
const (
	// FailClosed: the request event is durable before the call goes upstream;
	// if it cannot be recorded the call is refused and nothing is sent.
	FailClosed Mode = "fail-closed"
	// FailOpen: the call goes upstream at once while its request is recorded;
	// what could not be recorded is reported later by a capture.gap event.
	FailOpen Mode = "fail-open"
)

// ParseMode parses "fail-closed" or "fail-open"; "" is FailClosed.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", FailClosed:
		return FailClosed, nil
	case FailOpen:
		return FailOpen, nil
	}
	return "", fmt.Errorf("capture mode %q: want fail-closed or fail-open", s)
}

// Outcomes of an attempt (attribute capture.outcome of llm.response).
const (
	// OutcomeComplete: the whole response arrived; for a stream, the
	// protocol's terminator was seen (data: [DONE], message_stop,
	// response.completed).
	OutcomeComplete = "complete"
	// OutcomeAborted: the client went away (cancelled, timed out, closed the
	// body or the connection) before the response ended.
	OutcomeAborted = "aborted"
	// OutcomeUpstreamError: the upstream answered with an error status,
	// could not be reached, or its response broke off.
	OutcomeUpstreamError = "upstream_error"
)

// Errors.
var (
	// ErrNotRecorded is returned (Hook) or answered with 503 in the
	// provider's error format (Proxy) when, in FailClosed mode, the request
	// event could not be recorded. Nothing was sent upstream.
	ErrNotRecorded = errors.New("capture: the audit log could not record the request; it was not sent upstream (fail-closed)")
	// ErrUnauthenticated is returned by an Authenticator for a missing,
	// unknown or revoked audit token (HTTP 401).
	ErrUnauthenticated = errors.New("capture: missing, unknown or revoked audit token")
	// ErrForbidden is returned by an Authenticator for a token without the
	// right to record calls (HTTP 403).
	ErrForbidden = errors.New("capture: the audit token may not record calls")
	// ErrRefused is returned (Hook) or answered with 400 in the provider's
	// error format (Proxy) for a request to a known API whose body is not
	// strict JSON or is ambiguous (a duplicate name, or a case variant of a
	// field the capture reads, such as "Model"): the upstream might read
	// it otherwise than the capture, so it is recorded as llm.refused and
	// not sent upstream, whatever the capture mode.
	ErrRefused = errors.New("capture: the request body is not strict, unambiguous JSON; it was not sent upstream")
)

// RefusedError wraps ErrRefused with what was wrong with the body.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string { return ErrRefused.Error() + ": " + e.Err.Error() }

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

func (e *RefusedError) Unwrap() error { return e.Err }

// NotRecordedError wraps ErrNotRecorded with the recorder's error.
type NotRecordedError struct{ Err error }

func (e *NotRecordedError) Error() string { return ErrNotRecorded.Error() + ": " + e.Err.Error() }

// Is makes errors.Is(err, ErrNotRecorded) true.
func (e *NotRecordedError) Is(target error) bool { return target == ErrNotRecorded }

func (e *NotRecordedError) Unwrap() error { return e.Err }

// Headers of the proxy protocol. None of them is forwarded upstream.
const (
	// HeaderToken carries the agent's audit token (write scope).
	HeaderToken = "X-Audit-Token"
	// HeaderSession names the session; when absent the proxy makes one and
	// returns it in the same header of the response.
	HeaderSession = "X-Audit-Session"
	// HeaderCall, optional, groups attempts into one call (the proxy returns
	// the call id it used in this header).
	HeaderCall = "X-Audit-Call"
	// HeaderAgent, optional, is recorded as gen_ai.agent.id.
	HeaderAgent = "X-Audit-Agent"
	// HeaderOnBehalfOf, optional, is recorded as the actor's on_behalf_of
	// (the log keeps only its pseudonym).
	HeaderOnBehalfOf = "X-Audit-On-Behalf-Of"
	// HeaderSubject, optional, names the data subject the call is about
	// (the log keeps only its pseudonym).
	HeaderSubject = "X-Audit-Subject"
	// HeaderRequestID is answered by the proxy with the event id of the
	// attempt's llm.request event when it was recorded before forwarding
	// (fail-closed): the request is durable in the log's journal; its index
	// is answered by GET /v1/events/{id} once the log has sequenced it.
	HeaderRequestID = "X-Audit-Request-Id"
)

// Defaults.
const (
	DefaultMaxRequestBytes  = 32 << 20
	DefaultMaxRecordedBytes = 16 << 20
	DefaultRecordTimeout    = 10 * time.Second
	DefaultRecordLinger     = 2 * time.Millisecond
	// DefaultHTTPMaxRecordedBytes is the body recording cap of a Hook whose
	// Recorder is an HTTPRecorder: a recorded body travels base64-encoded in
	// an event API request, which a log server caps at 4 MiB by default.
	DefaultHTTPMaxRecordedBytes = 2 << 20
)

type sessionKey struct{}

type subjectKey struct{}

// ContextWithSubject returns a context whose calls through a Hook are
// recorded as being about the data subject id (the log keeps only its
// pseudonym).
func ContextWithSubject(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, subjectKey{}, id)
}

func subjectFrom(ctx context.Context) string {
	s, _ := ctx.Value(subjectKey{}).(string)
	return s
}

// ContextWithSession returns a context whose calls through a Hook are
// recorded in session id instead of the Hook's own.
func ContextWithSession(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, sessionKey{}, id)
}

func sessionFrom(ctx context.Context) string {
	s, _ := ctx.Value(sessionKey{}).(string)
	return s
}

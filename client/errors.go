package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// Sentinels a caller acts on. An *Error from the server matches the one its
// status and code stand for (errors.Is).
var (
	// ErrUnauthenticated: no token, an unknown or a revoked one (401).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: the token lacks the scope or tenant (403).
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: no such entry, session or payload, or not visible to the
	// token (404).
	ErrNotFound = errors.New("not found")
	// ErrNotPublished: the index or size asked for is not covered by a
	// published checkpoint yet (404 not_published); retry later.
	ErrNotPublished = errors.New("not covered by a published checkpoint yet")
	// ErrErased: the payload was erased (410).
	ErrErased = errors.New("erased")
	// ErrTooLarge: the request body exceeds the server's limit (413).
	ErrTooLarge = errors.New("request too large")
	// ErrConflict: the request conflicts with the log's state (409): a
	// signer id that exists, a leaf hash that is not the record's, a
	// signature already made, an erasure inside the retention floor or
	// under a legal hold. Error.Code says which.
	ErrConflict = errors.New("conflict")
	// ErrLocked: the signer is locked out after failed attempts (423).
	ErrLocked = errors.New("signer locked")
	// ErrOverloaded: the server is overloaded or timed out (503); retry
	// after a pause.
	ErrOverloaded = errors.New("log server overloaded")
)

// Error is an error answer of the log server: its HTTP status and the
// body {"error": {"code", "message"}}. A rejected write appended nothing.
type Error struct {
	StatusCode int
	Code       string
	Message    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("log server: %d %s: %s", e.StatusCode, e.Code, e.Message)
}

// Is matches the sentinel the answer stands for; an invalid event, a
// reserved session and a reserved kind also match event.ErrInvalidEvent,
// event.ErrReservedSession and event.ErrReservedKind, as the engine's own
// errors do.
func (e *Error) Is(target error) bool {
	switch target {
	case event.ErrInvalidEvent:
		return e.StatusCode == http.StatusBadRequest && e.Code == "invalid_event"
	case event.ErrReservedSession:
		return e.StatusCode == http.StatusForbidden && e.Code == "reserved_session"
	case event.ErrReservedKind:
		return e.StatusCode == http.StatusForbidden && e.Code == "reserved_kind"
	case ErrUnauthenticated:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrNotPublished:
		return e.StatusCode == http.StatusNotFound && e.Code == "not_published"
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrErased:
		return e.StatusCode == http.StatusGone
	case ErrTooLarge:
		return e.StatusCode == http.StatusRequestEntityTooLarge
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrLocked:
		return e.StatusCode == http.StatusLocked
	case ErrOverloaded:
		return e.StatusCode == http.StatusServiceUnavailable
	}
	return false
}

func decodeError(status int, body []byte) error {
	var e api.ErrorBody
	if json.Unmarshal(body, &e) != nil || e.Error.Code == "" {
		return &Error{StatusCode: status, Code: "unexpected", Message: event.Clip(string(body), 512)}
	}
	return &Error{StatusCode: status, Code: e.Error.Code, Message: event.Clip(e.Error.Message, 512)}
}

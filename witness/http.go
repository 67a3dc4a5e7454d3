package witness

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/llmaudittrail/llmaudittrail/internal/canonpath"
)

// MaxRequestBytes caps an add-checkpoint request body. A checkpoint with a
// full 63-line proof and a handful of signatures is a few KiB.
const MaxRequestBytes = 64 << 10

// maxInFlight bounds concurrent add-checkpoint requests; beyond it the
// witness answers 503 with Retry-After rather than queueing without limit.
const maxInFlight = 256

// Handler serves the witness over HTTP:
//
//	POST /add-checkpoint            c2sp.org/tlog-witness add-checkpoint
//	GET  /<hex sha256(origin)>/checkpoint   latest cosigned checkpoint
//
// Request bodies are capped at MaxRequestBytes (413 beyond). A request
// whose path is not canonical (internal/canonpath) is answered 400.
func (w *Witness) Handler() http.Handler {
	mux := http.NewServeMux()
	for pattern, h := range w.routes() {
		mux.Handle(pattern, h)
	}
	// One path, one decision: a path that is not canonical (escapes of
	// plain characters, dot segments, //) is refused before the mux sees
	// it, rather than cleaned and redirected.
	return canonpath.Handler(mux, func(rw http.ResponseWriter, r *http.Request, err error) {
		http.Error(rw, err.Error(), http.StatusBadRequest)
	})
}

// Routes are the patterns (net/http.ServeMux syntax) of every route that
// Handler serves, sorted.
func Routes() []string {
	return slices.Sorted(maps.Keys((&Witness{}).routes()))
}

// routes maps each route's pattern to its handler.
func (w *Witness) routes() map[string]http.Handler {
	sem := make(chan struct{}, maxInFlight)
	return map[string]http.Handler{
		"POST /add-checkpoint": http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			default:
				rw.Header().Set("Retry-After", "1")
				http.Error(rw, "witness overloaded", http.StatusServiceUnavailable)
				return
			}
			status, body, contentType := w.serveAddCheckpoint(rw, r)
			rw.Header().Set("Content-Type", contentType)
			rw.Header().Set("Content-Length", strconv.Itoa(len(body)))
			rw.WriteHeader(status)
			rw.Write(body)
		}),
		"GET /{id}/checkpoint": http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			status, body := w.serveCheckpoint(r)
			rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
			rw.Header().Set("Content-Length", strconv.Itoa(len(body)))
			rw.WriteHeader(status)
			rw.Write(body)
		}),
	}
}

const textPlain = "text/plain; charset=utf-8"

// serveAddCheckpoint runs one add-checkpoint request and maps its outcome
// to a status code, body and content type.
func (w *Witness) serveAddCheckpoint(rw http.ResponseWriter, r *http.Request) (int, []byte, string) {
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxRequestBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return http.StatusRequestEntityTooLarge, []byte("request body too large\n"), textPlain
		}
		return http.StatusBadRequest, []byte("reading request body failed\n"), textPlain
	}
	req, err := ParseRequest(body)
	var cosig []byte
	if err == nil {
		cosig, err = w.AddCheckpoint(r.Context(), req)
	}
	if err == nil {
		return http.StatusOK, cosig, textPlain
	}
	status := statusFor(err)
	if status == http.StatusInternalServerError {
		w.logger.ErrorContext(r.Context(), "add-checkpoint failed", "error", err)
		return status, []byte("internal error\n"), textPlain
	}
	w.logger.DebugContext(r.Context(), "add-checkpoint refused", "status", status, "error", err)
	if m, ok := errors.AsType[*SizeMismatchError](err); ok {
		return http.StatusConflict, fmt.Appendf(nil, "%d\n", m.Known), "text/x.tlog.size"
	}
	return status, []byte(err.Error() + "\n"), textPlain
}

// statusFor maps an AddCheckpoint or Checkpoint error to an HTTP status.
func statusFor(err error) int {
	switch {
	case errors.Is(err, ErrMalformedRequest), errors.Is(err, ErrOldSizeTooLarge):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnknownLog), errors.Is(err, ErrNotCosigned):
		return http.StatusNotFound
	case errors.Is(err, ErrNoTrustedSignature):
		return http.StatusForbidden
	case errors.Is(err, ErrSizeMismatch), errors.Is(err, ErrRootMismatch):
		return http.StatusConflict
	case errors.Is(err, ErrInvalidProof):
		return http.StatusUnprocessableEntity
	default:
		return http.StatusInternalServerError
	}
}

func (w *Witness) serveCheckpoint(r *http.Request) (int, []byte) {
	origin, ok := w.byID[r.PathValue("id")]
	if !ok {
		return http.StatusNotFound, []byte("unknown log\n")
	}
	cp, err := w.Checkpoint(r.Context(), origin)
	if err != nil {
		status := statusFor(err)
		if status == http.StatusInternalServerError {
			w.logger.ErrorContext(r.Context(), "reading checkpoint failed", "error", err)
			return status, []byte("internal error\n")
		}
		return status, []byte(err.Error() + "\n")
	}
	return http.StatusOK, cp
}

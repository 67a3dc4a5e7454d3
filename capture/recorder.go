package capture

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	auditlog "github.com/llmaudittrail/llmaudittrail/log"
)

// LogRecorder records into an in-process log, for one tenant. The log
// server's proxy uses it.
type LogRecorder struct {
	log    *auditlog.Log
	tenant string
}

// NewLogRecorder returns a Recorder appending to l as tenant.
func NewLogRecorder(l *auditlog.Log, tenant string) *LogRecorder {
	return &LogRecorder{log: l, tenant: tenant}
}

// Record appends events with (*auditlog.Log).Append.
func (r *LogRecorder) Record(ctx context.Context, events []*auditlog.Request) ([]auditlog.Result, error) {
	return r.log.Append(ctx, r.tenant, events)
}

// HTTPRecorder records by posting to a log server's event API
// (POST /v1/events and /v1/events:batch) with a bearer token of write scope.
type HTTPRecorder struct {
	base   *url.URL
	token  string
	client *http.Client
}

// NewHTTPRecorder returns a Recorder posting to the log server at baseURL
// (e.g. http://127.0.0.1:8080). client nil means a client with a 30 s
// timeout that keeps up to 64 idle connections to the server.
func NewHTTPRecorder(baseURL, token string, client *http.Client) *HTTPRecorder {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		u = &url.URL{Opaque: baseURL} // fails at first use with the parse error
	}
	if client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		client = &http.Client{Timeout: 30 * time.Second, Transport: t}
	}
	return &HTTPRecorder{base: u, token: token, client: client}
}

// ServerError is an error answer of the log server.
type ServerError struct {
	StatusCode int
	Code       string
	Message    string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("log server: %d %s: %s", e.StatusCode, e.Code, e.Message)
}

// Unwrap maps the server's answer to the log's sentinels.
func (e *ServerError) Unwrap() error {
	switch {
	case e.StatusCode == http.StatusBadRequest && e.Code == "invalid_event":
		return auditlog.ErrInvalidEvent
	case e.StatusCode == http.StatusServiceUnavailable && e.Code == "overloaded":
		return auditlog.ErrPushback
	}
	return nil
}

type eventResponse struct {
	ID       string `json:"id"`
	Index    uint64 `json:"index"`
	Seq      uint64 `json:"seq"`
	Session  string `json:"session"`
	Leaf     string `json:"leaf"`
	LeafHash string `json:"leaf_hash"`
}

// Record posts events and checks that every returned leaf hashes to the
// returned leaf hash and is the event that was sent (kind and session).
func (r *HTTPRecorder) Record(ctx context.Context, events []*auditlog.Request) ([]auditlog.Result, error) {
	if len(events) == 0 {
		return nil, nil
	}
	var body any = events[0]
	path := "/v1/events"
	if len(events) > 1 {
		body, path = map[string]any{"events": events}, "/v1/events:batch"
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	u := r.base.JoinPath(path)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("reading log server answer: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		json.Unmarshal(rb, &e)
		return nil, &ServerError{StatusCode: resp.StatusCode, Code: e.Error.Code, Message: truncate(e.Error.Message, 512)}
	}
	var out []eventResponse
	if len(events) == 1 {
		var one eventResponse
		if err := json.Unmarshal(rb, &one); err != nil {
			return nil, fmt.Errorf("decoding log server answer: %w", err)
		}
		out = []eventResponse{one}
	} else {
		var many struct {
			Events []eventResponse `json:"events"`
		}
		if err := json.Unmarshal(rb, &many); err != nil {
			return nil, fmt.Errorf("decoding log server answer: %w", err)
		}
		out = many.Events
	}
	if len(out) != len(events) {
		return nil, fmt.Errorf("log server answered %d results for %d events", len(out), len(events))
	}
	res := make([]auditlog.Result, len(out))
	for i, o := range out {
		leaf, err := base64.StdEncoding.DecodeString(o.Leaf)
		if err != nil {
			return nil, fmt.Errorf("event %d: leaf is not base64: %w", i, err)
		}
		lh := auditlog.LeafHash(leaf)
		if hex.EncodeToString(lh) != o.LeafHash {
			return nil, fmt.Errorf("event %d: leaf_hash does not match the leaf", i)
		}
		l, err := auditlog.ParseLeaf(leaf)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		if l.Kind != events[i].Kind || l.Session != events[i].Session || l.ID != o.ID || l.Seq != o.Seq {
			return nil, errors.New("log server answered a leaf that is not the event sent")
		}
		res[i] = auditlog.Result{ID: o.ID, Index: o.Index, Seq: o.Seq, Leaf: leaf, LeafHash: lh}
	}
	return res, nil
}

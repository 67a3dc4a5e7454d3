package server

import (
	"context"
	"net/http"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/tsa"
)

// startStamper starts the rounds of the timestamp authorities, if any.
func (s *Server) startStamper(ctx context.Context) error {
	if len(s.cfg.Timestamps) == 0 {
		return nil
	}
	st, err := tsa.New(ctx, tsa.Config{Log: s.log, DB: s.backend.State, Authorities: s.cfg.Timestamps,
		Interval: s.cfg.TimestampInterval, Client: s.cfg.TimestampClient,
		Tenant: DefaultTenant, ServerToken: ServerTokenID, Logger: s.logger})
	if err != nil {
		return err
	}
	s.stamper = st
	sctx, stop := context.WithCancel(context.Background())
	s.stopStamp, s.stampDone = stop, make(chan struct{})
	go func() {
		defer close(s.stampDone)
		st.Run(sctx)
	}()
	return nil
}

// Stamper is the timestamping of checkpoints, or nil without timestamp
// authorities.
func (s *Server) Stamper() *tsa.Stamper { return s.stamper }

// getTimestamps answers GET /v1/timestamps: the tokens on the latest
// time-stamped checkpoint, on the checkpoint of ?size=N, or on the first
// time-stamped checkpoint that covers the entry ?covering=INDEX. Anyone
// reads them, as anyone reads checkpoints.
func (s *Server) getTimestamps(r *http.Request, _ *auth.Principal) (int, any, error) {
	if s.stamper == nil {
		return 0, nil, errorf(http.StatusNotFound, "no_timestamps", "this log has no timestamp authority (log-server --tsa-url)")
	}
	q := r.URL.Query()
	var out []api.Timestamp
	var err error
	switch {
	case q.Has("size") && q.Has("covering"):
		return 0, nil, errorf(http.StatusBadRequest, "bad_query", "give size or covering, not both")
	case q.Has("size"):
		size, perr := parseUint(q.Get("size"), "size")
		if perr != nil {
			return 0, nil, perr
		}
		out, err = s.stamper.ForSize(r.Context(), size)
	case q.Has("covering"):
		idx, perr := parseUint(q.Get("covering"), "covering")
		if perr != nil {
			return 0, nil, perr
		}
		out, err = s.stamper.Covering(r.Context(), idx)
	default:
		out, err = s.stamper.Latest(r.Context())
	}
	if err != nil {
		return 0, nil, err
	}
	if out == nil {
		out = []api.Timestamp{}
	}
	return http.StatusOK, api.Timestamps{Timestamps: out}, nil
}

// coveringTimestamps returns the tokens of the first time-stamped
// checkpoint that covers the entry at index, each with the entry's
// inclusion proof at that checkpoint's size; none without timestamp
// authorities or when no token covers it yet.
func (s *Server) coveringTimestamps(ctx context.Context, index uint64) ([]api.Timestamp, error) {
	if s.stamper == nil {
		return nil, nil
	}
	ts, err := s.stamper.Covering(ctx, index)
	if err != nil || len(ts) == 0 {
		return nil, err
	}
	rc, err := s.log.Entry(ctx, index, ts[0].TreeSize)
	if err != nil {
		return nil, err
	}
	for i := range ts {
		ts[i].InclusionProof = rc.InclusionProof
	}
	return ts, nil
}

// treeTimestamps returns the tokens of the first time-stamped checkpoint
// at least as large as size, each with the consistency proof from size to
// it; none without timestamp authorities or when no token is that large
// yet.
func (s *Server) treeTimestamps(ctx context.Context, size uint64) ([]api.Timestamp, error) {
	if s.stamper == nil || size == 0 {
		return nil, nil
	}
	ts, err := s.stamper.Covering(ctx, size-1)
	if err != nil || len(ts) == 0 {
		return nil, err
	}
	var p [][]byte
	if ts[0].TreeSize > size {
		if p, err = s.log.Consistency(ctx, size, ts[0].TreeSize); err != nil {
			return nil, err
		}
	}
	for i := range ts {
		ts[i].ConsistencyProof = p
	}
	return ts, nil
}

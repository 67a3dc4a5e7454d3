package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"
)

// WitnessTransport wraps next (http.DefaultTransport if nil) so that every
// request it carries is observed as a request to a witness, labelled with
// the request's host: WitnessLatency (until the answer's head arrives) and,
// for a failure, WitnessFailures. A 409 answer carrying the witness's size
// (Content-Type text/x.tlog.size) is the tlog-witness protocol's request to
// resend with another proof, not a failure. A request cancelled before
// its answer is neither timed nor counted: Tessera cancels the requests
// still out once the witness policy is satisfied. Give Tessera a client with it
// (backend.Config.WitnessClient): Tessera uses that client for witnesses
// only.
func WitnessTransport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return witnessTransport{next}
}

type witnessTransport struct{ next http.RoundTripper }

func (t witnessTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	if err != nil && errors.Is(r.Context().Err(), context.Canceled) {
		return resp, err
	}
	host := r.URL.Host
	WitnessLatency.WithLabelValues(host).Observe(time.Since(start).Seconds())
	if reason := witnessFailure(resp, err); reason != "" {
		WitnessFailures.WithLabelValues(host, reason).Inc()
	}
	return resp, err
}

// witnessFailure names what failed in a witness request, "" if nothing.
func witnessFailure(resp *http.Response, err error) string {
	var ne net.Error
	switch {
	case err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()):
		return "timeout"
	case err != nil:
		return "error"
	case resp.StatusCode == http.StatusOK:
		return ""
	case resp.StatusCode == http.StatusConflict && resp.Header.Get("Content-Type") == "text/x.tlog.size":
		return ""
	}
	return "http_" + strconv.Itoa(resp.StatusCode)
}

package server

import (
	"net/http"
	"net/url"
	"strings"
)

// maxQueryPieces is a bound below url.ParseQuery's on the parameters of a
// query (10,000, or GODEBUG urlmaxqueryparams).
const maxQueryPieces = 1000

// queryGet is r.URL.Query().Get(key) without building the map of every
// parameter: a write asked for its parameters four times, and those maps
// were a twentieth of what the server allocated per event. Pieces are read
// as url.ParseQuery reads them: split at '&', a piece with ';' or a bad
// escape skipped, the first value of key taken.
func queryGet(r *http.Request, key string) string {
	q := r.URL.RawQuery
	if strings.Count(q, "&") >= maxQueryPieces {
		return r.URL.Query().Get(key) // its limit on the parameters, and GODEBUG's
	}
	for q != "" {
		var piece string
		piece, q, _ = strings.Cut(q, "&")
		if piece == "" || strings.Contains(piece, ";") {
			continue
		}
		k, v, _ := strings.Cut(piece, "=")
		if strings.ContainsAny(k, "%+") {
			var err error
			if k, err = url.QueryUnescape(k); err != nil {
				continue
			}
		}
		if k != key {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			var err error
			if v, err = url.QueryUnescape(v); err != nil {
				continue
			}
		}
		return v
	}
	return ""
}

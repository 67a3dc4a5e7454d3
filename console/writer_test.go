package console_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/event"
)

var rowRE = regexp.MustCompile(`(?s)<tr id="entry-\d+".*?</tr>`)

// TestConsoleTimelineShowsWriter (issue #24, finding 9): every timeline
// row says how its event came into the log and whose token wrote it, so
// that an actor an agent claims ("system capture") is not read as the
// server's word: "via api, token ..." for events a token posted, "via
// server, token ..." for the server's own.
func TestConsoleTimelineShowsWriter(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.append(w.writer,
		&event.Request{Session: "claims", Kind: "capture.gap", Actor: event.Actor{Type: "system", ID: "capture"}},
		&event.Request{Session: "claims", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "bot"}})
	w.waitPublished()
	agents := tokenID(t, w, "agents")
	a := newAgent(t, w.url, nil)
	a.signIn(w.auditor)
	for _, tc := range []struct {
		session, want string
		rows          int
	}{
		{"claims", "via api, token " + agents, 2},
		{"access.tokens", "via server, token log-server", 4}, // the tokens of clinic-a that newWorld made
	} {
		t.Run(tc.session, func(t *testing.T) {
			r := a.do("GET", "sessions/"+tc.session+"?tenant="+tenant, nil, nil)
			rows := rowRE.FindAllString(r.body, -1)
			if r.code != 200 || len(rows) != tc.rows {
				t.Fatalf("timeline of %s = %d with %d rows, want 200 with %d:\n%s", tc.session, r.code, len(rows), tc.rows, r.body)
			}
			for i, row := range rows {
				if !strings.Contains(row, `<span class="small writer">`+tc.want+`</span>`) {
					t.Errorf("row %d does not say %q:\n%s", i, tc.want, row)
				}
			}
		})
	}
}

// tokenID is the public id of the world's token named name.
func tokenID(t *testing.T, w *world, name string) string {
	list, err := w.srv.Tokens().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list {
		if p.Name == name {
			return p.ID
		}
	}
	t.Fatalf("no token named %s", name)
	return ""
}

package monitor

import (
	"context"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// TestAppendAlertTenant: appendAlert writes an alert about a session in
// the session's tenant with a global token; an alert about the log itself
// in the token's tenant; with a token of another tenant (refused there)
// in the token's tenant; and through a server that ignores ?tenant= on
// writes (the alert lands in the token's tenant) it is delivered, not
// retried.
func TestAppendAlertTenant(t *testing.T) {
	l := newTestLog(t, server.Config{})
	ctx := context.Background()
	global, _, err := l.srv.Tokens().Create(ctx, auth.Spec{Name: "mon-global", Tenant: server.DefaultTenant, Global: true, Scopes: []string{auth.ScopeRead, auth.ScopeMonitor}})
	if err != nil {
		t.Fatal(err)
	}
	tenantB, _, err := l.srv.Tokens().Create(ctx, auth.Spec{Name: "mon-b", Tenant: "clinic-b", Scopes: []string{auth.ScopeMonitor}})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(l.url())
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		q := r.Out.URL.Query()
		q.Del("tenant")
		r.Out.URL.RawQuery = q.Encode()
	}}
	old := httptest.NewServer(rp)
	defer old.Close()

	admin := testClient(l.url(), l.token)
	for _, tc := range []struct {
		name, url, token, alertTenant, instance, want string
	}{
		{"global token, a session's alert", l.url(), global, "clinic-a", "g1", "clinic-a"},
		{"global token, the log's alert", l.url(), global, "", "g2", server.DefaultTenant},
		{"token of another tenant", l.url(), tenantB, "clinic-a", "b1", "clinic-b"},
		{"server without tenant= on writes", old.URL, global, "clinic-a", "g3", server.DefaultTenant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := Alert{ID: "a-" + tc.instance, Time: nowString(time.Now()), Rule: "test.rule", Severity: "high", Message: "m", Source: "rule", Tenant: tc.alertTenant, Session: "s1"}
			if err := appendAlert(ctx, testClient(tc.url, tc.token), tc.instance, a); err != nil {
				t.Fatalf("appendAlert: %v", err)
			}
			page, err := admin.Session(ctx, "monitor."+tc.instance, client.SessionQuery{Tenant: tc.want})
			if err != nil || len(page.Events) != 1 || page.Events[0].Kind != event.KindMonitorAlert {
				t.Fatalf("tenant %s's session monitor.%s: %+v, %v; want the alert", tc.want, tc.instance, page, err)
			}
		})
	}
}

package console_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// Hostile values: each would set window.__xss if it ran.
const (
	xssScript  = `<script>window.__xss='script'</script>`
	xssImg     = `"><img src=x onerror="window.__xss='img'">`
	xssURL     = `javascript:window.__xss='url'`
	xssSVG     = `<svg onload="window.__xss='svg'">`
	xssControl = "\x1b[31mred\x1b[0m \u202eevil\u202c \u200bzero \a"
)

// TestConsoleRendersLogValuesInert: events whose session id, actor,
// attributes, payload, tool names and alert text carry markup,
// javascript: URLs and control characters are shown as text on every page
// that shows them. The browser runs with the Content-Security-Policy
// bypassed, so that the escaping alone must hold; it is checked in the
// page: nothing ran, no script, no event handler, no javascript: link, no
// element the log's values would have made, the values visible as text,
// control characters visibly escaped.
func TestConsoleRendersLogValuesInert(t *testing.T) {
	w := newWorld(t, worldOptions{})
	session := "javascript:void" // a valid session id that looks like a URL
	bot := event.Actor{Type: "agent", ID: "javascript:bot"}
	hostile := map[string]any{"note": xssScript, "html": xssImg, "link": xssURL, "ctl": xssControl, "gen_ai.request.model": xssSVG, "capture.call.id": "c1"}
	// A JSON payload is stored compacted as the client's encoder wrote it
	// (markup escaped as \u003c); an HTML payload keeps it as it is.
	jsonPayload, _ := json.Marshal(map[string]string{"text": xssScript + xssImg, "url": xssURL, "ctl": xssControl})
	htmlPayload := base64.StdEncoding.EncodeToString([]byte(xssScript + xssImg + "\n" + xssURL + "\n" + xssSVG + xssControl))
	evs := w.append(w.writer,
		&event.Request{Session: session, Kind: "llm.request", Actor: bot, Attributes: attrs(hostile), PayloadBase64: htmlPayload, MediaType: "text/html"},
		&event.Request{Session: session, Kind: "tool.call", Actor: bot, Attributes: attrs(map[string]any{"gen_ai.tool.name": xssImg, "gen_ai.tool.call.id": xssURL}), Payload: jsonPayload},
	)
	mon := w.client(w.token(auth.Spec{Name: "monitor", Tenant: tenant, Scopes: []string{auth.ScopeWrite, auth.ScopeMonitor}}))
	w.append(mon, &event.Request{Session: "monitor.m1", Kind: "monitor.alert", Actor: event.Actor{Type: "system", ID: "monitor.m1"},
		Attributes: attrs(map[string]any{"monitor.rule": xssSVG, "monitor.severity": xssScript, "monitor.message": xssImg + xssControl,
			"monitor.index": evs[1].Index, "monitor.session": xssScript})})
	w.waitPublished()

	b := newTab(t, w)
	if _, err := chromedp.Call(b.ctx, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	b.signIn(w.auditor)
	timeline := "sessions/" + session + "?tenant=" + tenant
	for _, p := range []struct {
		name, path, click string
		want              []string
	}{
		{"sessions", "sessions?kind=llm.request", "", []string{session, xssSVG}},
		{"timeline", timeline, "", []string{session, "javascript:bot", xssImg}},
		{"timeline with payloads", timeline, "#open-payloads", []string{xssScript + xssImg, xssSVG + `\x1b[31mred`, `\u003cscript\u003e`}},
		{"entry", fmt.Sprintf("entries/%d", evs[0].Index), "", []string{xssScript, xssImg, xssURL, xssSVG, `\x1b[31mred\x1b[0m \u202eevil\u202c \u200bzero \x07`}},
		{"payload", fmt.Sprintf("entries/%d", evs[0].Index), "#open-payload", []string{xssScript + xssImg, xssURL, xssSVG + `\x1b[31mred\x1b[0m \u202eevil\u202c \u200bzero \x07`}},
		{"alerts", "alerts", "", []string{xssSVG, xssScript, xssImg + `\x1b[31mred`}},
	} {
		t.Run(p.name, func(t *testing.T) {
			b.t = t
			b.open(p.path)
			if p.click != "" {
				b.click(p.click)
			}
			b.inert(p.name)
			text := b.eval(`document.body.textContent`)
			for _, s := range p.want {
				if !strings.Contains(text, s) {
					t.Errorf("%s: the page does not show %q as text", p.name, s)
				}
			}
			if strings.ContainsAny(text, "\x1b\u202e\u200b\a") {
				t.Errorf("%s: a control or invisible character reached the page unescaped", p.name)
			}
		})
	}
	t.Run("disclosed fields", func(t *testing.T) {
		b.t = t
		b.open(fmt.Sprintf("entries/%d", evs[1].Index))
		b.set("#fields-other", "text,url,ctl")
		b.click("#disclose-fields")
		b.inert("disclosed fields")
		text := b.eval(`document.body.textContent`)
		if !strings.Contains(b.text("#fields-check"), "Verified") {
			t.Errorf("the fields did not verify: %s", b.mainText())
		}
		for _, s := range []string{`<script>`, `<img`, `javascript:`, `\u001b[31mred`} {
			if !strings.Contains(text, s) {
				t.Errorf("the disclosed fields do not show %q as text", s)
			}
		}
		if strings.ContainsAny(text, "\x1b\u202e\u200b\a") {
			t.Error("a control or invisible character reached the page unescaped")
		}
	})
	b.t = t
	b.open(timeline)
	b.shoot("hostile-values")
}

// inert checks that nothing from the log became markup or code.
func (b *tab) inert(name string) {
	b.t.Helper()
	checks := map[string]string{
		"a script ran":                    `String(window.__xss)`,
		"script elements":                 `String(document.scripts.length)`,
		"elements the values would make":  `String(document.querySelectorAll('img, svg, iframe, object, embed').length)`,
		"event handler attributes":        `String([...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.toLowerCase().startsWith('on'))).length)`,
		"javascript: links and forms":     `String([...document.querySelectorAll('a[href], form[action]')].filter(e => (e.href || e.action || '').toLowerCase().startsWith('javascript:')).length)`,
		"links that leave the console":    `String([...document.querySelectorAll('a[href]')].filter(e => new URL(e.href).origin !== location.origin || !new URL(e.href).pathname.startsWith('/console/')).length)`,
		"forms that post out of it":       `String([...document.querySelectorAll('form')].filter(e => new URL(e.action).origin !== location.origin).length)`,
		"a base element that moves links": `String(document.querySelectorAll('base').length)`,
	}
	want := map[string]string{"a script ran": "undefined"}
	for what, js := range checks {
		w, ok := want[what]
		if !ok {
			w = "0"
		}
		if got := b.eval(js); got != w {
			b.t.Errorf("%s: %s: %s", name, what, got)
		}
	}
}

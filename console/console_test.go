package console_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestConsoleAuditorJourney walks the console in the browser as an auditor
// and a signer would: sign in by keyboard; the health page with both
// witnesses and the alert; find a session by search; its timeline with a
// verification badge per event; open a payload and find the access.read
// event that read caused; sign a record and see the manifestation, there
// and on later views; generate a Part 11 report, follow its report.issued
// event and download its PDF and JSON; alerts and replay verdicts linked
// to their events. Each page is checked (no script, labels, contrast,
// reflow) and photographed at desktop and phone widths.
func TestConsoleAuditorJourney(t *testing.T) {
	w := newWorld(t, worldOptions{witnesses: true})
	w.traffic()
	b := newTab(t, w)

	b.open("")
	b.shoot("signin")
	b.signIn(w.auditor)

	t.Run("health", func(t *testing.T) {
		b.t = t
		size, _ := w.srv.Log().Reader().IntegratedSize(t.Context())
		got, _ := strconv.ParseUint(b.text("#log-size"), 10, 64)
		if got == 0 || got > size {
			t.Errorf("log size %d, the log has %d", got, size)
		}
		if s := b.text("#cp-state"); !strings.Contains(s, "cosigned by witness-a and witness-b") {
			t.Errorf("checkpoint state %q", s)
		}
		if n := b.count("#witnesses td .badge.ok"); n != 2 {
			t.Errorf("%d witnesses shown as cosigning, want 2", n)
		}
		if s := b.text("#cp-age"); !strings.Contains(s, "ago") && !strings.Contains(s, "just now") {
			t.Errorf("checkpoint age %q", s)
		}
		if s := b.text("#alerts-by-severity"); !strings.Contains(s, "high\t1") && !strings.Contains(s, "high 1") {
			t.Errorf("alerts by severity: %q", s)
		}
		if s := b.text("#ingest-rate"); !strings.Contains(s, "not measured yet") {
			t.Errorf("an ingest rate from one reading: %q", s)
		}
		// By keyboard: the first Tab reaches the skip link, Enter moves to
		// the page's content; nothing is taken out of the tab order.
		b.do(chromedp.KeyEvent(kb.Tab))
		if s := b.eval(`document.activeElement.textContent`); s != "Skip to content" {
			t.Errorf("the first Tab reaches %q", s)
		}
		b.do(chromedp.KeyEvent(kb.Enter))
		if s := b.eval(`document.activeElement.id`); s != "main" {
			t.Errorf("the skip link moved the focus to %q", s)
		}
		if n := b.count(`a[tabindex^="-"], button[tabindex^="-"], input[tabindex^="-"], select[tabindex^="-"], summary[tabindex^="-"]`); n != 0 {
			t.Errorf("%d controls out of the tab order", n)
		}
	})
	firstHealth := time.Now()

	t.Run("find a session", func(t *testing.T) {
		b.t = t
		b.open("sessions")
		b.click("#search") // every session of the tenant
		b.shoot("sessions")
		for _, c := range []struct {
			field, value string
			want         []string
		}{
			{"#f-agent", "triage-bot", []string{"triage-7"}},
			{"#f-model", "claude-sonnet-4", []string{"billing-2"}},
			{"#f-kind", "replay.verdict", []string{"replay.triage-7"}},
			{"#f-subject", "ps_no_such_subject", nil},
		} {
			b.open("sessions")
			b.set(c.field, c.value)
			b.click("#search")
			got := b.eval(`[...document.querySelectorAll('#sessions a.session')].map(a => a.textContent).join(',')`)
			if got != strings.Join(c.want, ",") {
				t.Errorf("search %s=%s found %q, want %v", c.field, c.value, got, c.want)
			}
		}
		b.open("sessions")
		b.set("#f-alert", "yes")
		b.click("#search")
		if got := b.eval(`[...document.querySelectorAll('#sessions a.session')].map(a => a.textContent).join(',')`); got != "billing-2" {
			t.Errorf("sessions with an alert: %q", got)
		}
		b.open("sessions")
		b.set("#f-agent", "triage-bot")
		b.click("#search")
		b.click("#sessions a.session")
		if loc := b.location(); !strings.Contains(loc, "/console/sessions/triage-7") {
			t.Fatalf("the search result led to %s", loc)
		}
	})

	t.Run("timeline with badges", func(t *testing.T) {
		b.t = t
		if s := b.text("#session-state"); !strings.Contains(s, "Every event verified") || !strings.Contains(s, "cosigned by witness-a and witness-b") {
			t.Errorf("session state %q", s)
		}
		if n, bad := b.count(`#timeline tr[data-verified="true"]`), b.count(`#timeline tr[data-verified="false"]`); n != len(w.triage) || bad != 0 {
			t.Errorf("%d verified and %d failed badges, want %d and 0", n, bad, len(w.triage))
		}
		badge := b.text(fmt.Sprintf("#entry-%d .verif", w.triage[2].Index))
		if !hasAll(badge, "verified", "included under checkpoint", "cosigned by witness-a and witness-b", "chain intact") {
			t.Errorf("badge %q", badge)
		}
		b.shoot("timeline")
	})

	var access string
	t.Run("open a payload and find its access.read", func(t *testing.T) {
		b.t = t
		resp := w.triage[1]
		b.click(fmt.Sprintf("#entry-%d a", resp.Index))
		if s := b.text("#entry-state"); !hasAll(s, "verified", "chain intact") {
			t.Errorf("entry state %q", s)
		}
		if n := b.count("#payload-text"); n != 0 {
			t.Fatal("the payload is shown before it was asked for")
		}
		b.shoot("entry")
		b.click("#open-payload")
		if s := b.text("#commitment-check"); !strings.Contains(s, "opens the leaf's commitment") {
			t.Errorf("commitment check %q", s)
		}
		if s := b.text("#payload-text"); !strings.Contains(s, "refer to cardiology within 24 h") {
			t.Errorf("payload %q", s)
		}
		b.shoot("payload")
		access = strings.TrimPrefix(b.text("#access-link"), "access.read event, entry ")
		b.click("#access-link")
		if h := b.text("h1"); !strings.Contains(h, "access.read") {
			t.Fatalf("the access link led to %q", h)
		}
		if a := b.text("#attributes"); !strings.Contains(a, fmt.Sprintf("access.index\t%d", resp.Index)) && !strings.Contains(a, fmt.Sprintf("access.index %d", resp.Index)) {
			t.Errorf("the access.read event does not name entry %d: %q", resp.Index, a)
		}
		// And by search, as an auditor would look for reads.
		b.open("sessions?kind=access.read")
		b.click("#sessions a.session")
		if n := b.count("#entry-" + access); n != 1 {
			t.Errorf("the access session's timeline lacks entry %s", access)
		}
	})

	t.Run("sign and see the manifestation", func(t *testing.T) {
		b.t = t
		b.signOut()
		b.signIn(w.signer)
		rec := w.triage[4]
		b.open(fmt.Sprintf("entries/%d", rec.Index))
		b.set("#s-signer", signerID)
		b.set("#s-secret", "wrong secret")
		b.click("#sign")
		if s := b.text("#error"); !strings.Contains(s, "secret is wrong") {
			t.Errorf("a wrong secret: %q", s)
		}
		b.set("#s-signer", signerID)
		b.set("#s-meaning", "approved")
		b.set("#s-reason", "triage decision checked against the chart")
		b.set("#s-secret", secret)
		b.click("#sign")
		m := b.text("#signed")
		if !hasAll(m, printedName, "approved", time.Now().UTC().Format("2006-01-02"), "signature verified") {
			t.Errorf("manifestation after signing: %q", m)
		}
		b.shoot("signed")
		// Every later view shows it: the record again, and the timeline.
		b.open(fmt.Sprintf("entries/%d", rec.Index))
		if s := b.text("#signatures"); !hasAll(s, printedName, "approved", "signature verified") {
			t.Errorf("the record's later view: %q", s)
		}
		b.open("sessions/triage-7?tenant=" + tenant)
		if s := b.text("#timeline"); !strings.Contains(s, fmt.Sprintf("%s (%s) signed entry %d as approved", printedName, signerID, rec.Index)) {
			t.Errorf("the timeline does not show the signature: %q", s)
		}
		b.open("sessions?has_signature=yes")
		if got := b.eval(`[...document.querySelectorAll('#sessions a.session')].map(a => a.textContent).join(',')`); got != "triage-7" {
			t.Errorf("sessions with a signature: %q", got)
		}
	})

	t.Run("part 11 report", func(t *testing.T) {
		b.t = t
		b.signOut()
		b.signIn(w.auditor)
		b.open("reports")
		b.shoot("reports")
		b.click("#generate")
		if s := b.text("#anchor"); !strings.Contains(s, "Anchored in the log") {
			t.Fatalf("report anchor: %q", s)
		}
		digest := b.text("#digest")
		b.shoot("report")
		pdf := b.download("#dl-pdf")
		if !bytes.HasPrefix(pdf, []byte("%PDF-")) || len(pdf) < 1000 {
			t.Errorf("the PDF download is %d bytes starting %q", len(pdf), pdf[:min(8, len(pdf))])
		}
		js := b.download("#dl-json")
		if h := sha256.Sum256(js); hex.EncodeToString(h[:]) != digest {
			t.Errorf("the JSON download hashes to %x, the report's digest is %s", h, digest)
		}
		page := b.location()
		b.click("#issued-link")
		if h := b.text("h1"); !strings.Contains(h, "report.issued") {
			t.Fatalf("the report.issued link led to %q", h)
		}
		if a := b.text("#attributes"); !strings.Contains(a, digest) || !strings.Contains(a, "part11") {
			t.Errorf("the report.issued event does not carry the digest: %q", a)
		}
		b.do(chromedp.Navigate(page))
		b.click("#view-html")
		if s := b.text("body"); !strings.Contains(s, "21 CFR Part 11") || !strings.Contains(s, printedName) {
			t.Errorf("the report's HTML: %q", clipText(s))
		}
		b.shootNoCheck("report-html")
	})

	t.Run("alerts and verdicts", func(t *testing.T) {
		b.t = t
		b.open("alerts")
		row := b.text("#alerts tbody tr")
		if !hasAll(row, "high", "tool.forbidden", "payments.transfer", fmt.Sprintf("entry %d", w.billing[1].Index), "verified") {
			t.Errorf("alert row %q", row)
		}
		if v := b.text("#verdicts tbody tr"); !hasAll(v, "diverged", "triage-7", "RPL1001", "messages[0].content") {
			t.Errorf("verdict row %q", v)
		}
		b.shoot("alerts")
		b.click("#alerts a.about")
		if h := b.text("h1"); !strings.Contains(h, fmt.Sprint(w.billing[1].Index)) || !strings.Contains(h, "tool.call") {
			t.Errorf("the alert's link led to %q", h)
		}
	})

	t.Run("health with an ingest rate", func(t *testing.T) {
		b.t = t
		// The console measures the rate between checkpoints it read at
		// least 5 s apart; the pages above read several.
		time.Sleep(time.Until(firstHealth.Add(6 * time.Second)))
		b.open("health")
		if s := b.text("#ingest-rate"); !strings.Contains(s, "entries per minute") {
			t.Errorf("ingest rate %q", s)
		}
		b.shoot("health")
	})
}

func clipText(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

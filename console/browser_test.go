package console_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/llmaudittrail/llmaudittrail/compliance"
)

// tab drives one tab of Debian's headless Chromium (started as the
// compliance package starts it for PDFs) against a world's console.
type tab struct {
	t    *testing.T
	w    *world
	ctx  context.Context
	dl   string // downloads land here
	shot string // screenshots go here (artifacts/console at the repo root)
}

// Screenshot widths: a desktop and a phone.
var widths = []int64{1280, 390}

func newTab(t *testing.T, w *world) *tab {
	t.Helper()
	if _, err := compliance.ChromiumPath(""); err != nil {
		t.Skip("Chromium (Debian package chromium) is not installed; .ci/run installs it")
	}
	ctx, stop, err := compliance.Browser(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	b := &tab{t: t, w: w, ctx: ctx, dl: t.TempDir(), shot: filepath.Join(repoRoot(t), "artifacts", "console")}
	if err := os.MkdirAll(b.shot, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: b.dl, EventsEnabled: new(true)}); err != nil {
		t.Fatal(err)
	}
	b.do(chromedp.EmulateViewport(widths[0], 900))
	return b
}

func (b *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatal(err)
	}
}

// run runs one action; a query that finds nothing gives up after 15 s,
// saying where the tab was and what it showed.
func run[T any](b *tab, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%v, at %s showing:\n%s", err, b.where(), b.mainText())
	}
	return v
}

func (b *tab) where() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	return loc
}

func (b *tab) mainText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector('main') || document.body || {innerText: ''}).innerText`))
	return clipText(s)
}

// open loads a console page (path relative to /console/) and returns the
// response.
func (b *tab) open(path string) *network.Response {
	b.t.Helper()
	return run(b, chromedp.NavigateResponse(b.w.url+path))
}

// click clicks the element and waits for the page it leads to.
func (b *tab) click(sel string) *network.Response {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("clicking %s: %v", sel, err)
	}
	return resp
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	return run(b, chromedp.Text(chromedp.CSS(sel)))
}

func (b *tab) set(sel, value string) {
	b.t.Helper()
	b.do(chromedp.SetValue(chromedp.CSS(sel), value))
}

func (b *tab) eval(js string) string {
	b.t.Helper()
	return run(b, chromedp.Evaluate[string](js))
}

func (b *tab) count(sel string) int {
	b.t.Helper()
	return run(b, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
}

// tryCount is count, or -1 when the tab cannot answer (it is navigating).
func (b *tab) tryCount(sel string) int {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
	if err != nil {
		return -1
	}
	return n
}

func (b *tab) location() string {
	b.t.Helper()
	return run(b, chromedp.Location())
}

// signIn signs in with token, by keyboard: the token typed into the
// field, Enter to submit.
func (b *tab) signIn(token string) {
	b.t.Helper()
	b.open("")
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.SendKeys(chromedp.CSS("#token"), token+"\n")); err != nil {
		b.t.Fatal(err)
	}
	if loc := b.location(); !strings.HasSuffix(loc, "/console/health") {
		b.t.Fatalf("after signing in at %s: %s", loc, b.text("main"))
	}
}

func (b *tab) signOut() {
	b.t.Helper()
	b.click("header form.out button")
	if loc := b.location(); !strings.HasSuffix(loc, "/console/") {
		b.t.Fatalf("after signing out at %s", loc)
	}
}

// download clicks a link that downloads a file and returns the file.
func (b *tab) download(sel string) []byte {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	events := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
	b.do(chromedp.Click(chromedp.CSS(sel)))
	for ev, err := range events {
		if err != nil {
			b.t.Fatalf("downloading with %s: %v", sel, err)
		}
		switch ev.State {
		case browser.DownloadProgressStateCompleted:
			data, err := os.ReadFile(filepath.Join(b.dl, ev.GUID))
			if err != nil {
				b.t.Fatal(err)
			}
			return data
		case browser.DownloadProgressStateCanceled:
			b.t.Fatalf("the download of %s was canceled", sel)
		}
	}
	b.t.Fatalf("no download from %s", sel)
	return nil
}

// checkPage checks what every page must hold: no script of any kind, no
// element that overflows the page sideways at this width (wide tables
// scroll in their own region), every form field labelled, and text with
// WCAG AA contrast.
func (b *tab) checkPage(name string) {
	b.t.Helper()
	if n := b.count("script"); n != 0 {
		b.t.Errorf("%s: %d script elements", name, n)
	}
	if over := b.eval(`String(document.documentElement.scrollWidth - document.documentElement.clientWidth)`); over != "0" {
		b.t.Errorf("%s at width %s: the page overflows sideways by %s px", name, b.eval(`String(innerWidth)`), over)
	}
	if bad := b.eval(unlabelledJS); bad != "" {
		b.t.Errorf("%s: form fields without a label: %s", name, bad)
	}
	if bad := b.eval(contrastJS); bad != "" {
		b.t.Errorf("%s: text below WCAG AA contrast: %s", name, bad)
	}
}

// shoot checks the page and writes screenshots of it at each width:
// artifacts/console/NAME-WIDTH.png. At 640 px with a device scale of 2
// (a 1280 px screen at 200% zoom) the page must reflow too.
func (b *tab) shoot(name string) {
	b.t.Helper()
	b.checkPage(name)
	for _, w := range widths {
		b.do(chromedp.EmulateViewport(w, 900))
		b.checkPage(fmt.Sprintf("%s at %d px", name, w))
		png := run(b, chromedp.FullScreenshot(100))
		if err := os.WriteFile(filepath.Join(b.shot, fmt.Sprintf("%s-%d.png", name, w)), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.do(chromedp.EmulateViewport(640, 900, chromedp.EmulateScale(2)))
	b.checkPage(name + " at 200% zoom")
	b.do(chromedp.EmulateViewport(widths[0], 900))
}

// shootNoCheck photographs a page that is not the console's own (a
// report's print page) without the console's checks.
func (b *tab) shootNoCheck(name string) {
	b.t.Helper()
	for _, w := range widths {
		b.do(chromedp.EmulateViewport(w, 900))
		png := run(b, chromedp.FullScreenshot(100))
		if err := os.WriteFile(filepath.Join(b.shot, fmt.Sprintf("%s-%d.png", name, w)), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.do(chromedp.EmulateViewport(widths[0], 900))
}

const unlabelledJS = `[...document.querySelectorAll('input:not([type=hidden]),select,textarea')]
  .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label')).map(e => e.id || e.name).join(', ')`

// contrastJS lists visible text whose colour against its background is
// below 4.5:1 (3:1 for large text), per WCAG 2.x relative luminance.
const contrastJS = `(() => {
  const parse = c => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null; const p = m[1].split(',').map(Number); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const bg = el => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor); if (c && c.a > 0) return c; } return {r: 255, g: 255, b: 255, a: 1}; };
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const s = getComputedStyle(el);
    if (s.visibility === 'hidden' || s.display === 'none' || el.getClientRects().length === 0) continue;
    if (el.closest('.skip')) continue;
    const fg = parse(s.color), b = bg(el);
    const l1 = lum(fg), l2 = lum(b), ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(s.fontSize), bold = parseInt(s.fontWeight) >= 700;
    const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
    if (ratio < need) bad.push(el.tagName.toLowerCase() + (el.className ? '.' + el.className : '') + ' ' + ratio.toFixed(2));
  }
  return [...new Set(bad)].slice(0, 10).join('; ');
})()`

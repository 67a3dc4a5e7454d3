package console_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestConsoleFieldPicker: an auditor picks two fields of a model call's
// payload (two boxes) and types a third that the payload lacks; the
// console shows the two fields, verified against the log key and the
// leaf's field commitment, and nothing else of the payload, names the
// missing one, and links the access.read event, which names the fields.
// A token without the audit scope is refused, and an entry whose payload
// is not a JSON object offers no picker.
func TestConsoleFieldPicker(t *testing.T) {
	w := newWorld(t, worldOptions{witnesses: true})
	w.traffic()
	b := newTab(t, w)
	b.signIn(w.auditor)
	req := w.triage[0] // llm.request: model and one user message

	b.open(fmt.Sprintf("entries/%d", req.Index))
	if n := b.count("#field-picker"); n != 1 {
		t.Fatalf("%d field pickers on a JSON payload's entry", n)
	}
	if n := b.count("#disclosed"); n != 0 {
		t.Fatal("fields shown before they were asked for")
	}
	box := func(field string) string {
		return b.eval(fmt.Sprintf(`[...document.querySelectorAll('#field-picker input[type=checkbox]')].find(e => e.value === %q).id`, field))
	}
	b.do(chromedp.Click(chromedp.CSS("#" + box("model"))))
	b.do(chromedp.Click(chromedp.CSS("#" + box("messages[*].role"))))
	b.set("#fields-other", "tools[*].name")
	b.click("#disclose-fields")
	if s := b.text("#fields-check"); !strings.Contains(s, "Verified") {
		t.Fatalf("check %q; page:\n%s", s, b.mainText())
	}
	got := b.text("#disclosed")
	if !hasAll(got, "model", `"gpt-4o"`, "messages[0].role", `"user"`) {
		t.Errorf("disclosed fields %q", got)
	}
	if strings.Contains(b.text("main"), "Summarise the triage note") {
		t.Error("the page shows message content that was not picked")
	}
	if s := b.text("#fields-unmatched"); !strings.Contains(s, "tools[*].name") {
		t.Errorf("unmatched %q", s)
	}
	b.shoot("fields")
	b.click("#fields-access-link")
	if h := b.text("h1"); !strings.Contains(h, "access.read") {
		t.Fatalf("the access link led to %q", h)
	}
	if a := b.text("#attributes"); !hasAll(a, "access.fields", "model", "messages[*].role", "tools[*].name") {
		t.Errorf("the access.read event does not name the fields: %q", a)
	}

	// A payload that is not a JSON object has no picker; an event
	// without a payload neither.
	b.open(fmt.Sprintf("entries/%d", w.triage[4].Index))
	if n := b.count("#field-picker"); n != 0 {
		t.Errorf("a picker on an entry without a payload")
	}

	// A reader may see the picker's entry but not disclose.
	b.signOut()
	b.signIn(w.reader)
	b.open(fmt.Sprintf("entries/%d", req.Index))
	b.do(chromedp.Click(chromedp.CSS("#" + box("model"))))
	b.click("#disclose-fields")
	if s := b.text("#fields-error"); !strings.Contains(s, "audit scope") {
		t.Errorf("a reader's disclosure: %q", s)
	}
	if n := b.count("#disclosed"); n != 0 {
		t.Error("a reader got fields")
	}
}

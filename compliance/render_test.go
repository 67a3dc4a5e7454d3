package compliance

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/defenseunicorns/go-oscal/src/pkg/validation"
)

// validateOSCAL validates doc against the OSCAL 1.2.2 JSON schema that
// go-oscal embeds.
func validateOSCAL(t *testing.T, doc []byte) error {
	t.Helper()
	v, err := validation.NewValidatorDesiredVersion(doc, OSCALVersion)
	if err != nil {
		return err
	}
	return v.Validate()
}

// TestOSCALValidates: the assessment results of a report with findings of
// every status validate against NIST's schema; a document with a state
// OSCAL does not know does not.
func TestOSCALValidates(t *testing.T) {
	w := newWorld(t)
	w.skip["second-person"] = true // a not-satisfied finding, with offending entries
	w.build(nil)
	p := testParams()
	p.Gates = nil // a not-applicable control
	for _, prof := range ProfileNames() {
		r := w.compute(prof, p)
		canon, _ := r.Canonical()
		doc, err := OSCAL(r, canon, w.to)
		if err != nil {
			t.Fatal(err)
		}
		if err := validateOSCAL(t, doc); err != nil {
			t.Fatalf("%s: %v\n%s", prof, err, doc)
		}
		var parsed struct {
			AR struct {
				Results []struct {
					Findings []struct {
						Target struct {
							TargetID string `json:"target-id"`
							Status   struct{ State string }
						}
					}
				}
				BackMatter struct {
					Resources []struct {
						Rlinks []struct {
							Hashes []struct{ Value string }
						}
					}
				} `json:"back-matter"`
			} `json:"assessment-results"`
		}
		json.Unmarshal(doc, &parsed)
		fs := parsed.AR.Results[0].Findings
		if len(fs) != len(r.Controls) {
			t.Fatalf("%s: %d findings for %d controls", prof, len(fs), len(r.Controls))
		}
		for i, f := range fs {
			c := r.Controls[i]
			want := map[string]string{Satisfied: "satisfied", NotApplicable: "satisfied", NotSatisfied: "not-satisfied"}[c.Status]
			if f.Target.TargetID != c.ID || f.Target.Status.State != want {
				t.Errorf("%s: finding %+v for control %s %s", prof, f.Target, c.ID, c.Status)
			}
		}
		if h := parsed.AR.BackMatter.Resources[0].Rlinks[0].Hashes[0].Value; h != r.Log.CheckpointSHA256 {
			t.Errorf("back-matter checkpoint hash %s, want %s", h, r.Log.CheckpointSHA256)
		}
		if prof == "eu-ai-act" {
			bad := bytes.Replace(doc, []byte(`"state": "not-satisfied"`), []byte(`"state": "maybe"`), 1)
			if bytes.Equal(bad, doc) {
				t.Fatal("no not-satisfied finding to break")
			}
			if err := validateOSCAL(t, bad); err == nil {
				t.Fatal("a finding in state \"maybe\" validates: the validation checks nothing")
			}
		}
	}
}

func needChromium(t *testing.T) string {
	t.Helper()
	p, err := ChromiumPath("")
	if err != nil {
		t.Skip("Chromium (Debian package chromium) is not installed; .ci/run installs it")
	}
	return p
}

// TestPDFShowsEverySignature: the PDF printed by headless Chromium, read
// back with pdftotext, shows every signer's printed name, time and meaning
// (21 CFR 11.50), on A4 and on Letter.
func TestPDFShowsEverySignature(t *testing.T) {
	chromium := needChromium(t)
	if _, err := exec.LookPath("pdftotext"); err != nil {
		t.Skip("pdftotext (Debian package poppler-utils) is not installed; .ci/run installs it")
	}
	w := newWorld(t)
	w.build(nil)
	r := w.compute("part11", testParams())
	canon, _ := r.Canonical()
	for _, paper := range []string{"a4", "letter"} {
		pdf, ct, err := Renderer{Chromium: chromium}.Render(context.Background(), r, canon, "pdf", paper)
		if err != nil {
			t.Fatal(err)
		}
		if ct != "application/pdf" || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
			t.Fatalf("%s: %s, %q...", paper, ct, pdf[:min(8, len(pdf))])
		}
		path := filepath.Join(t.TempDir(), "report.pdf")
		os.WriteFile(path, pdf, 0o644)
		out, err := exec.Command("pdftotext", path, "-").Output()
		if err != nil {
			t.Fatal(err)
		}
		// pdftotext may break long values across lines; compare without
		// whitespace.
		text := strings.Join(strings.Fields(string(out)), "")
		for _, m := range r.Signatures {
			for _, want := range []string{m.PrintedName, m.Time, m.Meaning} {
				if !strings.Contains(text, strings.Join(strings.Fields(want), "")) {
					t.Errorf("%s: the PDF does not show %q (signature at %d)", paper, want, m.Index)
				}
			}
		}
		for _, want := range []string{"part11-11.10a", "satisfied", r.Log.Root, Digest(canon)} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: the PDF does not show %q", paper, want)
			}
		}
		info, _ := exec.Command("pdfinfo", path).Output()
		size := map[string]string{"a4": "595.92 x 841.92", "letter": "612 x 792"}[paper]
		if !strings.Contains(string(info), size) {
			t.Errorf("%s: page size not %s:\n%s", paper, size, info)
		}
	}
}

// TestHTMLLayout renders the report in Chromium at the width of an A4
// page and checks the layout: nothing wider than the page, every table
// inside it, the cover on a page of its own, the status column readable;
// the screenshot is kept with the test's output.
func TestHTMLLayout(t *testing.T) {
	chromium := needChromium(t)
	w := newWorld(t)
	w.skip["second-person"] = true
	w.build(nil)
	r := w.compute("eu-ai-act", testParams())
	canon, _ := r.Canonical()
	html, err := HTML(r, canon)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop, err := Browser(context.Background(), chromium)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	// 210 mm at 96 dpi, less the page margins.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(687, 1000), LoadHTML(html)); err != nil {
		t.Fatal(err)
	}
	type layout struct {
		ScrollWidth, ClientWidth int
		WideTables               []string
		CoverBreak               string
		StatusCells              int
		BadStatus                []string
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[layout](`(() => {
		const d = document.documentElement;
		const wide = [...document.querySelectorAll('table')].filter(t => t.getBoundingClientRect().right > d.clientWidth + 1).map(t => t.closest('section').id);
		const st = [...document.querySelectorAll('td.status')];
		return {ScrollWidth: d.scrollWidth, ClientWidth: d.clientWidth, WideTables: wide,
			CoverBreak: getComputedStyle(document.querySelector('.cover')).breakAfter,
			StatusCells: st.length,
			BadStatus: st.filter(c => c.scrollWidth > c.clientWidth || !['satisfied','not-satisfied','not-applicable'].includes(c.textContent)).map(c => c.textContent)};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if got.ScrollWidth > got.ClientWidth || len(got.WideTables) > 0 {
		t.Errorf("the page overflows its width: %+v", got)
	}
	if got.CoverBreak != "page" {
		t.Errorf("the cover does not end its page: break-after %q", got.CoverBreak)
	}
	if got.StatusCells != len(r.Controls) || len(got.BadStatus) > 0 {
		t.Errorf("status column: %d cells for %d controls, unreadable %v", got.StatusCells, len(r.Controls), got.BadStatus)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := image.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 600 || b.Dy() < 1000 {
		t.Fatalf("screenshot of %v", b)
	}
	path := filepath.Join(t.TempDir(), "report.png")
	f, _ := os.Create(path)
	png.Encode(f, img)
	f.Close()
	t.Logf("screenshot: %s", path)
	// The screenshot is not blank: the page has ink on it.
	dark := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 4 {
		for x := b.Min.X; x < b.Max.X; x += 4 {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r+g+bl < 3*0x8000 {
				dark++
			}
		}
	}
	if dark < 500 {
		t.Fatalf("the screenshot is nearly blank (%d dark samples)", dark)
	}
}

package compliance

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Paper sizes.
var papers = map[string]chromedp.PaperSize{"a4": chromedp.PaperA4, "letter": chromedp.PaperLetter}

// ErrNoChromium: PDFs need a Chromium binary (Debian's chromium package).
var ErrNoChromium = errors.New("no Chromium to print the PDF with (install Debian's chromium package, or name the binary)")

// PDFTimeout bounds one PDF rendering.
const PDFTimeout = 2 * time.Minute

// chromiumFlags are the flags Chromium needs here: headless, as root
// (no sandbox), and with no network of its own.
func chromiumFlags(path string) []chromedp.ExecAllocatorOption {
	return append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("font-render-hinting", "none"))
}

// ChromiumPath finds the Chromium binary: path if given, else chromium
// or chromium-browser on PATH.
func ChromiumPath(path string) (string, error) {
	if path != "" {
		return exec.LookPath(path)
	}
	for _, n := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", ErrNoChromium
}

// Browser starts a headless Chromium; the context it returns drives a tab
// of it until cancel.
func Browser(ctx context.Context, chromium string) (context.Context, context.CancelFunc, error) {
	path, err := ChromiumPath(chromium)
	if err != nil {
		return nil, nil, err
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, chromiumFlags(path)...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		cancelBrowser()
		cancelAlloc()
		return nil, nil, fmt.Errorf("starting %s: %w", path, err)
	}
	return bctx, func() { cancelBrowser(); cancelAlloc() }, nil
}

// LoadHTML replaces the tab's document with html.
func LoadHTML(html []byte) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		tree, err := chromedp.Call(ctx, page.GetFrameTree, cdp.Empty{})
		if err != nil {
			return err
		}
		_, err = chromedp.Call(ctx, page.SetDocumentContent, page.SetDocumentContentParams{FrameID: tree.FrameTree.Frame.ID, HTML: string(html)})
		return err
	})
}

// PDF prints html on paper (a4 or letter) with headless Chromium, page
// numbers in the footer.
func PDF(ctx context.Context, html []byte, paper, chromium string) ([]byte, error) {
	size, ok := papers[paper]
	if !ok {
		return nil, fmt.Errorf("%w: paper %q", ErrQuery, paper)
	}
	ctx, cancel := context.WithTimeout(ctx, PDFTimeout)
	defer cancel()
	bctx, stop, err := Browser(ctx, chromium)
	if err != nil {
		return nil, err
	}
	defer stop()
	if err := chromedp.Do(bctx, LoadHTML(html)); err != nil {
		return nil, fmt.Errorf("loading the report: %w", err)
	}
	pdf, err := chromedp.Run(bctx, chromedp.PrintToPDF(
		chromedp.PDFPaper(size), chromedp.PDFMargins(0.63, 0.55, 0.71, 0.55), chromedp.PDFPrintBackground(),
		chromedp.PDFHeaderTemplate(`<span></span>`),
		chromedp.PDFFooterTemplate(`<div style="font-size:7pt;width:100%;text-align:center;color:#555"><span class="pageNumber"></span> / <span class="totalPages"></span></div>`),
	))
	if err != nil {
		return nil, fmt.Errorf("printing the PDF: %w", err)
	}
	return pdf, nil
}

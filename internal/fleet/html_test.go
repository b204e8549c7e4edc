package fleet

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/twinroot/twinroot/internal/keys"
	"github.com/twinroot/twinroot/internal/release"
	"github.com/twinroot/twinroot/internal/report"
)

// browser starts headless Chromium, as a person's browser would open the
// page, with no network of its own.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium: %v (make deps installs it)", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1200, 1000))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	return ctx
}

// box is what the browser laid out of one element.
type box struct {
	Width      float64 `json:"width"`
	Text       string  `json:"text"`
	Background string  `json:"background"`
}

// TestHTMLInChromium opens the fleet report of a paused rollout in
// headless Chromium and reads what a person sees: the rollout paused at
// half, the bars of each release as wide as their devices, the colours of
// the outcomes, and the reasons as text.
func TestHTMLInChromium(t *testing.T) {
	f := newFixture(t)
	f.fleet20(t)
	f.send(t, 12, report.Failed, "2.0.0", 2, "1.0.0", `<script>document.title="owned"</script>`, 4*time.Hour)
	ctx := context.Background()
	now := f.start.Add(12 * time.Hour)
	w := &Watch{Summary: Options{Channel: "stable", Releases: f.store, Reports: f.store}, Store: f.store,
		Rule: Rule{MaxFailure: 0.05, MinOutcomes: 5}, Now: func() time.Time { return now },
		Stage: release.StageOptions{Signers: []*keys.PrivateKey{f.key}, TTL: 24 * time.Hour}}
	if v, _, err := w.Once(ctx); err != nil || !v.Paused {
		t.Fatalf("watch: %+v, %v", v, err)
	}
	s, err := Summarise(ctx, Options{Channel: "stable", Releases: f.store, Reports: f.store, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(t.TempDir(), "fleet.html")
	out, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(out, s); err != nil {
		t.Fatal(err)
	}
	out.Close()

	const measure = `(sel) => { const e = document.querySelector(sel); if (!e) return {width: -1, text: "", background: ""};
		return {width: e.getBoundingClientRect().width, text: e.innerText, background: getComputedStyle(e).backgroundColor}; }`
	boxes := map[string]*box{}
	sels := []string{
		"#paused", "#rollout-share", "#rollout .reached", "#rollout .bar",
		`#running [data-version="2.0.0"]`, "#running",
		`[data-release="2.0.0"] .bar`, `[data-release="2.0.0"] .committed`, `[data-release="2.0.0"] .silent`,
		`[data-release="2.0.0"] .rolled-back`, `[data-release="1.0.0"] .bar`, `[data-release="2.0.0"] .reasons`,
	}
	bctx := browser(t)
	if err := chromedp.Do(bctx, chromedp.Navigate("file://"+page)); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(bctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	scripts, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.scripts.length`))
	if err != nil {
		t.Fatal(err)
	}
	for _, sel := range sels {
		b, err := chromedp.Run(bctx, chromedp.Evaluate[box]("("+measure+")("+jsString(sel)+")"))
		if err != nil {
			t.Fatal(err)
		}
		boxes[sel] = &b
	}
	for _, sel := range sels {
		if boxes[sel].Width < 0 {
			t.Errorf("the page has no %s", sel)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	if title != "twinroot fleet: stable" || scripts != 0 {
		t.Errorf("title %q with %d scripts; want the page's own title and no script (a reason is text)", title, scripts)
	}
	if got := boxes["#paused"].Text; got != "paused" {
		t.Errorf("the pause badge says %q", got)
	}
	if got := boxes["#rollout-share"].Text; got != "50.0 %" {
		t.Errorf("the rollout's share reads %q, want 50.0 %%", got)
	}
	ratio := func(part, whole string, want float64) {
		t.Helper()
		got := boxes[part].Width / boxes[whole].Width
		if math.Abs(got-want) > 0.01 {
			t.Errorf("%s is %.3f of %s (%.1f of %.1f px), want %.3f", part, got, whole, boxes[part].Width, boxes[whole].Width, want)
		}
	}
	ratio("#rollout .reached", "#rollout .bar", 0.5)
	ratio(`#running [data-version="2.0.0"]`, "#running", 6.0/20)
	ratio(`[data-release="2.0.0"] .bar`, `[data-release="1.0.0"] .bar`, 13.0/20)
	ratio(`[data-release="2.0.0"] .committed`, `[data-release="2.0.0"] .bar`, 6.0/13)
	ratio(`[data-release="2.0.0"] .silent`, `[data-release="2.0.0"] .bar`, 1.0/13)
	ratio(`[data-release="2.0.0"] .rolled-back`, `[data-release="2.0.0"] .bar`, 2.0/13)
	for sel, want := range map[string]string{
		`[data-release="2.0.0"] .committed`:   "rgb(46, 125, 50)",
		`[data-release="2.0.0"] .silent`:      "rgb(106, 27, 154)",
		`[data-release="2.0.0"] .rolled-back`: "rgb(198, 40, 40)",
		"#rollout .reached":                   "rgb(158, 158, 158)", // grey: paused
	} {
		if got := boxes[sel].Background; got != want {
			t.Errorf("%s is coloured %s, want %s", sel, got, want)
		}
	}
	reasons := boxes[`[data-release="2.0.0"] .reasons`].Text
	for _, want := range []string{gateReason, report.NoHealthCheck, `<script>document.title="owned"</script>`} {
		if !strings.Contains(reasons, want) {
			t.Errorf("the reasons table does not show %q:\n%s", want, reasons)
		}
	}
}

// jsString quotes s for JavaScript.
func jsString(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `'`, `\'`) + "'"
}

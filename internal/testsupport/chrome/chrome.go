// Package chrome runs Debian's Chromium headless for browser tests and
// drives it through the DevTools protocol (chromedp), so that tests see what
// a person's browser does: Content-Security-Policy, SameSite and Secure
// cookies, redirects, history and form submission, none of which an HTTP
// client with a cookie jar enforces.
//
// [Start] launches one Chromium per test with a fresh profile and stops it
// when the test ends. A [Tab] is a page in it; tabs of one browser share
// cookies, and [Browser.NewProfile] makes a tab in a separate cookie jar (a
// second person's browser). Every wait is bounded by [Timeout] and fails the
// test with what the browser last showed and logged, never a bare timeout.
//
// The binary comes from scripts/tools.sh (Debian's chromium package). When
// it is missing the test is skipped, unless VMCP_E2E=1, which makes that a
// failure. With -short the test is skipped unless VMCP_E2E=1.
package chrome

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Timeout bounds every single wait of a test on the browser (a page to
// load, a URL to be reached, an element to appear). It is generous because
// the CI machine has two cores shared with builds.
const Timeout = 60 * time.Second

// Options configure [Start]. The zero value is a good default.
type Options struct {
	// IgnoreCertificateErrors accepts any TLS certificate, for a test's own
	// TLS listener with a certificate made in the test.
	IgnoreCertificateErrors bool
}

// Browser is a running Chromium.
type Browser struct {
	ctx    context.Context // the first tab's context: it owns the browser
	output *lockedBuffer
}

// Start runs Chromium until the test ends.
func Start(t testing.TB, opts *Options) *Browser {
	t.Helper()
	if testing.Short() && os.Getenv("VMCP_E2E") != "1" {
		t.Skip("starts Chromium: skipped with -short (set VMCP_E2E=1 to run it)")
	}
	if opts == nil {
		opts = &Options{}
	}
	bin := Binary()
	if bin == "" {
		require(t, "Chromium not found (looked for $VMCP_CHROMIUM, chromium, chromium-browser); run scripts/tools.sh")
	}
	output := &lockedBuffer{}
	flags := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		// Without these, Chromium keeps trying to reach Google's services
		// from a machine that has no network, and misbehaves.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints,AutofillServerCommunication"),
		// A loaded machine must not make the browser throttle a tab it
		// thinks is in the background.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-hang-monitor", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(1280, 800),
		chromedp.CombinedOutput(output),
	}
	if opts.IgnoreCertificateErrors {
		flags = append(flags, chromedp.IgnoreCertErrors)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), flags...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &Browser{ctx: ctx, output: output}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		if t.Failed() {
			t.Logf("chromium output:\n%s", Tail(output.String(), 8<<10))
		}
	})
	// The first Do starts the browser and opens its first tab.
	if err := first(ctx, cancel); err != nil {
		t.Fatalf("starting Chromium %s: %v\n%s", bin, err, Tail(output.String(), 4<<10))
	}
	return b
}

// Binary returns the path of the Chromium executable: $VMCP_CHROMIUM, or
// chromium or chromium-browser on PATH; empty if there is none.
func Binary() string {
	if p := os.Getenv("VMCP_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func require(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("VMCP_E2E") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg + " (set VMCP_E2E=1 to make this a failure)")
}

// first runs the first (empty) action on a chromedp context, which starts
// the browser or opens the tab. It must run on the context itself, not on
// a child with a deadline (the browser or tab would live only as long as
// that child), so the bound is kept here: past [Timeout] the context is
// canceled.
func first(ctx context.Context, cancel context.CancelFunc) error {
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(Timeout):
		cancel()
		<-done
		return fmt.Errorf("not ready after %v", Timeout)
	}
}

// NewTab opens a tab in the browser's default profile: it shares cookies
// with the browser's other default-profile tabs, as a second tab of one
// person's browser does.
func (b *Browser) NewTab(t testing.TB) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	return newTab(t, ctx, cancel, "tab")
}

// NewProfile opens a tab in a new, empty profile (its own cookies, cache
// and history): another person's browser.
func (b *Browser) NewProfile(t testing.TB) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	return newTab(t, ctx, cancel, "profile")
}

// newTab opens the tab of a chromedp context, for test t: failures are
// reported to t and the tab is closed when t ends.
func newTab(t testing.TB, ctx context.Context, cancel context.CancelFunc, what string) *Tab {
	t.Helper()
	tab := &Tab{t: t, ctx: ctx}
	t.Cleanup(cancel)
	if err := first(ctx, cancel); err != nil {
		t.Fatalf("opening a %s: %v", what, err)
	}
	tab.watch()
	return tab
}

// Tab is one page of a browser. Its methods fail the test it was opened
// for on error, so they must be called from that test's goroutine.
type Tab struct {
	t   testing.TB
	ctx context.Context

	mu        sync.Mutex // guards the fields below
	logs      []string   // console, CSP and network failures, in order
	documents []string   // URLs of the pages requested, redirects included
}

// watch records what the page logs (a blocked form submission is logged as
// a CSP violation) and failed loads, for failure messages and [Tab.Logs].
func (tab *Tab) watch() {
	err := chromedp.Listen(tab.ctx, func(ev any) {
		var line string
		switch ev := ev.(type) {
		case *cdplog.EventEntryAdded:
			line = fmt.Sprintf("%s %s: %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text)
		case *runtime.EventConsoleAPICalled:
			line = fmt.Sprintf("console.%s", ev.Type)
			for _, a := range ev.Args {
				line += " " + string(a.Value)
			}
		case *network.EventLoadingFailed:
			line = fmt.Sprintf("load failed (%s): %s %s", ev.Type, ev.ErrorText, ev.BlockedReason)
		case *network.EventRequestWillBeSent:
			if ev.Type == network.ResourceTypeDocument {
				tab.mu.Lock()
				tab.documents = append(tab.documents, ev.Request.URL)
				tab.mu.Unlock()
			}
			return
		default:
			return
		}
		tab.mu.Lock()
		tab.logs = append(tab.logs, line)
		tab.mu.Unlock()
	})
	if err != nil {
		tab.t.Fatalf("watching the tab: %v", err)
	}
}

// Logs returns what the page logged so far: console messages, CSP
// violations and failed loads.
func (tab *Tab) Logs() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]string(nil), tab.logs...)
}

// Requested returns the first page address the tab requested (redirects
// included) that starts with prefix, and fails the test if there is none.
func (tab *Tab) Requested(prefix string) string {
	tab.t.Helper()
	tab.mu.Lock()
	defer tab.mu.Unlock()
	for _, u := range tab.documents {
		if strings.HasPrefix(u, prefix) {
			return u
		}
	}
	tab.t.Fatalf("the tab requested no page starting with %s", Redact(prefix))
	return ""
}

// Context returns the tab's chromedp context, for actions this package does
// not wrap. Bound each use with a timeout.
func (tab *Tab) Context() context.Context { return tab.ctx }

// do runs actions with the [Timeout] bound and fails the test, saying what
// the browser showed, if they fail.
func (tab *Tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tab.t.Fatalf("%s: %v\n%s", what, err, tab.state())
	}
}

// state describes the page for a failure message: its URL, the start of
// its text and what it logged.
func (tab *Tab) state() string {
	ctx, cancel := context.WithTimeout(tab.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	text, _ := chromedp.Run(ctx, chromedp.EvaluateAsDevTools[string](`document.body ? document.body.innerText : ""`))
	return fmt.Sprintf("page %s\ntext: %s\nlog:\n  %s", loc, Tail(text, 1500), strings.Join(tab.Logs(), "\n  "))
}

// Navigate loads u and waits for the page (whatever it is, after
// redirects) to load.
func (tab *Tab) Navigate(u string) {
	tab.t.Helper()
	tab.do("navigating to "+Redact(u), chromedp.Navigate(u))
}

// Open loads u like [Tab.Navigate] and returns the response of the page
// it ends on (status and headers).
func (tab *Tab) Open(u string) *network.Response {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
	if err != nil {
		tab.t.Fatalf("opening %s: %v\n%s", Redact(u), err, tab.state())
	}
	return resp
}

// Click clicks the element sel (CSS) selects, once it is visible. It does
// not wait for what the click causes: follow it with [Tab.WaitURL] or
// [Tab.WaitVisible].
func (tab *Tab) Click(sel string) {
	tab.t.Helper()
	tab.do("clicking "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// Type types text into the field sel (CSS) selects, after clearing it.
func (tab *Tab) Type(sel, text string) {
	tab.t.Helper()
	tab.do("typing into "+sel, chromedp.Clear(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), text))
}

// Press sends key events to the focused element, as typing does: "\t" is
// the Tab key (see chromedp's kb package for others).
func (tab *Tab) Press(keys string) {
	tab.t.Helper()
	tab.do("pressing keys", chromedp.KeyEvent(keys))
}

// Resize sets the viewport to v.
func (tab *Tab) Resize(v Viewport) {
	tab.t.Helper()
	opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(v.Scale)}
	if v.Mobile {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulatePortrait)
	}
	tab.do("resizing to "+v.Name, chromedp.EmulateViewport(v.Width, v.Height, opts...))
}

// Back goes back one step in the tab's history and waits for the page to
// load.
func (tab *Tab) Back() {
	tab.t.Helper()
	tab.do("going back", chromedp.NavigateBack())
}

// WaitVisible waits until the element sel (CSS) selects is visible.
func (tab *Tab) WaitVisible(sel string) {
	tab.t.Helper()
	tab.do("waiting for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
}

// Text returns the visible text of the element sel (CSS) selects, once it
// is visible.
func (tab *Tab) Text(sel string) string {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		tab.t.Fatalf("reading the text of %s: %v\n%s", sel, err, tab.state())
	}
	return s
}

// Eval evaluates a JavaScript expression as the DevTools console does (the
// page's CSP does not apply) and returns its value.
func Eval[T any](tab *Tab, expr string) T {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.EvaluateAsDevTools[T](expr))
	if err != nil {
		tab.t.Fatalf("evaluating %s: %v\n%s", expr, err, tab.state())
	}
	return v
}

// URL returns the address the tab shows.
func (tab *Tab) URL() string {
	tab.t.Helper()
	return Eval[string](tab, `document.location.href`)
}

// WaitURL waits until the tab shows a loaded page whose address starts with
// prefix, and returns that address. The failure message says where the
// browser stopped and what it logged (a CSP violation, for example).
func (tab *Tab) WaitURL(prefix string) string {
	tab.t.Helper()
	return tab.WaitURLFunc("an address starting with "+Redact(prefix), func(u string) bool { return strings.HasPrefix(u, prefix) })
}

// WaitURLFunc waits until the tab shows a loaded page whose address ok
// accepts, and returns that address; what describes it for the failure
// message.
func (tab *Tab) WaitURLFunc(what string, ok func(string) bool) string {
	tab.t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		ctx, cancel := context.WithTimeout(tab.ctx, 5*time.Second)
		// Read the address and the load state together, so that a page
		// still loading is not taken for the one expected.
		v, err := chromedp.Run(ctx, chromedp.EvaluateAsDevTools[[]string](`[document.location.href, document.readyState]`))
		cancel()
		if err == nil && len(v) == 2 && v[1] == "complete" && ok(v[0]) {
			return v[0]
		}
		if time.Now().After(deadline) {
			tab.t.Fatalf("waited %v for %s\n%s", Timeout, what, tab.state())
		}
		select {
		case <-tab.ctx.Done():
			tab.t.Fatalf("waiting for %s: %v", what, tab.ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Cookies returns the cookies the browser would send to u.
func (tab *Tab) Cookies(u string) []*network.Cookie {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
	defer cancel()
	var cookies []*network.Cookie
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		res, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
		cookies = res.Cookies
		return err
	}))
	if err != nil {
		tab.t.Fatalf("reading cookies: %v", err)
	}
	return cookies
}

// ClearCookies deletes every cookie of the tab's profile.
func (tab *Tab) ClearCookies() {
	tab.t.Helper()
	tab.do("clearing cookies", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, network.ClearBrowserCookies, cdp.Empty{})
		return err
	}))
}

// Viewport is a window size screenshots are taken at.
type Viewport struct {
	Name          string
	Width, Height int64
	Scale         float64
	Mobile        bool
}

// Viewports are the sizes every page state is photographed at: a laptop
// and a phone.
var Viewports = []Viewport{
	{Name: "desktop", Width: 1280, Height: 800, Scale: 1},
	{Name: "phone", Width: 390, Height: 844, Scale: 2, Mobile: true},
}

// Screenshot saves full-page PNGs of what the tab shows, one per
// [Viewports] entry, as <dir>/<name>-<viewport>.png, where dir is
// [ScreenshotDir]. It leaves the tab at the desktop size.
func (tab *Tab) Screenshot(name string) {
	tab.t.Helper()
	dir := ScreenshotDir(tab.t)
	for _, v := range Viewports {
		tab.Resize(v)
		ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			tab.t.Fatalf("screenshot %s: %v", name, err)
		}
		file := filepath.Join(dir, safeName(name)+"-"+v.Name+".png")
		if err := os.WriteFile(file, png, 0o644); err != nil {
			tab.t.Fatal(err)
		}
	}
	tab.Resize(Viewports[0])
}

var (
	screenshotOnce sync.Once
	screenshotDir  string
	screenshotErr  error
)

// ScreenshotDir is where screenshots are saved: $VMCP_SCREENSHOTS (created
// if needed), else one temporary directory per test process, named in the
// log once.
func ScreenshotDir(t testing.TB) string {
	t.Helper()
	screenshotOnce.Do(func() {
		if d := os.Getenv("VMCP_SCREENSHOTS"); d != "" {
			screenshotDir, screenshotErr = d, os.MkdirAll(d, 0o755)
			return
		}
		screenshotDir, screenshotErr = os.MkdirTemp("", "vmcp-screenshots-")
		if screenshotErr == nil {
			fmt.Fprintf(os.Stderr, "chrome: screenshots in %s (set VMCP_SCREENSHOTS to choose)\n", screenshotDir)
		}
	})
	if screenshotErr != nil {
		t.Fatalf("screenshot directory: %v", screenshotErr)
	}
	return screenshotDir
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func safeName(s string) string { return unsafeChars.ReplaceAllString(s, "_") }

// Redact shortens a URL for a log line and hides its query, which may hold
// codes and states.
func Redact(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}

// Tail returns the last n bytes of s, marked as cut if it was longer.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// lockedBuffer collects the browser's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() < 1<<20 {
		b.b.Write(p)
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

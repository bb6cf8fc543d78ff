// Package firefox runs Debian's Firefox ESR headless for browser tests and
// drives it over WebDriver BiDi with puppeteer-core, through a small Node
// driver (test/js/firefox.mjs) that takes one JSON command a line. It is the
// second engine beside package chrome: Firefox differs from Chromium in how
// it applies Content-Security-Policy across redirects, SameSite defaults,
// cookies on loopback and navigation, which is what these tests are for.
//
// [Start] launches one Firefox per test with a fresh profile and stops it
// when the test ends. A [Tab] is a page in it; tabs of one browser share
// cookies, and [Browser.NewProfile] makes a tab in a separate cookie jar (a
// BiDi user context: a second person's browser). Every wait is bounded by
// [Timeout] and fails the test with what the browser last showed and logged.
// When a tab's test ends, any Content-Security-Policy violation the tab saw
// (reported by Firefox as a page error, or by a securitypolicyviolation
// event) fails the test.
//
// The binary comes from scripts/tools.sh (Debian's firefox-esr package;
// puppeteer-core from npm, which never downloads a browser). When it is
// missing the test is skipped, unless VMCP_E2E=1, which makes that a
// failure. With -short the test is skipped unless VMCP_E2E=1.
package firefox

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/testsupport/chrome"
	"github.com/vmcp-dev/vmcp/internal/testsupport/hydra"
	"github.com/vmcp-dev/vmcp/internal/testsupport/logbuf"
)

// Timeout bounds every single wait of a test on the browser, as
// [chrome.Timeout] does.
const Timeout = chrome.Timeout

// Options configure [Start]. The zero value is a good default.
type Options struct {
	// IgnoreCertificateErrors accepts any TLS certificate, for a test's own
	// TLS listener with a certificate made in the test.
	IgnoreCertificateErrors bool
}

// Browser is a running Firefox and the Node driver that controls it.
type Browser struct {
	t       testing.TB
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	answers chan answer // the driver's answers, in order; closed when it ends
	stderr  *logbuf.Buffer
	Version string // as Firefox reports it, e.g. "firefox/140.6.0"

	mu     sync.Mutex // serialises commands
	nextID int
	dead   error // set once a command timed out or the driver ended
}

type answer struct {
	ID      int             `json:"id"`
	Value   json.RawMessage `json:"value"`
	Error   string          `json:"error"`
	Ready   *bool           `json:"ready"`
	Version string          `json:"version"`
}

// Start runs Firefox until the test ends.
func Start(t testing.TB, opts *Options) *Browser {
	t.Helper()
	if testing.Short() && os.Getenv("VMCP_E2E") != "1" {
		t.Skip("starts Firefox: skipped with -short (set VMCP_E2E=1 to run it)")
	}
	if opts == nil {
		opts = &Options{}
	}
	bin := Binary()
	if bin == "" {
		hydra.Require(t, "Firefox not found (looked for $VMCP_FIREFOX, firefox-esr, firefox); run scripts/tools.sh")
	}
	if _, err := os.Stat(filepath.Join(hydra.ToolsDir(), "npm", "node_modules", "puppeteer-core", "package.json")); err != nil {
		hydra.Require(t, "puppeteer-core not found (%v); run scripts/tools.sh", err)
	}
	profile := t.TempDir()
	args := []string{"--firefox", bin, "--profile", profile, "--timeout", fmt.Sprint(Timeout.Milliseconds())}
	if opts.IgnoreCertificateErrors {
		args = append(args, "--accept-insecure-certs")
	}
	cmd := hydra.NodeCommand(context.Background(), t, "firefox.mjs", args...)
	// Its own process group, so that Firefox and its content processes go
	// with the driver if it has to be killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	b := &Browser{t: t, cmd: cmd, answers: make(chan answer, 1), stderr: &logbuf.Buffer{}}
	cmd.Stderr = b.stderr
	var err error
	if b.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the Firefox driver: %v", err)
	}
	read, exited, over := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(read)
		defer close(b.answers)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var a answer
			if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
				fmt.Fprintf(b.stderr, "driver printed a non-JSON line: %q\n", chrome.Tail(sc.Text(), 200))
				continue
			}
			select {
			case b.answers <- a:
			case <-over: // the test is over: nobody reads answers any more
			}
		}
	}()
	go func() {
		<-read // Wait closes stdout: read it to the end first
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		// Closing stdin asks the driver to close Firefox; past the bound,
		// the process group is killed.
		close(over)
		_ = b.stdin.Close()
		select {
		case <-exited:
		case <-time.After(Timeout / 2):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("firefox driver output:\n%s", chrome.Tail(b.stderr.String(), 8<<10))
		}
	})
	select {
	case a, ok := <-b.answers:
		if !ok || a.Ready == nil || !*a.Ready {
			t.Fatalf("starting Firefox %s: %s\n%s", bin, a.Error, chrome.Tail(b.stderr.String(), 4<<10))
		}
		b.Version = a.Version
	case <-time.After(3 * Timeout):
		t.Fatalf("Firefox %s not ready after %v\n%s", bin, 3*Timeout, chrome.Tail(b.stderr.String(), 4<<10))
	}
	return b
}

// Binary returns the path of the Firefox executable: $VMCP_FIREFOX, or
// firefox-esr or firefox on PATH; empty if there is none.
func Binary() string {
	if p := os.Getenv("VMCP_FIREFOX"); p != "" {
		return p
	}
	for _, name := range []string{"firefox-esr", "firefox"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// call sends one command and returns its value. Every command is bounded:
// the driver's own waits end at [Timeout], and past that with some slack
// the browser is taken for hung. Failures are returned, not reported.
func (b *Browser) call(op string, args map[string]any, value any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead != nil {
		return b.dead
	}
	b.nextID++
	cmd := map[string]any{"id": b.nextID, "op": op}
	for k, v := range args {
		cmd[k] = v
	}
	line, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	if _, err := b.stdin.Write(append(line, '\n')); err != nil {
		b.dead = fmt.Errorf("the Firefox driver is gone: %w", err)
		return b.dead
	}
	bound := time.After(Timeout + 30*time.Second)
	for {
		select {
		case a, ok := <-b.answers:
			if !ok {
				b.dead = fmt.Errorf("the Firefox driver ended")
				return b.dead
			}
			if a.ID != b.nextID {
				continue // the late answer of a command given up on
			}
			if a.Error != "" {
				return fmt.Errorf("%s", a.Error)
			}
			if value != nil && len(a.Value) > 0 {
				return json.Unmarshal(a.Value, value)
			}
			return nil
		case <-bound:
			b.dead = fmt.Errorf("%s: no answer from Firefox within %v", op, Timeout+30*time.Second)
			return b.dead
		}
	}
}

// gone reports whether the driver stopped answering.
func (b *Browser) gone() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dead != nil
}

// NewTab opens a tab in the browser's default profile: it shares cookies
// with the browser's other default-profile tabs.
func (b *Browser) NewTab(t testing.TB) *Tab { return b.newTab(t, "default") }

// NewProfile opens a tab in a new, empty profile (its own cookies, cache
// and history): another person's browser.
func (b *Browser) NewProfile(t testing.TB) *Tab { return b.newTab(t, "new") }

func (b *Browser) newTab(t testing.TB, context string) *Tab {
	t.Helper()
	var id string
	if err := b.call("newPage", map[string]any{"context": context}, &id); err != nil {
		t.Fatalf("opening a Firefox tab: %v\n%s", err, chrome.Tail(b.stderr.String(), 4<<10))
	}
	tab := &Tab{t: t, b: b, id: id}
	t.Cleanup(func() {
		if v := tab.CSPViolations(); len(v) > 0 {
			t.Errorf("Firefox reported Content-Security-Policy violations:\n  %s", strings.Join(v, "\n  "))
		}
		_ = b.call("closePage", map[string]any{"page": id}, nil)
	})
	return tab
}

// Tab is one page of a browser. Its methods fail the test it was opened
// for on error, so they must be called from that test's goroutine.
type Tab struct {
	t  testing.TB
	b  *Browser
	id string
}

// do runs op on the tab and fails the test, saying what the browser
// showed, if it fails.
func (tab *Tab) do(what, op string, args map[string]any, value any) {
	tab.t.Helper()
	if args == nil {
		args = map[string]any{}
	}
	args["page"] = tab.id
	if err := tab.b.call(op, args, value); err != nil {
		tab.t.Fatalf("%s: %v\n%s", what, err, tab.state())
	}
}

// state describes the page for a failure message: its URL, the start of
// its text and what it logged.
func (tab *Tab) state() string {
	var loc []string
	_ = tab.b.call("location", map[string]any{"page": tab.id}, &loc)
	var text string
	_ = tab.b.call("eval", map[string]any{"page": tab.id, "expr": `document.body ? document.body.innerText : ""`}, &text)
	if len(loc) == 2 {
		loc[0] = chrome.Redact(loc[0]) // its query may hold a code
	}
	return fmt.Sprintf("page %v\ntext: %s\nlog:\n  %s", loc, chrome.Tail(text, 1500), strings.Join(tab.Logs(), "\n  "))
}

// Logs returns what the page logged so far: console errors and warnings,
// page errors (CSP violations among them) and failed loads.
func (tab *Tab) Logs() []string {
	var logs []string
	_ = tab.b.call("logs", map[string]any{"page": tab.id}, &logs)
	return logs
}

// CSPViolations returns the Content-Security-Policy violations the tab saw
// so far, each with the page (without its query) it happened on.
func (tab *Tab) CSPViolations() []string {
	tab.t.Helper()
	var v []string
	if err := tab.b.call("csp", map[string]any{"page": tab.id}, &v); err != nil {
		tab.t.Errorf("reading Firefox's CSP violations: %v", err)
	}
	return v
}

// Requested returns the first page address the tab requested (redirects
// included) that starts with prefix, and fails the test if there is none.
func (tab *Tab) Requested(prefix string) string {
	tab.t.Helper()
	var docs []string
	tab.do("reading the requested pages", "documents", nil, &docs)
	for _, u := range docs {
		if strings.HasPrefix(u, prefix) {
			return u
		}
	}
	tab.t.Fatalf("the tab requested no page starting with %s", chrome.Redact(prefix))
	return ""
}

// Navigate loads u and waits for the page (whatever it is, after
// redirects) to load.
func (tab *Tab) Navigate(u string) {
	tab.t.Helper()
	tab.do("navigating to "+chrome.Redact(u), "goto", map[string]any{"url": u}, nil)
}

// Click clicks the element sel (CSS) selects, once it is visible. It does
// not wait for what the click causes: follow it with [Tab.WaitURL] or
// [Tab.WaitVisible].
func (tab *Tab) Click(sel string) {
	tab.t.Helper()
	tab.do("clicking "+sel, "click", map[string]any{"sel": sel}, nil)
}

// Type types text into the field sel (CSS) selects, after clearing it.
func (tab *Tab) Type(sel, text string) {
	tab.t.Helper()
	tab.do("typing into "+sel, "type", map[string]any{"sel": sel, "text": text}, nil)
}

// Back goes back one step in the tab's history and waits for the page to
// load.
func (tab *Tab) Back() {
	tab.t.Helper()
	tab.do("going back", "back", nil, nil)
}

// WaitVisible waits until the element sel (CSS) selects is visible.
func (tab *Tab) WaitVisible(sel string) {
	tab.t.Helper()
	tab.do("waiting for "+sel, "waitVisible", map[string]any{"sel": sel}, nil)
}

// Text returns the visible text of the element sel (CSS) selects, once it
// is visible.
func (tab *Tab) Text(sel string) string {
	tab.t.Helper()
	var s string
	tab.do("reading the text of "+sel, "text", map[string]any{"sel": sel}, &s)
	return s
}

// WaitURL waits until the tab shows a loaded page whose address starts with
// prefix, and returns that address.
func (tab *Tab) WaitURL(prefix string) string {
	tab.t.Helper()
	return tab.WaitURLFunc("an address starting with "+chrome.Redact(prefix), func(u string) bool { return strings.HasPrefix(u, prefix) })
}

// WaitURLFunc waits until the tab shows a loaded page whose address ok
// accepts, and returns that address; what describes it for the failure
// message.
func (tab *Tab) WaitURLFunc(what string, ok func(string) bool) string {
	tab.t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		var v []string
		err := tab.b.call("location", map[string]any{"page": tab.id}, &v)
		if err == nil && len(v) == 2 && v[1] == "complete" && ok(v[0]) {
			return v[0]
		}
		if tab.b.gone() || time.Now().After(deadline) {
			tab.t.Fatalf("waited %v for %s (%v)\n%s", Timeout, what, err, tab.state())
		}
		time.Sleep(50 * time.Millisecond) // a poll interval, not a synchronisation
	}
}

// Cookie is a cookie as the browser keeps it.
type Cookie struct {
	Name, Path       string
	HTTPOnly, Secure bool
	SameSite         string // Strict, Lax, None, or empty when unset
}

// Cookies returns the cookies the browser would send to u.
func (tab *Tab) Cookies(u string) []Cookie {
	tab.t.Helper()
	var raw []struct {
		Name     string `json:"name"`
		Path     string `json:"path"`
		HTTPOnly bool   `json:"httpOnly"`
		Secure   bool   `json:"secure"`
		SameSite string `json:"sameSite"`
	}
	tab.do("reading cookies", "cookies", map[string]any{"url": u}, &raw)
	out := make([]Cookie, len(raw))
	for i, c := range raw {
		out[i] = Cookie{Name: c.Name, Path: c.Path, HTTPOnly: c.HTTPOnly, Secure: c.Secure, SameSite: c.SameSite}
	}
	return out
}

// Screenshot saves full-page PNGs of what the tab shows, one per
// [chrome.Viewports] entry, as <dir>/firefox-<name>-<viewport>.png in
// [chrome.ScreenshotDir]. It leaves the tab at the desktop size.
func (tab *Tab) Screenshot(name string) {
	tab.t.Helper()
	dir := chrome.ScreenshotDir(tab.t)
	for _, v := range chrome.Viewports {
		tab.do("resizing to "+v.Name, "viewport", map[string]any{"width": v.Width, "height": v.Height, "scale": v.Scale}, nil)
		file := filepath.Join(dir, "firefox-"+safeName(name)+"-"+v.Name+".png")
		tab.do("screenshot "+name, "screenshot", map[string]any{"path": file}, nil)
	}
	d := chrome.Viewports[0]
	tab.do("resizing to "+d.Name, "viewport", map[string]any{"width": d.Width, "height": d.Height, "scale": d.Scale}, nil)
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

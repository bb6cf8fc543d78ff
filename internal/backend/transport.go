package backend

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/backendauth"
	"github.com/vmcp-dev/vmcp/internal/identity"
)

// transport returns a fresh MCP transport for the backend. For stdio it
// prepares (but does not start) the child process.
func (b *Backend) transport(c *Conn) (mcp.Transport, error) {
	switch b.spec.Transport {
	case StreamableHTTP:
		hc := b.httpClient(c)
		c.raw = &rawConn{url: b.spec.URL, client: hc}
		// The SDK's requests go through the guard (guard.go), which keeps
		// the event streams, so the SDK never resumes one itself
		// (MaxRetries -1); an event it reads is at most the result size
		// limit plus the guard's framing.
		sdk := &http.Client{Transport: &guard{next: hc.Transport, conn: c}, CheckRedirect: hc.CheckRedirect, Timeout: hc.Timeout}
		return &mcp.StreamableClientTransport{
			Endpoint: b.spec.URL, HTTPClient: sdk, MaxRetries: -1,
			MaxEventSize: b.set.opts.MaxResultBytes + 1024,
		}, nil
	case SSE:
		return &mcp.SSEClientTransport{Endpoint: b.spec.URL, HTTPClient: b.httpClient(c), MaxEventSize: b.set.opts.MaxResultBytes}, nil
	case Stdio:
		cmd := exec.Command(b.spec.Command, b.spec.Args...)
		cmd.Dir = b.spec.Cwd
		cmd.Env = b.childEnv()
		keys := make([]string, 0, len(b.spec.Env))
		for k := range b.spec.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			cmd.Env = append(cmd.Env, k+"="+b.spec.Env[k])
		}
		cmd.Stderr = &lineLogger{logger: b.logger}
		isolate(cmd)
		return &processTransport{cmd: cmd, terminate: 2 * time.Second, maxLine: b.set.opts.MaxResultBytes + 1024}, nil
	}
	return nil, fmt.Errorf("unknown transport %q", b.spec.Transport)
}

// childEnv is vmcp's environment without its secrets, plus the backend's
// own env settings.
func (b *Backend) childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "VMCP_SECRET") || slices.Contains(b.set.opts.HideEnv, name) {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// httpClient is the client of one connection: the shared pool, with the
// backend's credentials added to every request, nothing sent to another
// origin, and redirects followed only within the origin, keeping the
// method (backendauth.CheckRedirect).
func (b *Backend) httpClient(c *Conn) *http.Client {
	base := b.set.opts.HTTPClient
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	if _, none := b.auth().(backendauth.None); !none {
		rt = &credentialTransport{base: rt, conn: c}
	}
	rt = &backendauth.OriginCheck{Next: rt, Origin: b.origin}
	return &http.Client{Transport: rt, CheckRedirect: backendauth.CheckRedirect, Timeout: base.Timeout}
}

// appliedKey is the context key of the credentials do got for a call.
type appliedKey struct{}

// applied is what Apply set for id.
type applied struct {
	id     *identity.Identity
	header http.Header
}

// credentialTransport adds the backend's credentials for the caller of
// each request (the identity in its context, else the connection's user),
// and notes a 401.
type credentialTransport struct {
	base http.RoundTripper
	conn *Conn
}

func (t *credentialTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c := t.conn
	id := identity.From(r.Context())
	if id.IsAnonymous() {
		id = c.user
	}
	if c.user == nil {
		id = nil // the shared connection never carries a caller's credentials
	}
	r = r.Clone(r.Context())
	if a, ok := r.Context().Value(appliedKey{}).(*applied); ok && a.id == id {
		for k, v := range a.header { // the call's credentials, got by do
			r.Header[k] = v
		}
	} else if err := c.backend.auth().Apply(r.Context(), id, r.Header); err != nil {
		return nil, &backendauth.Error{Backend: c.backend.spec.Name, Err: err}
	}
	resp, err := t.base.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		c.unauthorized.Store(true)
	}
	return resp, err
}

// lineLogger writes a child's stderr to the log, a record per line.
type lineLogger struct {
	logger *slog.Logger
	mu     sync.Mutex // guards buf
	buf    []byte
}

const maxLogLine = 4096

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			if len(l.buf) > maxLogLine {
				l.emit(l.buf)
				l.buf = l.buf[:0]
			}
			return len(p), nil
		}
		l.emit(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
}

func (l *lineLogger) emit(line []byte) {
	line = bytes.TrimRight(line, "\r")
	if len(line) > maxLogLine {
		line = line[:maxLogLine]
	}
	if len(line) > 0 {
		l.logger.Info("stderr", "line", string(line))
	}
}

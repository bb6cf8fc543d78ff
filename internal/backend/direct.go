package backend

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Direct round trips.
//
// net/http's Transport hands each request to a connection's write goroutine
// and takes each response from its read goroutine: two goroutine switches
// per round trip, which on a small machine are a large part of a loopback
// round trip (42 µs against 73 µs for a 200-byte POST on the benchmark VM,
// docs/benchmarks.md). Raw calls to plain-HTTP backends therefore make their
// round trip on the caller's goroutine, over a pooled connection, with
// net/http's own request writer and response parser (Request.Write,
// http.ReadResponse). Everything else — the SDK's requests, TLS, proxies,
// platforms where a pooled connection's liveness cannot be checked — keeps
// the Transport.

const (
	directMaxIdlePerHost = 256
	directIdleTimeout    = 90 * time.Second
	// directMaxBody: larger requests go through the Transport, which reads
	// an answer the backend sends before it has read the whole request (a
	// direct round trip writes the request first; a small one fits in the
	// socket's buffer whatever the backend does).
	directMaxBody = 64 << 10
	// directMaxHead bounds a response's status line and header, as the
	// Transport's default MaxResponseHeaderBytes does.
	directMaxHead = 10 << 20
)

// aLongTimeAgo is a deadline in the past: it interrupts blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// directPool keeps idle connections to backends, by host:port.
type directPool struct {
	transport *http.Transport // whose dialer and proxy settings apply; it also takes what is not made directly
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)

	mu      sync.Mutex // guards the fields below
	idle    map[string][]*directConn
	closed  bool
	pruning *time.Timer // closes connections idle too long; nil when none are idle
}

// directConn is one connection of a directPool.
type directConn struct {
	conn  net.Conn
	head  headLimit // what br may still read of a response's head; -1: no limit (the body)
	br    *bufio.Reader
	bw    *bufio.Writer
	key   string
	since time.Time // when it went idle
}

// headLimit reads from a connection, at most n bytes while n >= 0.
type headLimit struct {
	conn net.Conn
	n    int64
}

var errHeadTooLarge = errors.New("the backend's response header is too large")

func (h *headLimit) Read(p []byte) (int, error) {
	if h.n < 0 {
		return h.conn.Read(p)
	}
	if h.n == 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > h.n {
		p = p[:h.n]
	}
	n, err := h.conn.Read(p)
	h.n -= int64(n)
	return n, err
}

// newDirectPool returns a pool that dials as hc's Transport does, or nil
// if hc's requests cannot be made directly (not an *http.Transport, or no
// way to check an idle connection here).
func newDirectPool(hc *http.Client) *directPool {
	t, ok := hc.Transport.(*http.Transport)
	if hc.Transport == nil {
		t, ok = http.DefaultTransport.(*http.Transport), true
	}
	if !ok || !canCheckIdle {
		return nil
	}
	p := &directPool{transport: t, dial: t.DialContext, idle: map[string][]*directConn{}}
	if p.dial == nil {
		p.dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	return p
}

// serves reports whether requests to u can be made directly: plain HTTP,
// not through a proxy.
func (p *directPool) serves(u *url.URL) bool {
	if p == nil || u.Scheme != "http" || u.User != nil {
		return false
	}
	if p.transport.Proxy != nil {
		proxy, err := p.transport.Proxy(&http.Request{Method: http.MethodPost, URL: u})
		if err != nil || proxy != nil {
			return false
		}
	}
	return true
}

// RoundTrip sends req and reads the response's head on the calling
// goroutine. The body must be read to its end and closed for the
// connection to be used again. The client's own URL was checked with
// serves when the client was made; a redirect elsewhere, and a large body,
// go through the Transport.
func (p *directPool) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Response != nil && !p.serves(req.URL) || // a redirect
		req.ContentLength < 0 || req.ContentLength > directMaxBody {
		return p.transport.RoundTrip(req)
	}
	ctx := req.Context()
	dc, err := p.get(ctx, hostPort(req.URL))
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	// Cancellation and the deadline interrupt the socket's I/O; the error
	// is then the context's, as from the Transport.
	_ = dc.conn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { _ = dc.conn.SetDeadline(aLongTimeAgo) })
	err = req.Write(dc.bw)
	if err == nil {
		err = dc.bw.Flush()
	}
	var resp *http.Response
	if err == nil {
		dc.head.n = directMaxHead
		resp, err = http.ReadResponse(dc.br, req)
		// Informational answers come before the real one (as the
		// Transport does, except 101, which ends HTTP on the connection).
		for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			resp, err = http.ReadResponse(dc.br, req)
		}
		dc.head.n = -1
	}
	if err != nil {
		stop()
		_ = dc.conn.Close()
		return nil, ctxErr(ctx, err)
	}
	b := &directBody{body: resp.Body, ctx: ctx, dc: dc, pool: p, stop: stop, reusable: !resp.Close}
	b.eof = resp.Body == http.NoBody // nothing to read: the connection is clean
	resp.Body = b
	return resp, nil
}

// ctxErr is the context's error if it is done (it caused err), else err.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// get returns an idle connection to key that is still open, or a new one.
// The liveness check (a system call) is made outside the lock.
func (p *directPool) get(ctx context.Context, key string) (*directConn, error) {
	now := time.Now()
	for dc := p.pop(key); dc != nil; dc = p.pop(key) {
		if now.Sub(dc.since) < directIdleTimeout && idleAlive(dc.conn) {
			return dc, nil
		}
		_ = dc.conn.Close()
	}
	conn, err := p.dial(ctx, "tcp", key)
	if err != nil {
		return nil, err
	}
	dc := &directConn{conn: conn, head: headLimit{conn: conn, n: -1}, bw: bufio.NewWriter(conn), key: key}
	dc.br = bufio.NewReader(&dc.head)
	return dc, nil
}

// pop takes the most recently used idle connection to key, or nil.
func (p *directPool) pop(key string) *directConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	conns := p.idle[key]
	if len(conns) == 0 {
		return nil
	}
	dc := conns[len(conns)-1]
	p.idle[key] = conns[:len(conns)-1]
	return dc
}

// put keeps dc for the next request to its host, closing the oldest idle
// connections over the limit. A connection with bytes left to read is
// not clean, and is closed.
func (p *directPool) put(dc *directConn) {
	if dc.br.Buffered() > 0 {
		_ = dc.conn.Close()
		return
	}
	dc.since = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = dc.conn.Close()
		return
	}
	conns := append(p.idle[dc.key], dc)
	if drop := len(conns) - directMaxIdlePerHost; drop > 0 {
		for _, old := range conns[:drop] {
			_ = old.conn.Close()
		}
		conns = append(conns[:0], conns[drop:]...)
	}
	p.idle[dc.key] = conns
	if p.pruning == nil {
		p.pruning = time.AfterFunc(directIdleTimeout, p.prune)
	}
}

// prune closes the connections idle for directIdleTimeout, and runs again
// when the oldest of the others will be.
func (p *directPool) prune() {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	var oldest time.Time
	for key, conns := range p.idle {
		keep := conns[:0]
		for _, dc := range conns {
			if now.Sub(dc.since) >= directIdleTimeout {
				_ = dc.conn.Close()
				continue
			}
			keep = append(keep, dc)
			if oldest.IsZero() || dc.since.Before(oldest) {
				oldest = dc.since
			}
		}
		if len(keep) == 0 {
			delete(p.idle, key)
		} else {
			p.idle[key] = keep
		}
	}
	p.pruning = nil
	if !oldest.IsZero() && !p.closed {
		p.pruning = time.AfterFunc(oldest.Add(directIdleTimeout).Sub(now), p.prune)
	}
}

// close closes every idle connection; connections in use are closed when
// their response ends.
func (p *directPool) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.pruning != nil {
		p.pruning.Stop()
		p.pruning = nil
	}
	for key, conns := range p.idle {
		for _, dc := range conns {
			_ = dc.conn.Close()
		}
		delete(p.idle, key)
	}
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// directBody is a direct response's body: read to its end and closed, it
// returns its connection to the pool; closed earlier, it closes it. Close
// may be called while a Read is under way (to end a stream early).
type directBody struct {
	body     io.ReadCloser
	ctx      context.Context
	dc       *directConn
	pool     *directPool
	stop     func() bool // stops the cancellation watch; false if it fired
	reusable bool        // the response did not ask to close the connection

	mu   sync.Mutex // guards the fields below
	eof  bool
	done bool
}

func (b *directBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	switch {
	case errors.Is(err, io.EOF):
		b.mu.Lock()
		b.eof = true
		b.mu.Unlock()
	case err != nil:
		err = ctxErr(b.ctx, err)
	}
	return n, err
}

func (b *directBody) Close() error {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return nil
	}
	b.done = true
	eof := b.eof
	b.mu.Unlock()
	if b.stop() && eof && b.reusable {
		b.pool.put(b.dc)
		return nil
	}
	return b.dc.conn.Close()
}

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
// round trip (41 µs against 73 µs for a 200-byte POST on the benchmark VM,
// docs/benchmarks.md). Raw calls to plain-HTTP backends therefore make their
// round trip on the caller's goroutine, over a pooled connection, with
// net/http's own request writer and response parser (Request.Write,
// http.ReadResponse). Everything else — the SDK's requests, TLS, proxies,
// platforms where a pooled connection's liveness cannot be checked — keeps
// the Transport.

const (
	directMaxIdlePerHost = 256
	directIdleTimeout    = 90 * time.Second
	// directCheckAfter: a connection idle for less is reused without
	// checking that the backend has not closed it. Backends close idle
	// connections after seconds (Node's default is 5 s) and say
	// Connection: close when they end one after an answer; the check is a
	// system call that busy connections need not pay.
	directCheckAfter = 100 * time.Millisecond
)

// aLongTimeAgo is a deadline in the past: it interrupts blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// directPool keeps idle connections to backends, by host:port.
type directPool struct {
	transport *http.Transport // whose dialer and proxy settings apply
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)

	mu     sync.Mutex // guards the fields below
	idle   map[string][]*directConn
	closed bool
}

// directConn is one connection of a directPool.
type directConn struct {
	conn  net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	key   string
	since time.Time // when it went idle
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
// connection to be used again.
func (p *directPool) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	key := hostPort(req.URL)
	dc, err := p.get(ctx, key)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline() // zero: none
	_ = dc.conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = dc.conn.SetDeadline(aLongTimeAgo) })
	err = req.Write(dc.bw)
	if err == nil {
		err = dc.bw.Flush()
	}
	var resp *http.Response
	if err == nil {
		resp, err = http.ReadResponse(dc.br, req)
		// Informational answers come before the real one (as the
		// Transport does, except 101, which ends HTTP on the connection).
		for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			resp, err = http.ReadResponse(dc.br, req)
		}
	}
	if err != nil {
		stop()
		_ = dc.conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, err
	}
	resp.Body = &directBody{body: resp.Body, dc: dc, pool: p, stop: stop, reusable: !resp.Close}
	return resp, nil
}

// get returns an idle connection to key that is still open, or a new one.
// The liveness check (a system call) is made outside the lock.
func (p *directPool) get(ctx context.Context, key string) (*directConn, error) {
	now := time.Now()
	for dc := p.pop(key); dc != nil; dc = p.pop(key) {
		if idle := now.Sub(dc.since); idle < directCheckAfter || idle < directIdleTimeout && idleAlive(dc.conn) {
			return dc, nil
		}
		_ = dc.conn.Close()
	}
	conn, err := p.dial(ctx, "tcp", key)
	if err != nil {
		return nil, err
	}
	return &directConn{conn: conn, br: bufio.NewReader(conn), bw: bufio.NewWriter(conn), key: key}, nil
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
// connections over the limits.
func (p *directPool) put(dc *directConn) {
	_ = dc.conn.SetDeadline(time.Time{})
	dc.since = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = dc.conn.Close()
		return
	}
	conns := append(p.idle[dc.key], dc)
	drop := max(len(conns)-directMaxIdlePerHost, 0)
	for drop < len(conns) && dc.since.Sub(conns[drop].since) >= directIdleTimeout {
		drop++
	}
	for _, old := range conns[:drop] {
		_ = old.conn.Close()
	}
	p.idle[dc.key] = append(conns[:0], conns[drop:]...)
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
	if errors.Is(err, io.EOF) {
		b.mu.Lock()
		b.eof = true
		b.mu.Unlock()
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

package frontend

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// A session's standalone stream (its GET) is open for as long as the client
// stays, mostly idle. Over HTTP/1.1, net/http keeps for it a connection
// goroutine whose stack grew serving the session's earlier requests, a
// second goroutine watching for the client to leave, 4 KiB read and write
// buffers and a chunking buffer: about 14 KiB that an idle session does not
// need (docs/benchmarks.md, idle sessions). detachGET takes such a stream's
// connection from net/http and serves it from a fresh, shallow goroutine
// that writes each event straight to the socket, chunked; the SDK's handler
// writes to it as to any response.

// streamWriteTimeout bounds one write to a detached stream: a client that
// stops reading for that long is gone, and its session's stream is freed
// for the next GET.
const streamWriteTimeout = 30 * time.Second

// detachGET serves r, a known session's GET over HTTP/1.1, on a connection
// of its own. It reports false, having done nothing, when the request cannot
// be detached (another protocol, a writer that cannot hijack, vmcp
// stopping).
func (g *Gateway) detachGET(w http.ResponseWriter, r *http.Request) bool {
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.Header.Get("Connection") == "Upgrade" ||
		r.ContentLength != 0 || len(r.TransferEncoding) > 0 { // a body would reach the watcher
		return false
	}
	g.streamsMu.Lock()
	if g.streamsCtx.Err() != nil {
		g.streamsMu.Unlock()
		return false
	}
	g.streams.Add(1)
	g.streamsMu.Unlock()
	header := w.Header().Clone() // CORS, set before the endpoint
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		g.streams.Done()
		return false
	}
	// A GET has no body, and nothing a client sends after it on this
	// connection can be answered before the stream ends: drop it.
	_, _ = brw.Reader.Discard(brw.Reader.Buffered())

	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	s := &detachedStream{conn: conn, cancel: cancel, header: header}
	stopOnClose := context.AfterFunc(g.streamsCtx, s.stop)
	go s.watch()
	go func() {
		defer g.streams.Done()
		defer stopOnClose()
		defer s.finish()
		defer func() {
			// net/http would have recovered a panic on its connection's
			// goroutine; this one is vmcp's.
			if v := recover(); v != nil {
				g.logger.Error("panic serving a session's stream", "panic", v, "stack", string(debug.Stack()))
				s.abort() // as net/http does: the client sees the stream break, not end
			}
		}()
		// A request of its own: the handler that detached the stream
		// returns now, and what wraps it (the edge's telemetry) goes on
		// reading r, while the SDK's handler may write r's header
		// (Telemetry.Handoff).
		g.sdk(g.stateful, s, r.Clone(ctx), nil)
	}()
	return true
}

// CloseStreams ends the standalone streams vmcp serves on connections of
// their own (net/http's Server.Close does not see them) and waits until
// their handlers have returned.
func (g *Gateway) CloseStreams() {
	g.streamsMu.Lock()
	g.closeStreams()
	g.streamsMu.Unlock()
	g.streams.Wait()
}

// detachedStream is the http.ResponseWriter of a detached GET: the status
// line and header go with the first bytes of the body, each Write is one
// chunk on the socket, Flush has nothing to do.
type detachedStream struct {
	conn     net.Conn
	cancel   context.CancelFunc // ends the request: the client left, a write failed, vmcp stops
	header   http.Header
	stopping atomic.Bool // vmcp stops: writes get stopWriteTimeout

	mu     sync.Mutex // guards the fields below
	status int        // set by WriteHeader; 0 before
	sent   bool       // the head is on the wire
	err    error      // the first failed write
}

// stopWriteTimeout bounds the writes of a stream once vmcp stops, so that
// a client that does not read cannot hold the shutdown for
// streamWriteTimeout.
const stopWriteTimeout = time.Second

var errStreamAborted = errors.New("the stream's handler failed")

var (
	_ http.ResponseWriter = (*detachedStream)(nil)
	_ http.Flusher        = (*detachedStream)(nil)
)

func (s *detachedStream) Header() http.Header { return s.header }

func (s *detachedStream) WriteHeader(code int) {
	s.mu.Lock()
	if s.status == 0 {
		s.status = code
	}
	s.mu.Unlock()
}

func (s *detachedStream) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	buf := s.head(make([]byte, 0, 512+len(p)))
	buf = strconv.AppendInt(buf, int64(len(p)), 16)
	buf = append(buf, "\r\n"...)
	buf = append(buf, p...)
	buf = append(buf, "\r\n"...)
	if err := s.write(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush sends the head if no body has gone yet: writes are not buffered.
func (s *detachedStream) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sent {
		_ = s.write(s.head(nil))
	}
}

// stop ends the request because vmcp stops; a write under way gets at
// most stopWriteTimeout more.
func (s *detachedStream) stop() {
	s.stopping.Store(true)
	_ = s.conn.SetWriteDeadline(time.Now().Add(stopWriteTimeout))
	s.cancel()
}

// abort makes finish close the connection without ending the body.
func (s *detachedStream) abort() {
	s.mu.Lock()
	if s.err == nil {
		s.err = errStreamAborted
	}
	s.mu.Unlock()
}

// finish ends the body and closes the connection; the handler has returned.
func (s *detachedStream) finish() {
	s.mu.Lock()
	_ = s.write(append(s.head(nil), "0\r\n\r\n"...))
	s.mu.Unlock()
	s.cancel()
	_ = s.conn.Close()
}

// head appends the status line and header to buf, once.
func (s *detachedStream) head(buf []byte) []byte {
	if s.sent {
		return buf
	}
	s.sent = true
	code := s.status
	if code == 0 {
		code = http.StatusOK
	}
	buf = append(buf, "HTTP/1.1 "...)
	buf = strconv.AppendInt(buf, int64(code), 10)
	buf = append(buf, ' ')
	buf = append(buf, http.StatusText(code)...)
	buf = append(buf, "\r\n"...)
	h := s.header
	h.Del("Content-Length")
	h.Set("Transfer-Encoding", "chunked")
	h.Set("Connection", "close") // the stream is the connection's last response
	if h.Get("Date") == "" {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	b := bytes.NewBuffer(buf)
	_ = h.Write(b)
	b.WriteString("\r\n")
	return b.Bytes()
}

// write sends buf unless an earlier write failed; a failure ends the
// request, so that the SDK releases the session's stream.
func (s *detachedStream) write(buf []byte) error {
	if s.err != nil {
		return s.err
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if s.stopping.Load() { // after the deadline above, so that stop's is never overwritten
		_ = s.conn.SetWriteDeadline(time.Now().Add(stopWriteTimeout))
	}
	if _, err := s.conn.Write(buf); err != nil {
		s.err = err
		s.cancel()
	}
	return s.err
}

// watch ends the request when the client closes the connection (or sends
// something, which it may not while the stream is open).
func (s *detachedStream) watch() {
	var b [1]byte
	_, _ = s.conn.Read(b[:])
	s.cancel()
}

package backend

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/vmcp-dev/vmcp/internal/wire"
)

// The guard of the go-sdk's client transport.
//
// The go-sdk's streamable HTTP client treats many backend faults as the end
// of the connection: an answer that is not JSON-RPC, a Content-Type it does
// not expect, most HTTP errors, a body that breaks off, and the end of its
// standalone GET stream (it resumes streams only a few times without new
// events, then gives up). A connection failure takes the backend's tools
// away from every client until vmcp reconnects. And it waits for the GET
// stream's response headers inside Connect, with no bound: behind a proxy
// that holds them back until the first event, connecting never ends.
//
// The guard is an http.RoundTripper under the SDK's client. It sees the
// SDK's requests and hands it answers the SDK cannot fail on:
//
//   - The answer to a call (a POST of a JSON-RPC request) is checked before
//     the SDK reads it. Anything but a well-formed answer — an HTTP error
//     without a JSON-RPC error in its body, another Content-Type, JSON that
//     is not JSON-RPC, an answer to something else, a body that breaks off,
//     an answer or event over the result size limit — becomes a JSON-RPC
//     error answer to that call, and the fault itself is kept in the call's
//     context for [Backend] to report as a [CallError] naming the backend.
//     The backend's health is then decided by pings, not by one answer.
//     An event stream that ends before the answer is resumed with GET and
//     Last-Event-ID, after the backend's retry time (SEP-1699 polling).
//     A 404 (the session is gone) and redirects pass through unchanged.
//   - The standalone GET stream is answered at once (the SDK then finishes
//     connecting), and kept by the guard: it is opened in the background,
//     resumed with Last-Event-ID whenever it ends (a proxy's read timeout,
//     a load balancer's idle timeout, a backend closing it to poll), with
//     backoff and jitter, and only well-formed events reach the SDK. A
//     backend without a GET stream (405) simply has none; one that has lost
//     the session (404) is checked by a ping.

// faultKey is the context key of a call's [callFault].
type faultKey struct{}

// callFault is where the guard leaves what was wrong with a call's answer,
// and counts the progress notifications for the call it passed to the SDK
// ahead of the answer (see [Conn.begin]).
type callFault struct {
	err      atomic.Pointer[error]
	token    atomic.Pointer[string] // the call's progress token at the backend, if it has one
	progress atomic.Int32           // progress notifications with that token handed to the SDK
}

// sawProgress counts data if it is a progress notification for the call.
func (f *callFault) sawProgress(data []byte) {
	tok := f.token.Load()
	if tok == nil || !bytes.Contains(data, []byte(*tok)) {
		return // cheap test first: most events of a stream are not this
	}
	var m wire.Message
	if wire.Parse(data, &m) != nil || m.Method != "notifications/progress" || m.IsRequest() {
		return
	}
	var p struct {
		Token any `json:"progressToken"`
	}
	if wire.Unmarshal(m.Params, &p) == nil && p.Token == *tok {
		f.progress.Add(1)
	}
}

func (f *callFault) set(err error) { f.err.CompareAndSwap(nil, &err) }

// get returns the fault, or nil.
func (f *callFault) get() error {
	if p := f.err.Load(); p != nil {
		return *p
	}
	return nil
}

// withFault returns ctx carrying a fresh callFault.
func withFault(ctx context.Context) (context.Context, *callFault) {
	f := &callFault{}
	return context.WithValue(ctx, faultKey{}, f), f
}

// guard is the RoundTripper under the go-sdk's client of one connection.
type guard struct {
	next http.RoundTripper // the connection's own (credentials, origin check)
	conn *Conn
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.Method {
	case http.MethodGet:
		return g.standalone(req), nil
	case http.MethodPost:
		if id, ok := callID(req); ok {
			return g.call(req, id)
		}
	}
	return g.next.RoundTrip(req)
}

// callID returns the id of the JSON-RPC request a POST carries, if it is
// a call.
func callID(req *http.Request) (jsonrpc.ID, bool) {
	if req.GetBody == nil {
		return jsonrpc.ID{}, false
	}
	body, err := req.GetBody()
	if err != nil {
		return jsonrpc.ID{}, false
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return jsonrpc.ID{}, false
	}
	id, response, err := wire.Check(data)
	if err != nil || response || !id.IsValid() {
		return jsonrpc.ID{}, false
	}
	return id, true
}

// maxErrorBody bounds what is read of an HTTP error's body, looking for a
// JSON-RPC error in it.
const maxErrorBody = 64 << 10

// call sends a call and checks its answer.
func (g *guard) call(req *http.Request, id jsonrpc.ID) (*http.Response, error) {
	resp, err := g.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound, resp.StatusCode >= 300 && resp.StatusCode < 400:
		return resp, nil // the session is gone (the SDK ends the connection), or a redirect for the client's policy
	case resp.StatusCode < 200 || resp.StatusCode >= 300:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		_ = resp.Body.Close()
		if msg, err := jsonrpc.DecodeMessage(body); err == nil {
			if r, ok := msg.(*jsonrpc.Response); ok && r.Error != nil && (r.ID == id || !r.ID.IsValid()) {
				return answer(req, &jsonrpc.Response{ID: id, Error: r.Error}), nil // the backend's own error
			}
		}
		// The body is not quoted: a backend's error page may echo credentials.
		return g.fault(req, id, &statusError{status: resp.Status}), nil
	}
	switch mediaType(resp.Header.Get("Content-Type")) {
	case "application/json":
		return g.jsonAnswer(req, resp, id), nil
	case "text/event-stream":
		s := &callStream{g: g, req: req, id: id, body: resp.Body}
		s.fault, _ = req.Context().Value(faultKey{}).(*callFault)
		s.br = readers.Get().(*bufio.Reader)
		s.br.Reset(resp.Body)
		s.sr = wire.NewSSEReader(s.br, g.conn.backend.set.opts.MaxResultBytes)
		resp.Body = s
		return resp, nil
	default:
		_ = resp.Body.Close()
		return g.fault(req, id, fmt.Errorf("unexpected Content-Type %q", resp.Header.Get("Content-Type"))), nil
	}
}

func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return mt
}

// jsonAnswer checks an answer sent as one JSON body: it must be the answer
// to the call.
func (g *guard) jsonAnswer(req *http.Request, resp *http.Response, id jsonrpc.ID) *http.Response {
	defer resp.Body.Close()
	limit := g.conn.backend.set.opts.MaxResultBytes
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	switch {
	case err != nil:
		return g.fault(req, id, fmt.Errorf("reading the backend's answer: %w", err))
	case len(body) > limit:
		return g.fault(req, id, errTooLarge(limit))
	}
	got, response, err := wire.Check(body)
	if err != nil {
		return g.fault(req, id, invalidMessage(body))
	}
	if !response || got != id {
		return g.fault(req, id, errors.New("the backend's JSON answer is not the response to the call"))
	}
	g.conn.backend.set.largeAnswer(len(body))
	out := *resp
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	return &out
}

// invalidMessage is the error of an answer that is not a JSON-RPC message.
// The parser's own error is not used: it quotes the answer, which may echo
// credentials.
func invalidMessage(data []byte) error {
	if !json.Valid(data) {
		return errors.New("invalid JSON-RPC message from the backend: not JSON")
	}
	return errors.New("invalid JSON-RPC message from the backend: JSON, but not a JSON-RPC message")
}

func errTooLarge(limit int) error {
	return fmt.Errorf("answer larger than the result size limit (%d bytes)", limit)
}

// fault keeps err for the call and answers it with a JSON-RPC error.
func (g *guard) fault(req *http.Request, id jsonrpc.ID, err error) *http.Response {
	if f, ok := req.Context().Value(faultKey{}).(*callFault); ok {
		f.set(err)
	}
	g.conn.backend.logger.Debug("backend answer refused", "error", err)
	return answer(req, &jsonrpc.Response{ID: id, Error: faultError(err)})
}

// faultError is the JSON-RPC error a call whose answer was refused gets.
func faultError(err error) *jsonrpc.Error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: err.Error()}
}

// answer is an HTTP answer to req carrying msg as JSON.
func answer(req *http.Request, msg *jsonrpc.Response) *http.Response {
	body, _ := jsonrpc.EncodeMessage(msg)
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// callStream is the event stream answering a call, as the SDK reads it:
// well-formed events only, the stream resumed if it ends before the answer,
// and a JSON-RPC error answer in place of a fault.
type callStream struct {
	g     *guard
	req   *http.Request
	id    jsonrpc.ID
	fault *callFault    // the call's, if it has one
	body  io.ReadCloser // the backend's current response body
	br    *bufio.Reader
	sr    *wire.SSEReader
	data  bytes.Buffer
	out   [3][]byte // the event being handed over: its head, data and end
	done  bool      // the answer (or a fault) is out: the stream ends after it
}

var (
	eventHead = []byte("data: ")
	eventEnd  = []byte("\n\n")
)

func (s *callStream) Read(p []byte) (int, error) {
	for {
		for i := range s.out {
			if len(s.out[i]) > 0 {
				n := copy(p, s.out[i])
				s.out[i] = s.out[i][n:]
				return n, nil
			}
		}
		if s.done {
			return 0, io.EOF
		}
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
}

// fill reads the next well-formed message event from the backend into
// s.out, resuming the stream or answering with a fault as needed. Its
// error is the call's context's, when the call is abandoned.
func (s *callStream) fill() error {
	ctx := s.req.Context()
	for {
		typ, err := s.sr.Next(&s.data)
		switch {
		case errors.Is(err, wire.ErrEventTooLarge):
			s.faulted(errTooLarge(s.sr.Max()))
			return nil
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if rerr := s.resume(err); rerr != nil {
				s.faulted(rerr)
				return nil
			}
			continue
		case typ != "message" || s.data.Len() == 0:
			continue // another event type, or a priming event
		}
		got, response, err := wire.Check(s.data.Bytes())
		if err != nil {
			s.faulted(invalidMessage(s.data.Bytes()))
			return nil
		}
		if response && got == s.id {
			s.done = true
			s.g.conn.backend.set.largeAnswer(s.data.Len())
		} else if !response && s.fault != nil {
			s.fault.sawProgress(s.data.Bytes())
		}
		s.out = [3][]byte{eventHead, oneLine(s.data.Bytes()), eventEnd}
		return nil
	}
}

// faulted ends the stream with a fault answer to the call.
func (s *callStream) faulted(err error) {
	resp := s.g.fault(s.req, s.id, err)
	body, _ := io.ReadAll(resp.Body)
	s.out = [3][]byte{eventHead, body, eventEnd}
	s.done = true
}

// resume continues a stream that ended (with err) before the answer: with
// GET and Last-Event-ID, if the backend gave its events IDs.
func (s *callStream) resume(ended error) error {
	c := s.g.conn
	if s.sr.LastID() == "" {
		return fmt.Errorf("the backend's stream ended without an answer: %w", ended)
	}
	_ = s.body.Close()
	resp, err := c.resume(s.req.Context(), streamOf(s.req.Header), s.sr.LastID(), s.sr.Retry())
	if err != nil {
		return fmt.Errorf("the backend's stream ended without an answer and could not be resumed: %w", err)
	}
	s.body = resp.Body
	s.br.Reset(resp.Body)
	s.sr.Resume()
	return nil
}

func (s *callStream) Close() error {
	if s.br == nil {
		return nil
	}
	if s.done {
		awaitDrain(finishBody(s.br, s.body))
	} else {
		_ = s.body.Close()
		readers.Put(s.br)
	}
	s.br = nil
	return nil
}

// resumeWait is how long vmcp waits before resuming a call's stream when
// the backend set no retry time.
const resumeWait = 500 * time.Millisecond

// statusError is an HTTP error answer. Its body is not quoted: a
// backend's error page may echo credentials.
type statusError struct{ status string }

func (e *statusError) Error() string { return "the backend answered HTTP " + e.status }

// errSessionLost is a backend that no longer knows vmcp's session.
var errSessionLost = errors.New("the backend no longer knows vmcp's session (HTTP 404)")

// stream says which session a GET is for: the protocol version and
// session ID of the connection.
type stream struct{ version, session string }

func streamOf(h http.Header) stream {
	return stream{version: h.Get("Mcp-Protocol-Version"), session: h.Get("Mcp-Session-Id")}
}

// resume asks the backend for the rest of a stream (GET with
// Last-Event-ID), after retry (the backend's wait, else resumeWait).
func (c *Conn) resume(ctx context.Context, st stream, lastID string, retry time.Duration) (*http.Response, error) {
	if retry <= 0 {
		retry = resumeWait
	}
	if !sleep(ctx, retry) {
		return nil, ctx.Err()
	}
	resp, err := c.get(ctx, st, lastID)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotFound {
		_ = resp.Body.Close()
		c.sessionLost()
		return nil, errSessionLost
	}
	if resp.StatusCode != http.StatusOK || mediaType(resp.Header.Get("Content-Type")) != "text/event-stream" {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil, fmt.Errorf("unexpected Content-Type %q", resp.Header.Get("Content-Type"))
		}
		return nil, &statusError{status: resp.Status}
	}
	return resp, nil
}

// get opens an event stream on c's session: the standalone one, or the
// rest of a stream after lastID.
func (c *Conn) get(ctx context.Context, st stream, lastID string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.raw.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header = http.Header{"Accept": {"text/event-stream"}}
	if st.version != "" {
		req.Header["Mcp-Protocol-Version"] = []string{st.version}
	}
	if st.session != "" {
		req.Header["Mcp-Session-Id"] = []string{st.session}
	}
	if lastID != "" {
		req.Header["Last-Event-Id"] = []string{lastID}
	}
	return c.raw.client.Do(req)
}

// standalone answers the SDK's GET for the standalone stream at once, and
// keeps the stream in the background for the life of the request's
// context (the connection's).
func (g *guard) standalone(req *http.Request) *http.Response {
	pr, pw := io.Pipe()
	ctx := req.Context()
	context.AfterFunc(ctx, func() { _ = pw.CloseWithError(ctx.Err()) })
	go g.keep(ctx, streamOf(req.Header), pw)
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/event-stream"}},
		Body:          pr,
		ContentLength: -1,
		Request:       req,
	}
}

// Backoff of the standalone stream's reconnections, when the backend sets
// no retry time: from streamMinWait, doubling to streamMaxWait, with
// jitter; back to streamMinWait after a stream that lived streamStable or
// brought events (a stream a proxy's timeout ended, say), so that only a
// backend that keeps failing or ending its streams at once waits longer.
const (
	streamMinWait = 500 * time.Millisecond
	streamMaxWait = 30 * time.Second
	streamStable  = time.Second
)

// keep keeps the standalone stream open until ctx ends, and passes its
// well-formed events to w.
func (g *guard) keep(ctx context.Context, st stream, w *io.PipeWriter) {
	k := &keeper{c: g.conn, w: w, br: bufio.NewReaderSize(nil, 4096)}
	k.sr = wire.NewSSEReader(k.br, g.conn.backend.set.opts.MaxResultBytes)
	wait := streamMinWait
	for opened := 0; ; {
		resp, err := k.c.get(ctx, st, k.sr.LastID())
		if ctx.Err() != nil {
			if err == nil {
				_ = resp.Body.Close()
			}
			return
		}
		switch open, stop := k.check(resp, err); {
		case stop:
			return
		case open:
			if opened > 0 && k.sr.LastID() == "" && k.c.owner == nil && k.c.user == nil {
				// What the backend said while the stream was closed is lost
				// (no event IDs to resume from): a list change among it is
				// caught by listing again (clients hear of real changes only).
				k.c.backend.refreshSoon()
			}
			opened++
			lived, events, closed := k.forward(resp.Body)
			if closed || ctx.Err() != nil {
				return
			}
			if events > 0 || lived >= streamStable {
				wait = streamMinWait
			}
			k.c.backend.logger.Debug("the backend's event stream ended; resuming", "last_event_id", k.sr.LastID() != "", "lived", lived.Round(time.Millisecond))
		}
		d := jitter(wait)
		if k.sr.Retry() > 0 {
			d = k.sr.Retry()
		} else {
			wait = min(2*wait, streamMaxWait)
		}
		if !sleep(ctx, d) {
			return
		}
	}
}

// keeper is the state of one connection's standalone stream.
type keeper struct {
	c    *Conn
	w    *io.PipeWriter // to the SDK
	br   *bufio.Reader
	sr   *wire.SSEReader // keeps the last event ID and retry time across streams
	data bytes.Buffer
}

// check classifies the answer to a GET of the stream: open (an event
// stream to read), stop (the backend has no such stream, 405 or another
// refusal as the SDK takes it; or has lost the session, 404, which the
// connection's check handles), or neither (try again later).
func (k *keeper) check(resp *http.Response, err error) (open, stop bool) {
	logger := k.c.backend.logger
	switch {
	case err != nil:
		logger.Debug("opening the backend's event stream", "error", err)
		return false, false
	case resp.StatusCode == http.StatusOK && mediaType(resp.Header.Get("Content-Type")) == "text/event-stream":
		return true, false
	}
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		logger.Debug("the backend's event stream: HTTP 404 (session lost?); checking the connection")
		k.c.sessionLost()
		return false, true
	case resp.StatusCode < 300 || resp.StatusCode >= 400 && resp.StatusCode < 500:
		logger.Debug("the backend offers no event stream of its own", "status", resp.Status)
		return false, true
	}
	logger.Debug("opening the backend's event stream", "status", resp.Status)
	return false, false
}

// forward passes the well-formed message events of one stream to the SDK
// until the stream ends (closed: the SDK's side is gone), and closes body.
func (k *keeper) forward(body io.ReadCloser) (lived time.Duration, events int, closed bool) {
	defer body.Close()
	start := time.Now()
	k.br.Reset(body)
	k.sr.Resume()
	logger := k.c.backend.logger
	for {
		typ, err := k.sr.Next(&k.data)
		switch {
		case errors.Is(err, wire.ErrEventTooLarge):
			logger.Warn("backend message over the result size limit dropped", "limit", k.sr.Max())
			continue
		case err != nil:
			return time.Since(start), events, false
		case typ != "message" || k.data.Len() == 0:
			continue
		}
		if _, _, err := wire.Check(k.data.Bytes()); err != nil {
			logger.Warn("invalid message on the backend's event stream dropped", "error", err)
			continue
		}
		events++
		b := oneLine(k.data.Bytes())
		if _, err := k.w.Write(append(append(append(make([]byte, 0, len(b)+8), eventHead...), b...), eventEnd...)); err != nil {
			return time.Since(start), events, true
		}
	}
}

// oneLine makes a JSON message one line of event data, in place: line
// ends in JSON can only be white space.
func oneLine(b []byte) []byte {
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	return b
}

// jitter returns a duration between d/2 and d, at random, so that
// reconnections of many connections spread out.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

package backend

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/wire"
)

// Raw calls.
//
// A tools/call from a client that takes nothing back during the call (no
// progress token, no sampling or elicitation, no log level) needs nothing
// of the SDK's typed messages: vmcp forwards the arguments as the client
// sent them and the result as the backend sent it. On a streamable HTTP
// connection such a call is one POST on the connection's session, written
// and read here; the SDK's client session still owns the session (its
// initialization, its standalone stream, pings, reconnection). The go-sdk
// decodes every message into typed values with a fresh 32 KiB buffer per
// value, which made it the bulk of vmcp's cost per call (docs/benchmarks.md).
//
// What the backend sends on the call's stream besides the answer is
// handled as the SDK path would for such a client: requests are answered
// (ping) or refused (sampling, elicitation: the client did not declare
// them), list-change and resource-update notifications reach the backend's
// handlers, progress and log messages are dropped (nobody asked for them).

// RawCall is a tools/call as JSON: the tool's name at the backend, and the
// arguments and _meta to send (nil: none). The _meta must not carry a
// progress token.
type RawCall struct {
	Name      string
	Arguments json.RawMessage
	Meta      json.RawMessage
}

// RawResult is a backend's result as the bytes it sent. Release returns
// its buffer; Result must not be used after.
type RawResult struct {
	Result  json.RawMessage
	buf     *bytes.Buffer
	drained <-chan struct{} // closed when the answer's stream is drained; nil: nothing to drain
}

// Release returns r's buffer to the pool. It waits (briefly) for the rest
// of the answer's stream to be read, so that the next call reuses its
// connection: the caller has the answer by then, and the stream's end is
// normally read already.
func (r *RawResult) Release() {
	if r.buf != nil {
		r.Result = nil
		putBuf(r.buf)
		r.buf = nil
	}
	if r.drained != nil {
		awaitDrain(r.drained)
		r.drained = nil
	}
}

// rawConn is what a streamable HTTP connection needs to send requests
// itself: its endpoint, and the HTTP client of the connection (which adds
// the backend's credentials).
type rawConn struct {
	url    string
	client *http.Client
	ids    atomic.Uint64
}

var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuf() *bytes.Buffer { b := bufs.Get().(*bytes.Buffer); b.Reset(); return b }

func putBuf(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 {
		bufs.Put(b)
	}
}

var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// CallToolRaw calls a tool by the backend's own name, with the arguments
// as JSON, and returns the result as the backend sent it. peer must not
// relay (see the package comment above); the result's _meta is the
// backend's, not yet filtered for the client. Errors are those of CallTool.
// Connections that cannot send raw requests (stdio, SSE, a backend that
// chose the stateless revision) go through the SDK, at the SDK's cost.
func (b *Backend) CallToolRaw(ctx context.Context, peer Peer, call RawCall) (*RawResult, error) {
	if peer != nil && peer.Relays() {
		return b.callToolTyped(ctx, peer, call)
	}
	callCtx, c, finish, err := b.open(ctx, peer)
	if err != nil {
		return nil, err
	}
	ver := c.session.InitializeResult().ProtocolVersion
	if c.raw == nil || ver >= "2026-07-28" {
		_ = finish(nil)
		return b.callToolTyped(ctx, peer, call)
	}
	end := c.begin(callCtx, peer, nil)
	res, err := c.rawCall(callCtx, ver, call)
	end()
	if res != nil {
		b.set.largeAnswer(len(res.Result))
	}
	if err = finish(err); err != nil {
		return nil, err
	}
	return res, nil
}

// callToolTyped is CallToolRaw through the SDK.
func (b *Backend) callToolTyped(ctx context.Context, peer Peer, call RawCall) (*RawResult, error) {
	p := &mcp.CallToolParams{Name: call.Name}
	if len(call.Arguments) > 0 {
		p.Arguments = call.Arguments
	}
	if len(call.Meta) > 0 {
		if err := json.Unmarshal(call.Meta, &p.Meta); err != nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "invalid _meta: " + err.Error()}
		}
	}
	r, err := b.CallTool(ctx, peer, p)
	if err != nil {
		return nil, err
	}
	buf := getBuf()
	if err := json.NewEncoder(buf).Encode(r); err != nil {
		putBuf(buf)
		return nil, &CallError{Backend: b.spec.Name, Err: err}
	}
	return &RawResult{Result: bytes.TrimSpace(buf.Bytes()), buf: buf}, nil
}

// rawCall sends call as one POST on c's session and reads the answer, from
// a JSON body or from the event stream of the request.
func (c *Conn) rawCall(ctx context.Context, version string, call RawCall) (*RawResult, error) {
	id := "vmcp-" + strconv.FormatUint(c.raw.ids.Add(1), 10)
	// Not a pooled buffer: the transport may still read the body after Do
	// returns (an answer that comes before the request is fully sent).
	body := make([]byte, 0, 96+len(call.Name)+len(call.Arguments)+len(call.Meta))
	var quoted [32]byte // the id as JSON, without an allocation
	body = wire.AppendToolCall(body, append(append(append(quoted[:0], '"'), id...), '"'), call.Name, call.Arguments, call.Meta)
	st := stream{version: version, session: c.session.ID()}
	resp, err := c.post(ctx, st, body)
	if err != nil {
		return nil, c.rawFailed(ctx, st, id, err)
	}
	res, err := c.readAnswer(ctx, st, resp, id)
	if err != nil {
		return nil, c.rawFailed(ctx, st, id, err)
	}
	return res, nil
}

// post sends one JSON-RPC message on c's session.
func (c *Conn) post(ctx context.Context, st stream, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.raw.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = http.Header{
		"Content-Type":         {"application/json"},
		"Accept":               {"application/json, text/event-stream"},
		"Mcp-Protocol-Version": {st.version},
	}
	if st.session != "" {
		req.Header["Mcp-Session-Id"] = []string{st.session}
	}
	return c.raw.client.Do(req)
}

// rawFailed tells the backend that a call vmcp gave up on (the client
// cancelled it, or it timed out) is cancelled, as the SDK does, and
// returns err.
func (c *Conn) rawFailed(ctx context.Context, st stream, id string, err error) error {
	if ctx.Err() == nil {
		return err
	}
	reason := "the client cancelled the request"
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		reason = "vmcp's call timeout expired"
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		params, _ := json.Marshal(mcp.CancelledParams{RequestID: id, Reason: reason})
		msg := wire.AppendNotification(nil, "notifications/cancelled", params)
		if resp, err := c.post(ctx, st, msg); err == nil {
			_ = resp.Body.Close()
		}
	}()
	return err
}

// readAnswer reads the answer to request id, and closes resp's body.
func (c *Conn) readAnswer(ctx context.Context, st stream, resp *http.Response, id string) (*RawResult, error) {
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		_ = resp.Body.Close()
		c.sessionLost()
		return nil, errSessionLost
	default:
		_ = resp.Body.Close()
		// The body is not quoted: a backend's error page may echo credentials.
		return nil, &statusError{status: resp.Status}
	}
	buf := getBuf()
	var res *RawResult
	var err error
	switch ct := resp.Header.Get("Content-Type"); mediaType(ct) {
	case "application/json":
		res, err = c.readJSON(ctx, st, resp.Body, buf, id)
		_ = resp.Body.Close()
	case "text/event-stream":
		res, err = c.readStream(ctx, st, resp.Body, buf, id)
	default:
		_ = resp.Body.Close()
		err = fmt.Errorf("unexpected Content-Type %q", ct)
	}
	if res == nil {
		putBuf(buf)
	}
	return res, err
}

// readJSON reads an answer sent as one JSON body.
func (c *Conn) readJSON(ctx context.Context, st stream, body io.Reader, buf *bytes.Buffer, id string) (*RawResult, error) {
	limit := c.backend.set.opts.MaxResultBytes
	if _, err := buf.ReadFrom(io.LimitReader(body, int64(limit)+1)); err != nil {
		return nil, fmt.Errorf("reading the backend's answer: %w", err)
	}
	if buf.Len() > limit {
		return nil, errTooLarge(limit)
	}
	res, err := c.rawAnswer(ctx, st, buf, id)
	if res == nil && err == nil {
		err = errors.New("the backend's JSON answer is not the response to the call")
	}
	return res, err
}

// readStream reads server-sent events until the answer to id, resuming
// the stream (GET with Last-Event-ID) if it ends before. It closes body.
func (c *Conn) readStream(ctx context.Context, st stream, body io.ReadCloser, buf *bytes.Buffer, id string) (*RawResult, error) {
	r := readers.Get().(*bufio.Reader)
	r.Reset(body)
	sr := wire.NewSSEReader(r, c.backend.set.opts.MaxResultBytes)
	for {
		typ, err := sr.Next(buf)
		if errors.Is(err, wire.ErrEventTooLarge) {
			_ = body.Close()
			readers.Put(r)
			return nil, errTooLarge(sr.Max())
		}
		if err != nil {
			_ = body.Close()
			if ctx.Err() != nil {
				readers.Put(r)
				return nil, ctx.Err()
			}
			if sr.LastID() == "" {
				readers.Put(r)
				return nil, fmt.Errorf("the backend's stream ended without an answer: %w", err)
			}
			resp, rerr := c.resume(ctx, st, sr.LastID(), sr.Retry())
			if rerr != nil {
				readers.Put(r)
				return nil, fmt.Errorf("the backend's stream ended without an answer and could not be resumed: %w", rerr)
			}
			body = resp.Body
			r.Reset(body)
			sr.Resume()
			continue
		}
		if typ != "message" || buf.Len() == 0 {
			continue
		}
		res, err := c.rawAnswer(ctx, st, buf, id)
		if res != nil || err != nil {
			drained := finishBody(r, body)
			if res != nil {
				res.drained = drained
			} else {
				awaitDrain(drained)
			}
			return res, err
		}
	}
}

// Draining a stream after its answer. The backend ends a call's stream
// right after the answer, and a body read to its end lets net/http reuse
// the connection, where closing it early would close the connection. The
// rest of the stream is read by a goroutine of its own, up to drainMax
// bytes and drainLong, so that neither a slow end costs the connection nor
// the answer waits for it; whoever needs the connection back (the next
// call) waits up to drainWait for that (awaitDrain).
const (
	drainWait = 100 * time.Millisecond
	drainLong = 10 * time.Second
	drainMax  = 64 << 10
)

// finishBody drains and closes body, read through r, in the background,
// returns r to the pool, and returns a channel closed when that is done.
func finishBody(r *bufio.Reader, body io.ReadCloser) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.AfterFunc(drainLong, func() { _ = body.Close() })
		_, _ = io.Copy(io.Discard, io.LimitReader(r, drainMax))
		t.Stop()
		_ = body.Close()
		r.Reset(nil)
		readers.Put(r)
	}()
	return done
}

// awaitDrain waits up to drainWait for a drain to end.
func awaitDrain(done <-chan struct{}) {
	select {
	case <-done:
		return
	default:
	}
	t := time.NewTimer(drainWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// rawAnswer handles one message in buf: the answer to id is returned (a
// result, or the backend's *jsonrpc.Error); anything else is handled and
// (nil, nil) returned.
func (c *Conn) rawAnswer(ctx context.Context, st stream, buf *bytes.Buffer, id string) (*RawResult, error) {
	var m wire.Message
	if err := wire.Parse(buf.Bytes(), &m); err != nil {
		return nil, invalidMessage(buf.Bytes())
	}
	switch {
	case m.Method == "" && isID(m.ID, id):
		if m.Error != nil {
			e := *m.Error
			e.Data = bytes.Clone(e.Data)
			return nil, &e
		}
		if len(m.Result) == 0 {
			return nil, errors.New("the backend's answer has neither result nor error")
		}
		return &RawResult{Result: m.Result, buf: buf}, nil
	case m.Method == "":
		// An answer to something else: not ours to handle.
	case m.IsRequest():
		c.answerRequest(ctx, st, &m)
	default:
		c.notified(ctx, &m)
	}
	return nil, nil
}

func isID(raw json.RawMessage, id string) bool {
	return len(raw) == len(id)+2 && raw[0] == '"' && string(raw[1:len(raw)-1]) == id
}

// answerRequest answers a request the backend made during a raw call: the
// caller takes nothing back, so only ping is answered with a result.
func (c *Conn) answerRequest(ctx context.Context, st stream, m *wire.Message) {
	var e *jsonrpc.Error
	switch m.Method {
	case "ping":
	case "sampling/createMessage":
		e = refused("sampling")
	case "elicitation/create":
		e = refused("elicitation")
	default:
		e = &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "vmcp: " + m.Method + " is not available during this call"}
	}
	reply := wire.AppendResponse(nil, m.ID, json.RawMessage(`{}`))
	if e != nil {
		reply = wire.AppendError(nil, m.ID, e)
	}
	resp, err := c.post(ctx, st, reply)
	if err != nil {
		c.backend.logger.Debug("answering a backend request", "method", m.Method, "error", err)
		return
	}
	_ = resp.Body.Close()
}

// notified handles a notification sent on a raw call's stream.
func (c *Conn) notified(ctx context.Context, m *wire.Message) {
	switch m.Method {
	case "notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed":
		if c.owner == nil {
			c.backend.refreshSoon()
		}
	case "notifications/resources/updated":
		var p mcp.ResourceUpdatedNotificationParams
		if json.Unmarshal(m.Params, &p) == nil && c.owner == nil {
			c.backend.resourceUpdated(ctx, &p)
		}
	default:
		c.backend.logger.Debug("backend notification during a call not relayed: the client did not ask for it", "method", m.Method)
	}
}

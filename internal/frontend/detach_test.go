package frontend_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// readUntil reads events from a stream until one contains want.
func readUntil(t *testing.T, body io.Reader, want string) {
	t.Helper()
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		if strings.Contains(sc.Text(), want) {
			return
		}
	}
	t.Fatalf("stream ended before %q: %v", want, sc.Err())
}

// TestDetachedStreams: over HTTP/1.1 a session's GET is served on a
// connection vmcp takes from net/http (the idle-session memory target).
// It must behave as net/http's would: a valid chunked event stream with the
// SDK's and the CORS headers, notifications delivered, freed for the next
// GET when the client leaves, ended cleanly when the session is deleted
// and when vmcp stops.
func TestDetachedStreams(t *testing.T) {
	t.Parallel()
	be := mcp.NewServer(&mcp.Implementation{Name: "be"}, nil)
	tool := func(name string) {
		be.AddTool(&mcp.Tool{Name: name, InputSchema: json.RawMessage(`{"type":"object"}`)},
			func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{}, nil
			})
	}
	tool("one")
	beSrv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return be }, nil))
	t.Cleanup(beSrv.Close)
	gw := fastGateway(t, beSrv.URL, nil)
	srv := httptest.NewServer(gw) // HTTP/1.1 only
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	c := openRPC(t, gw, "", "{}")

	resp, conn := vmcptest.OpenStream(t, addr, c.sid, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET: %d %v", resp.StatusCode, resp.Header)
	}
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" || !resp.Close {
		t.Errorf("transfer encoding %v, close %v: want one chunked response, then the connection closes", resp.TransferEncoding, resp.Close)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "http://localhost:3000" {
		t.Errorf("Access-Control-Allow-Origin %q: the CORS headers set before the endpoint were lost", got)
	}

	t.Run("a GET with a body stays with net/http", func(t *testing.T) {
		other := openRPC(t, gw, "", "{}")
		resp, conn := vmcptest.OpenStream(t, addr, other.sid, strings.NewReader("hello"))
		defer conn.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Errorf("GET with a body: %d, close %v: want it served by net/http (its body would reach the watcher)", resp.StatusCode, resp.Close)
		}
	})

	t.Run("notifications arrive", func(t *testing.T) {
		tool("two") // the backend's list_changed makes vmcp rebuild and notify its sessions
		readUntil(t, resp.Body, "notifications/tools/list_changed")
	})

	outer := t // the new stream outlives the subtest
	t.Run("a client that leaves frees the stream", func(t *testing.T) {
		_ = conn.Close()
		deadline := time.Now().Add(5 * time.Second)
		for {
			again, _ := vmcptest.OpenStream(outer, addr, c.sid, nil)
			if again.StatusCode == http.StatusOK {
				resp = again
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a new GET after the client left: %d, want 200 (the old stream was never released)", again.StatusCode)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("deleting the session ends the stream", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodDelete, "/mcp", nil)
		r.Header.Set("Mcp-Session-Id", c.sid)
		r.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, r)
		if w.Code != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", w.Code, w.Body)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Errorf("reading the stream to its end: %v, want a clean end of the chunked body", err)
		}
	})

	t.Run("stopping vmcp ends the stream", func(t *testing.T) {
		c := openRPC(t, gw, "", "{}")
		resp, _ := vmcptest.OpenStream(t, addr, c.sid, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET: %d", resp.StatusCode)
		}
		gw.CloseStreams()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Errorf("reading the stream to its end: %v, want a clean end of the chunked body", err)
		}
	})
}

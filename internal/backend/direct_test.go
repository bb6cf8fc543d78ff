package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestDirectRoundTrips: requests made on the caller's goroutine reuse a
// connection exactly when net/http's Transport would (the body read to its
// end, no Connection: close), survive the backend closing idle connections,
// and give up on cancellation.
func TestDirectRoundTrips(t *testing.T) {
	if !canCheckIdle {
		t.Skip("direct round trips are not used on this platform")
	}
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.URL.Path != "/early" {
			body, _ = io.ReadAll(r.Body)
		}
		switch r.URL.Path {
		case "/json":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		case "/stream": // chunked, flushed event by event
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				fmt.Fprintf(w, "data: %d %s\n\n", i, body)
				w.(http.Flusher).Flush()
			}
		case "/close":
			w.Header().Set("Connection", "close")
			_, _ = w.Write(body)
		case "/accepted": // no body, as the answer to a notification
			w.WriteHeader(http.StatusAccepted)
		case "/early": // answers without reading a large request
			w.WriteHeader(http.StatusRequestEntityTooLarge)
		case "/redirect":
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusPermanentRedirect)
		case "/block":
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	var conns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "over TLS")
	}))
	t.Cleanup(tlsSrv.Close)
	p := newDirectPool(tlsSrv.Client()) // plain HTTP directly; the rest through this Transport, which trusts tlsSrv
	t.Cleanup(p.close)

	do := func(ctx context.Context, path, body string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+path, strings.NewReader(body))
		return p.RoundTrip(req)
	}
	roundTrip := func(t *testing.T, path, body string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		resp, err := do(ctx, path, body)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		got, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: reading the body: %v", path, err)
		}
		return string(got)
	}
	newConns := func(t *testing.T, f func()) int32 {
		t.Helper()
		before := conns.Load()
		f()
		return conns.Load() - before
	}

	t.Run("JSON and streamed answers reuse one connection", func(t *testing.T) {
		n := newConns(t, func() {
			for i := range 50 {
				body := fmt.Sprintf(`{"i":%d}`, i)
				if got := roundTrip(t, "/json", body); got != body {
					t.Fatalf("answer %q, want %q", got, body)
				}
				if got, want := roundTrip(t, "/stream", "x"), "data: 0 x\n\ndata: 1 x\n\ndata: 2 x\n\n"; got != want {
					t.Fatalf("stream %q, want %q", got, want)
				}
			}
		})
		if n > 1 {
			t.Errorf("100 sequential requests opened %d connections, want at most 1", n)
		}
	})

	t.Run("Connection: close is honoured", func(t *testing.T) {
		roundTrip(t, "/json", "warm")
		if n := newConns(t, func() { roundTrip(t, "/close", "a"); roundTrip(t, "/json", "b") }); n != 1 {
			t.Errorf("%d new connections, want 1 (after the one the backend closed)", n)
		}
	})

	t.Run("a body closed before its end closes the connection", func(t *testing.T) {
		roundTrip(t, "/json", "warm")
		n := newConns(t, func() {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			resp, err := do(ctx, "/stream", strings.Repeat("y", 10000))
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close() // unread: the connection is not clean
			roundTrip(t, "/json", "after")
		})
		if n != 1 {
			t.Errorf("%d new connections, want 1", n)
		}
	})

	t.Run("idle connections the backend closed are not used", func(t *testing.T) {
		roundTrip(t, "/json", "warm")
		srv.CloseClientConnections()
		time.Sleep(20 * time.Millisecond) // the FIN reaches the pooled socket
		if got := roundTrip(t, "/json", "after close"); got != "after close" {
			t.Errorf("answer %q after the backend closed the idle connection", got)
		}
	})

	t.Run("cancellation interrupts a response, with the context's error", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		resp, err := do(ctx, "/block", "")
		if err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		_, err = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
			t.Errorf("reading a response whose request was cancelled: %v after %s, want context.Canceled", err, time.Since(start))
		}
		for range 5 { // the deadline while waiting for the head, or for the body
			ctx, cancel = context.WithTimeout(t.Context(), 30*time.Millisecond)
			resp, err = do(ctx, "/block", "")
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("a request past its deadline: %v, want context.DeadlineExceeded (not a connection error)", err)
			}
		}
	})

	t.Run("answers without a body return the connection", func(t *testing.T) {
		roundTrip(t, "/json", "warm")
		n := newConns(t, func() {
			for range 10 {
				resp, err := do(t.Context(), "/accepted", `{"jsonrpc":"2.0","method":"notifications/cancelled"}`)
				if err != nil || resp.StatusCode != http.StatusAccepted {
					t.Fatalf("notification: %v %v", resp, err)
				}
				_ = resp.Body.Close() // unread, as raw.go does
			}
		})
		if n > 0 {
			t.Errorf("10 bodiless answers opened %d connections, want the pooled one reused", n)
		}
	})

	t.Run("large requests and redirects elsewhere take the Transport", func(t *testing.T) {
		resp, err := do(t.Context(), "/early", strings.Repeat("z", 1<<20))
		if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("a 1 MiB request answered early: %v %v, want the 413", resp, err)
		} else {
			_ = resp.Body.Close()
		}
		c := &http.Client{Transport: p}
		resp, err = c.Post(srv.URL+"/redirect?to="+url.QueryEscape(tlsSrv.URL), "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatalf("a redirect to HTTPS: %v", err)
		}
		got, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(got) != "over TLS" {
			t.Errorf("a redirect to HTTPS answered %q", got)
		}
	})

	t.Run("an endless response header is refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Long: ")
			chunk := bytes.Repeat([]byte("a"), 64<<10)
			for {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}()
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+ln.Addr().String()+"/", strings.NewReader("{}"))
		if _, err := p.RoundTrip(req); !errors.Is(err, errHeadTooLarge) {
			t.Errorf("an endless header: %v, want %v", err, errHeadTooLarge)
		}
	})

	t.Run("Close during a read ends it", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		resp, err := do(ctx, "/block", "")
		if err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(50*time.Millisecond, func() { _ = resp.Body.Close() })
		read := make(chan error, 1)
		go func() { _, err := io.Copy(io.Discard, resp.Body); read <- err }()
		select {
		case err := <-read:
			if err == nil {
				t.Error("a body closed while being read ended without an error")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a read went on after its body was closed")
		}
	})

	t.Run("a backend that is gone", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/", bytes.NewReader(nil))
		if _, err := p.RoundTrip(req); err == nil {
			t.Error("a request to a closed port succeeded")
		}
	})
}

// TestDirectServes: only plain HTTP without a proxy is made directly.
func TestDirectServes(t *testing.T) {
	t.Parallel()
	p := newDirectPool(NewHTTPClient())
	if p == nil {
		t.Skip("direct round trips are not used on this platform")
	}
	viaProxy := NewHTTPClient()
	proxyURL, _ := url.Parse("http://proxy.example:3128")
	viaProxy.Transport.(*http.Transport).Proxy = http.ProxyURL(proxyURL)
	custom := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("x") })}
	for _, tc := range []struct {
		pool *directPool
		url  string
		want bool
	}{
		{p, "http://127.0.0.1:8080/mcp", true},
		{p, "http://backend.svc/mcp", true},
		{p, "https://backend.example/mcp", false},
		{p, "http://user:pw@backend.example/mcp", false},
		{newDirectPool(viaProxy), "http://backend.example/mcp", false},
		{newDirectPool(custom), "http://backend.example/mcp", false},
	} {
		u, _ := url.Parse(tc.url)
		if got := tc.pool.serves(u); got != tc.want {
			t.Errorf("serves(%s) = %v, want %v", tc.url, got, tc.want)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

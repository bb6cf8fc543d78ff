package authserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestCIMDFetchRules(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	var status atomic.Int64
	status.Store(http.StatusOK)
	mux := http.NewServeMux()
	var base string
	doc := func(id, extra string) string {
		return fmt.Sprintf(`{"client_id":%q,"client_name":"Doc client","redirect_uris":["http://127.0.0.1/cb"]%s}`, id, extra)
	}
	mux.HandleFunc("/good", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if s := int(status.Load()); s != http.StatusOK {
			w.WriteHeader(s)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, doc(base+"/good", ""))
	})
	mux.HandleFunc("/wrong-id", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, doc(base+"/other", "")) })
	mux.HandleFunc("/secret", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, doc(base+"/secret", `,"client_secret":"s"`))
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, doc(base+"/huge", `,"pad":"`+strings.Repeat("x", 6000)+`"`))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/good", http.StatusFound) })
	mux.HandleFunc("/notjson", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "<html>") })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	base = srv.URL
	r := newCIMDResolver(true, slog.New(slog.DiscardHandler)) // the test server is on loopback
	ctx := context.Background()

	c, err := r.resolve(ctx, base+"/good")
	if err != nil || c.Name != "Doc client" || c.AuthMethod != "none" {
		t.Fatalf("good document: %+v, %v", c, err)
	}
	if _, err := r.resolve(ctx, base+"/good"); err != nil || hits.Load() != 1 {
		t.Errorf("second resolve: %v, fetches %d; want the cached document (max-age)", err, hits.Load())
	}
	for _, tc := range []struct{ path, want string }{
		{"/wrong-id", "is not its URL"},
		{"/secret", "client secret"},
		{"/huge", "exceeds"},
		{"/redirect", "redirects are not followed"},
		{"/notjson", "not a JSON object"},
		{"/missing", "404"},
	} {
		if _, err := r.resolve(ctx, base+tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.path, err, tc.want)
		}
	}
	for _, id := range []string{"https://host", "https://host/", "https://user@host/x", "https://host/a/../b", "https://host/x#f", "ftp://host/x"} {
		if err := r.checkClientIDURL(id); err == nil {
			t.Errorf("client_id %q accepted", id)
		}
	}
}

// TestCIMDFailuresAreNotCached: a failed fetch is retried next time.
func TestCIMDFailuresAreNotCached(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	fail.Store(true)
	var base string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if fail.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, `{"client_id":%q,"client_name":"x","redirect_uris":["http://127.0.0.1/cb"]}`, base+"/c")
	}))
	t.Cleanup(srv.Close)
	base = srv.URL
	r := newCIMDResolver(true, slog.New(slog.DiscardHandler))
	if _, err := r.resolve(context.Background(), base+"/c"); err == nil {
		t.Fatal("a 500 was accepted")
	}
	fail.Store(false)
	if _, err := r.resolve(context.Background(), base+"/c"); err != nil {
		t.Errorf("after the host recovered: %v (a failure must not be cached)", err)
	}
}

// TestCIMDRefusesPrivateAddresses: without the test-only switch, a client
// ID whose host is loopback or link-local is refused before any request.
func TestCIMDRefusesPrivateAddresses(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	r := newCIMDResolver(false, slog.New(slog.DiscardHandler))
	port := ln.Addr().(*net.TCPAddr).Port
	for _, host := range []string{"127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "169.254.169.254", "10.0.0.1"} {
		id := fmt.Sprintf("https://%s:%d/client", host, port)
		if _, err := r.resolve(context.Background(), id); err == nil {
			t.Errorf("%s was fetched", id)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the private host saw %d requests", hits.Load())
	}
	for ip, want := range map[string]bool{"8.8.8.8": true, "127.0.0.1": false, "::1": false, "::ffff:10.1.2.3": false,
		"169.254.1.1": false, "fe80::1": false, "fc00::1": false, "100.64.0.1": false, "0.0.0.0": false, "192.168.1.1": false} {
		if got := publicIP(net.ParseIP(ip)); got != want {
			t.Errorf("publicIP(%s) = %v, want %v", ip, got, want)
		}
	}
}

// TestCIMDCacheFull: when the document cache is full, a new client's
// document takes the place of the least recently used one; the others stay
// cached. (The cache used to be emptied when it overflowed.)
func TestCIMDCacheFull(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	var base string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprintf(w, `{"client_id":%q,"client_name":"x","redirect_uris":["http://127.0.0.1/cb"]}`, base+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	base = srv.URL
	r := newCIMDResolver(true, slog.New(slog.DiscardHandler))
	resolve := func(i int) {
		t.Helper()
		if _, err := r.resolve(t.Context(), fmt.Sprintf("%s/c%d", base, i)); err != nil {
			t.Fatal(err)
		}
	}
	const clients = maxCIMDEntries + 10
	for i := range clients {
		resolve(i)
	}
	for _, i := range []int{10, maxCIMDEntries / 2, clients - 1} {
		resolve(i)
	}
	if n := hits.Load(); n != clients {
		t.Errorf("%d fetches, want %d: documents among the %d most recent were fetched again", n, clients, maxCIMDEntries)
	}
	resolve(0)
	if n := hits.Load(); n != clients+1 {
		t.Errorf("the least recently used document was still cached (%d fetches)", n)
	}
}

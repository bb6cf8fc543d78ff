package loadtest

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime/pprof"
	"time"
)

// A bare reverse proxy (net/http/httputil) in front of the backend: the
// floor of what any HTTP gateway adds, one more HTTP hop and nothing else.
// Comparisons with Floor set measure it beside vmcp, so that vmcp's figures
// can be read against what the extra hop alone costs on the machine.

// StartProxy serves a reverse proxy to target (an MCP URL) on loopback and
// returns the proxy's MCP URL. Its goroutines carry the pprof label
// role=proxy.
func StartProxy(ctx context.Context, target string) (string, func(), error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: newProxy(u), ReadHeaderTimeout: 10 * time.Second}
	pprof.Do(ctx, pprof.Labels("role", "proxy"), func(context.Context) { go func() { _ = srv.Serve(ln) }() })
	return "http://" + ln.Addr().String() + u.Path, func() { _ = srv.Close() }, nil
}

func newProxy(target *url.URL) *httputil.ReverseProxy {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	return &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(&url.URL{Scheme: target.Scheme, Host: target.Host}) },
		FlushInterval: -1, // event streams pass at once
		Transport:     t,
		// Streams the client closes at the end of a run are not errors here.
		ErrorLog: log.New(io.Discard, "", 0),
	}
}

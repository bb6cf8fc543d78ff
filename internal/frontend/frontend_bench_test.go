package frontend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmcp-dev/vmcp/internal/audit"
	"github.com/vmcp-dev/vmcp/internal/backend"
	"github.com/vmcp-dev/vmcp/internal/frontend"
	"github.com/vmcp-dev/vmcp/internal/loadtest"
	"github.com/vmcp-dev/vmcp/internal/loadtest/cputime"
	"github.com/vmcp-dev/vmcp/internal/loadtest/echoserver"
	"github.com/vmcp-dev/vmcp/internal/telemetry"
)

// benchGateway starts n echo backends of tools tools each (n=1, tools=0:
// one backend with only "echo") and a gateway in front, and waits until its
// catalog holds every tool.
func benchGateway(b *testing.B, n, tools int) *frontend.Gateway {
	b.Helper()
	var specs []backend.Spec
	for i := range n {
		name := "echo"
		if n > 1 {
			name = fmt.Sprintf("b%02d", i)
		}
		s, err := echoserver.Start(&echoserver.Options{Name: name, Tools: tools, NoEcho: tools > 0})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(s.Close)
		specs = append(specs, backend.Spec{Name: name, Transport: backend.StreamableHTTP, URL: s.URL, CallTimeout: time.Minute})
	}
	var gw *frontend.Gateway
	set := backend.NewSet(specs, &backend.Options{OnChange: func() { gw.BackendsChanged() }})
	gw = frontend.New(set, nil)
	ctx, cancel := context.WithCancel(context.Background())
	set.Start()
	go gw.Run(ctx)
	b.Cleanup(func() { cancel(); set.Close() })
	want := max(n*tools, 1)
	deadline := time.Now().Add(10 * time.Second)
	for !gw.Ready() || len(gw.Catalog().Tools) < want {
		if time.Now().After(deadline) {
			b.Fatalf("gateway not ready: %d tools of %d", len(gw.Catalog().Tools), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return gw
}

// observedGateway is benchGateway(b, 1, 0) with every kind of telemetry
// on, behind the edge middleware as app mounts it.
func observedGateway(b *testing.B) http.Handler {
	b.Helper()
	rate := 1.0
	drain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // an OTLP receiver that keeps nothing
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	b.Cleanup(drain.Close)
	tel, err := telemetry.New(context.Background(), &telemetry.Options{Metrics: prometheus.NewRegistry(),
		Tracing: &telemetry.Tracing{SamplingRate: &rate, Endpoint: drain.URL}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	log := audit.New(io.Discard, nil)
	b.Cleanup(func() { _ = log.Close() })
	s, err := echoserver.Start(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	hc := backend.NewHTTPClient()
	hc.Transport = tel.Transport(hc.Transport)
	var gw *frontend.Gateway
	set := backend.NewSet([]backend.Spec{{Name: "echo", Transport: backend.StreamableHTTP, URL: s.URL, CallTimeout: time.Minute}},
		&backend.Options{HTTPClient: hc, OnChange: func() { gw.BackendsChanged() }})
	gw = frontend.New(set, &frontend.Options{Telemetry: tel, Audit: log})
	ctx, cancel := context.WithCancel(context.Background())
	set.Start()
	go gw.Run(ctx)
	b.Cleanup(func() { cancel(); set.Close() })
	for deadline := time.Now().Add(10 * time.Second); !gw.Ready() || len(gw.Catalog().Tools) < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("gateway not ready")
		}
	}
	return tel.Edge(gw)
}

// authGateway starts an echo backend and a vmcp in front of it configured
// as vmcp-load's JWT + Cedar scenario (loadtest.AuthGatewayConfig), and
// returns the gateway's handler with the bearer token added to every
// request.
func authGateway(b *testing.B) http.Handler {
	b.Helper()
	iss, err := loadtest.StartIssuer()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(iss.Close)
	tok, err := iss.Token(loadtest.AuthAudience, nil)
	if err != nil {
		b.Fatal(err)
	}
	s, err := echoserver.Start(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	gw, err := loadtest.StartGateway(context.Background(), loadtest.GatewayConfig([]loadtest.BackendRef{{URL: s.URL}}, loadtest.AuthGatewayConfig(1, iss)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(gw.Close)
	h := gw.App.Gateway()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+tok)
		h.ServeHTTP(w, r)
	})
}

// session is a 2025-11-25 session driven at the handler level: requests go
// straight to ServeHTTP, without sockets on the client side.
type session struct {
	h  http.Handler
	id string
	n  int
}

func post(h http.Handler, sid, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/mcp", bytes.NewReader([]byte(body)))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	if sid != "" {
		r.Header.Set("Mcp-Session-Id", sid)
		r.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func newSession(b *testing.B, h http.Handler) *session {
	b.Helper()
	w := post(h, "", `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}`)
	sid := w.Header().Get("Mcp-Session-Id")
	if w.Code != http.StatusOK || sid == "" {
		b.Fatalf("initialize: %d %s", w.Code, w.Body)
	}
	if w := post(h, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); w.Code != http.StatusAccepted {
		b.Fatalf("initialized: %d %s", w.Code, w.Body)
	}
	return &session{h: h, id: sid}
}

// statelessCall sends one tools/call of the stateless revision, as
// vmcp-load's stateless scenario does, and fails unless it gets a result.
func statelessCall(b *testing.B, h http.Handler, id int, tool string) {
	body := `{"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":{"text":"hello"},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},` +
		`"io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"}}}}`
	r := httptest.NewRequest(http.MethodPost, "/mcp", bytes.NewReader([]byte(body)))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	r.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	r.Header.Set("Mcp-Method", "tools/call")
	r.Header.Set("Mcp-Name", tool)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte(`"result"`)) || bytes.Contains(w.Body.Bytes(), []byte(`"isError":true`)) {
		b.Fatalf("stateless tools/call: %d %s", w.Code, w.Body)
	}
}

// request sends one request and fails unless it gets a result.
func (s *session) request(b *testing.B, method, params string) int {
	s.n++
	w := post(s.h, s.id, `{"jsonrpc":"2.0","id":`+strconv.Itoa(s.n)+`,"method":"`+method+`","params":`+params+`}`)
	if w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte(`"result"`)) || bytes.Contains(w.Body.Bytes(), []byte(`"isError":true`)) {
		b.Fatalf("%s: %d %s", method, w.Code, w.Body)
	}
	return w.Body.Len()
}

// BenchmarkToolsCall measures one tools/call: decode, route, forward to the
// echo backend over loopback HTTP, encode. "direct" is the same request
// sent to the echo backend's own handler, so vmcp - direct is what the
// gateway adds (its server side, its backend client, one more HTTP hop).
func BenchmarkToolsCall(b *testing.B) {
	args := `{"name":"%s","arguments":{"text":"hello"}}`
	b.Run("handler/direct", func(b *testing.B) {
		s := newSession(b, echoserver.Handler(echoserver.New(nil)))
		b.ReportAllocs()
		cpu := cputime.Process()
		for b.Loop() {
			s.request(b, "tools/call", fmt.Sprintf(args, "echo"))
		}
		cputime.Bench(b, cpu)
	})
	b.Run("handler/vmcp", func(b *testing.B) {
		s := newSession(b, benchGateway(b, 1, 0))
		b.ReportAllocs()
		cpu := cputime.Process()
		for b.Loop() {
			s.request(b, "tools/call", fmt.Sprintf(args, "echo_echo"))
		}
		cputime.Bench(b, cpu)
	})
	// The same call in the stateless revision (2026-07-28): no session,
	// the protocol version and client capabilities in every request's
	// _meta, Mcp-Method and Mcp-Name headers.
	b.Run("handler/vmcp-stateless", func(b *testing.B) {
		h := benchGateway(b, 1, 0)
		b.ReportAllocs()
		cpu := cputime.Process()
		n := 0
		for b.Loop() {
			n++
			statelessCall(b, h, n, "echo_echo")
		}
		cputime.Bench(b, cpu)
	})
	// With request metrics, the audit log (to nowhere) and every request
	// traced (exported over OTLP/HTTP to a receiver that drops them), as
	// vmcp-load compare --observe runs it.
	b.Run("handler/vmcp-observed", func(b *testing.B) {
		s := newSession(b, observedGateway(b))
		b.ReportAllocs()
		cpu := cputime.Process()
		for b.Loop() {
			s.request(b, "tools/call", fmt.Sprintf(args, "echo_echo"))
		}
		cputime.Bench(b, cpu)
	})
	// With JWT validation (RS256, verified-token cache warm) and 20 Cedar
	// policies deciding the call, configured as vmcp-load's authenticated
	// scenario is.
	b.Run("handler/vmcp-jwt-cedar", func(b *testing.B) {
		s := newSession(b, authGateway(b))
		b.ReportAllocs()
		cpu := cputime.Process()
		for b.Loop() {
			s.request(b, "tools/call", fmt.Sprintf(args, "b00_echo"))
		}
		cputime.Bench(b, cpu)
	})
	// Through a go-sdk client and loopback HTTP on both hops, as a real
	// client sees it.
	for _, target := range []string{"direct", "vmcp"} {
		b.Run("client/"+target, func(b *testing.B) {
			var h http.Handler = echoserver.Handler(echoserver.New(nil))
			tool := "echo"
			if target == "vmcp" {
				h, tool = benchGateway(b, 1, 0), "echo_echo"
			}
			srv := httptest.NewServer(h)
			b.Cleanup(srv.Close)
			ctx := context.Background()
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench"}, nil).Connect(ctx,
				&mcp.StreamableClientTransport{Endpoint: srv.URL, MaxRetries: -1}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
			if err != nil {
				b.Fatal(err)
			}
			defer cs.Close()
			params := &mcp.CallToolParams{Name: tool, Arguments: json.RawMessage(`{"text":"hello"}`)}
			b.ReportAllocs()
			cpu := cputime.Process()
			for b.Loop() {
				if _, err := cs.CallTool(ctx, params); err != nil {
					b.Fatal(err)
				}
			}
			cputime.Bench(b, cpu)
		})
	}
}

// BenchmarkToolsList measures tools/list of 1,000 tools (20 backends × 50)
// at the handler level: the gateway answers it from its catalog.
func BenchmarkToolsList(b *testing.B) {
	b.Run("handler/direct", func(b *testing.B) {
		s := newSession(b, echoserver.Handler(echoserver.New(&echoserver.Options{Tools: 1000, NoEcho: true})))
		b.ReportAllocs()
		cpu := cputime.Process()
		for b.Loop() {
			b.SetBytes(int64(s.request(b, "tools/list", `{}`)))
		}
		cputime.Bench(b, cpu)
	})
	b.Run("handler/vmcp", func(b *testing.B) {
		s := newSession(b, benchGateway(b, 20, 50))
		b.ReportAllocs()
		cpu := cputime.Process()
		for b.Loop() {
			b.SetBytes(int64(s.request(b, "tools/list", `{}`)))
		}
		cputime.Bench(b, cpu)
	})
}

// BenchmarkInitialize measures opening (and closing) a session.
func BenchmarkInitialize(b *testing.B) {
	gw := benchGateway(b, 1, 0)
	b.ReportAllocs()
	cpu := cputime.Process()
	for b.Loop() {
		s := newSession(b, gw)
		r := httptest.NewRequest(http.MethodDelete, "/mcp", nil)
		r.Header.Set("Mcp-Session-Id", s.id)
		r.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		gw.ServeHTTP(httptest.NewRecorder(), r)
	}
	cputime.Bench(b, cpu)
}

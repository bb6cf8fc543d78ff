// Package echoserver is a fast MCP backend for benchmarks: a go-sdk server
// with an "echo" tool (and optionally many more tools with realistic
// definitions), served over streamable HTTP on loopback or over stdio.
//
// It serves both protocol eras on one endpoint, as vmcp does: requests with
// an Mcp-Protocol-Version header of 2026-07-28 or later go to a stateless
// handler, everything else to a session-based one. It depends only on the
// go-sdk, so benchmarks of any vmcp package can use it.
package echoserver

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Options configure a server. The zero value is one "echo" tool.
type Options struct {
	// Name is the server name. Default: "echo".
	Name string
	// Tools is the number of extra tools (tool_000, tool_001, …) besides
	// "echo", each with a realistic description and input schema.
	Tools int
	// NoEcho leaves out the "echo" tool (so that Tools is the whole list).
	NoEcho bool
	// Listen is the address to bind. Default: 127.0.0.1:0.
	Listen string
}

// ModernVersion is the first stateless protocol revision.
const ModernVersion = "2026-07-28"

// New returns the MCP server described by opts.
func New(opts *Options) *mcp.Server {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Name == "" {
		o.Name = "echo"
	}
	s := mcp.NewServer(&mcp.Implementation{Name: o.Name, Version: "bench"}, &mcp.ServerOptions{
		Logger:   slog.New(slog.DiscardHandler),
		PageSize: max(1000, o.Tools+1),
	})
	if !o.NoEcho {
		s.AddTool(&mcp.Tool{
			Name:        "echo",
			Description: "Returns its arguments as text.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"text":{"type":"string"}}}`),
		}, Echo)
	}
	for i := range o.Tools {
		s.AddTool(ToolDef(o.Name, i), Echo)
	}
	return s
}

// Echo is the handler of every tool: it returns the raw arguments as text.
func Echo(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(req.Params.Arguments)}}}, nil
}

// ToolDef returns the definition of extra tool i of server name: the size
// and shape of a typical real tool (a sentence of description, three
// parameters with descriptions, one required).
func ToolDef(name string, i int) *mcp.Tool {
	return &mcp.Tool{
		Name: fmt.Sprintf("tool_%03d", i),
		Description: fmt.Sprintf("Searches the %s index for documents matching a query and returns the best matches "+
			"with their titles, URLs and a short excerpt (tool %d).", name, i),
		InputSchema: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"query": map[string]any{"type": "string", "description": "What to search for, in plain words."},
				"limit": map[string]any{"type": "integer", "minimum": 1, "maximum": 100, "description": "Maximum number of results."},
				"sort":  map[string]any{"type": "string", "enum": []any{"relevance", "date", "title"}},
			},
			"required": []any{"query"},
		},
	}
}

// Handler returns an HTTP handler serving s in both eras.
func Handler(s *mcp.Server) http.Handler {
	get := func(*http.Request) *mcp.Server { return s }
	logger := slog.New(slog.DiscardHandler)
	stateful := mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{Logger: logger})
	stateless := mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{Stateless: true, Logger: logger})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get("Mcp-Protocol-Version"); v >= ModernVersion {
			stateless.ServeHTTP(w, r)
			return
		}
		stateful.ServeHTTP(w, r)
	})
}

// Server is a running HTTP echo server.
type Server struct {
	// URL is the MCP endpoint, http://127.0.0.1:PORT/mcp.
	URL  string
	srv  *http.Server
	done chan struct{}
}

// Start serves a new server on loopback until Close.
func Start(opts *Options) (*Server, error) {
	listen := "127.0.0.1:0"
	if opts != nil && opts.Listen != "" {
		listen = opts.Listen
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", Handler(New(opts)))
	s := &Server{
		URL:  "http://" + ln.Addr().String() + "/mcp",
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, Protocols: h2c()},
		done: make(chan struct{}),
	}
	go func() { _ = s.srv.Serve(ln); close(s.done) }()
	return s, nil
}

// Close stops the server, closing open streams.
func (s *Server) Close() {
	_ = s.srv.Close()
	<-s.done
}

// ServeStdio serves one session on stdin and stdout until the peer goes away
// or ctx is done.
func ServeStdio(ctx context.Context, opts *Options) error {
	return New(opts).Run(ctx, &mcp.StdioTransport{})
}

// h2c is HTTP/1.1 and cleartext HTTP/2 (prior knowledge) on one port, as
// vmcp serves them, so that HTTP/2 load clients can compare both.
func h2c() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return p
}

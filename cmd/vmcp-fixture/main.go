// Command vmcp-fixture serves the conformance fixture MCP server, the backend
// that vmcp's conformance runs put behind the gateway.
//
//	vmcp-fixture --listen 127.0.0.1:8931   streamable HTTP at http://127.0.0.1:8931/mcp
//	vmcp-fixture --stdio                    MCP over stdin and stdout
//
// With --listen, the address actually bound (useful with port 0) is printed
// to stdout as "listening on http://HOST:PORT/mcp". The command stops cleanly
// on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/testsupport/conformance"
)

// shutdownGrace bounds how long in-flight HTTP requests may take to finish
// after a signal.
const shutdownGrace = 5 * time.Second

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "vmcp-fixture:", err)
		os.Exit(1)
	}
}

// run parses the arguments and serves until a signal arrives or the stdio
// peer goes away.
func run(args []string) error {
	fs := flag.NewFlagSet("vmcp-fixture", flag.ContinueOnError)
	listen := fs.String("listen", "", "serve streamable HTTP at `host:port`, path /mcp")
	stdio := fs.Bool("stdio", false, "serve on stdin/stdout")
	verbose := fs.Bool("verbose", false, "log go-sdk activity to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*listen == "") == !*stdio {
		return errors.New("exactly one of --listen and --stdio is required")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	server := conformance.New(&conformance.Options{Logger: logger})
	if *stdio {
		return serveStdio(ctx, server)
	}
	return serveHTTP(ctx, server, *listen, logger)
}

// serveStdio serves one session on stdin/stdout.
func serveStdio(ctx context.Context, server *mcp.Server) error {
	err := server.Run(ctx, &mcp.StdioTransport{})
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// serveHTTP serves stateful streamable HTTP at /mcp on addr until ctx ends.
// An in-memory event store lets clients resume SSE streams with Last-Event-ID.
func serveHTTP(ctx context.Context, server *mcp.Server, addr string, logger *slog.Logger) error {
	handler := mcp.NewStreamableHTTPHandler(
		func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{
			EventStore: mcp.NewMemoryEventStore(nil),
			Logger:     logger,
		},
	)
	mux := http.NewServeMux()
	mux.Handle("/mcp", handler)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("listening on http://%s/mcp\n", ln.Addr())

	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// Requests inherit ctx, so open SSE streams end when a signal arrives.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}

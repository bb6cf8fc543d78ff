package frontend

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestDetachedStreamStopAndAbort: once vmcp stops, a write to a client
// that does not read gives up within stopWriteTimeout (not the 30 s of
// streamWriteTimeout, which would hold the shutdown); a stream whose
// handler failed is closed without the end of its chunked body, so that the
// client sees it break.
func TestDetachedStreamStopAndAbort(t *testing.T) {
	t.Parallel()
	t.Run("stop", func(t *testing.T) {
		server, client := net.Pipe() // unbuffered: a write waits for a reader
		defer client.Close()
		ctx, cancel := context.WithCancel(context.Background())
		s := &detachedStream{conn: server, cancel: cancel, header: map[string][]string{}}
		wrote := make(chan error, 1)
		go func() { _, err := s.Write([]byte("data: x\n\n")); wrote <- err }()
		time.Sleep(20 * time.Millisecond) // the write is blocked
		start := time.Now()
		s.stop()
		select {
		case err := <-wrote:
			if err == nil {
				t.Error("a write nobody read succeeded")
			}
		case <-time.After(stopWriteTimeout + 5*time.Second):
			t.Fatalf("a blocked write still waits %s after stop", time.Since(start))
		}
		if ctx.Err() == nil {
			t.Error("stop did not end the request")
		}
	})
	t.Run("abort", func(t *testing.T) {
		server, client := net.Pipe()
		s := &detachedStream{conn: server, cancel: func() {}, header: map[string][]string{}}
		got := make(chan string, 1)
		go func() { b, _ := io.ReadAll(client); got <- string(b) }()
		if _, err := s.Write([]byte("data: x\n\n")); err != nil {
			t.Fatal(err)
		}
		s.abort()
		s.finish()
		body := <-got
		if !strings.Contains(body, "data: x") || strings.HasSuffix(body, "0\r\n\r\n") {
			t.Errorf("an aborted stream sent %q: want its event and no end of body", body)
		}
	})
}

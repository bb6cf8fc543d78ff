package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// TestShutdownEndsDetachedStreams: a session's GET over HTTP/1.1 is served
// on a connection vmcp took from net/http, which Server.Close does not
// see; Shutdown must end it (a clean end of the chunked body) and return.
func TestShutdownEndsDetachedStreams(t *testing.T) {
	addr := vmcptest.FreeAddr(t)
	a, _ := vmcptest.New(t, fmt.Sprintf("server: {listen: %s}\nbackends: []\n", addr), nil)
	a.Start()
	vmcptest.WaitReady(t, "http://"+addr)

	sid := vmcptest.Initialize(t, addr, "{}")

	stream, _ := vmcptest.OpenStream(t, addr, sid, nil)
	if stream.StatusCode != http.StatusOK || !stream.Close {
		t.Fatalf("GET: %d, close %v: want 200 on a detached connection", stream.StatusCode, stream.Close)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, stream.Body); err != nil {
		t.Errorf("the stream after Shutdown: %v, want it ended cleanly", err)
	}
}

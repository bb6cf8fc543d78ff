package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// bigBackend answers every tools/call and resources/read with one result
// of size bytes of text, as an event stream.
func bigBackend(size int) http.Handler {
	text := bytes.Repeat([]byte("x"), size)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		body, _ := io.ReadAll(r.Body)
		_, rest, _ := bytes.Cut(body, []byte(`"id":`))
		id := string(bytes.TrimSpace(rest[:max(0, bytes.IndexAny(rest, ",}"))]))
		w.Header().Set("Mcp-Session-Id", "s")
		answer := func(result string) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, id, result)
		}
		switch method := string(jsonValue(body, `"method":`)); {
		case id == "":
			w.WriteHeader(http.StatusAccepted)
		case method == `"initialize"`:
			answer(`{"protocolVersion":"2025-11-25","capabilities":{"tools":{},"resources":{}},"serverInfo":{"name":"big","version":"1"}}`)
		case method == `"tools/list"`:
			answer(`{"tools":[{"name":"big","inputSchema":{"type":"object"}}]}`)
		case method == `"resources/list"`:
			answer(`{"resources":[{"uri":"file:///big","name":"big"}]}`)
		case method == `"resources/templates/list"`:
			answer(`{"resourceTemplates":[]}`)
		case method == `"resources/read"` || method == `"tools/call"`:
			w.Header().Set("Content-Type", "text/event-stream")
			if method == `"resources/read"` {
				fmt.Fprintf(w, `data: {"jsonrpc":"2.0","id":%s,"result":{"contents":[{"uri":"file:///big","text":"`, id)
			} else {
				fmt.Fprintf(w, `data: {"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"`, id)
			}
			_, _ = w.Write(text)
			_, _ = io.WriteString(w, "\"}]}}\n\n")
		default:
			answer(`{}`)
		}
	})
}

// jsonValue returns the value after key in a small JSON body, up to the
// next comma or brace.
func jsonValue(body []byte, key string) []byte {
	_, rest, ok := bytes.Cut(body, []byte(key))
	if !ok {
		return nil
	}
	if end := bytes.IndexAny(rest, ",}"); end >= 0 {
		rest = rest[:end]
	}
	return bytes.TrimSpace(rest)
}

// plainVMCP builds vmcp without the race detector, once, beside the
// binaries TestMain built (and removes).
var plainVMCP = sync.OnceValues(func() (string, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	out := filepath.Join(filepath.Dir(bins.vmcp), "vmcp-plain")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/vmcp")
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building vmcp without the race detector: %v\n%s", err, msg)
	}
	return out, nil
})

// memory of a process, from /proc/PID/status: resident now and at its peak.
func memory(t *testing.T, pid int) (rss, peak int64) {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	return rss, peak
}

// TestLargeResultMemory: a large result passes through a vmcp process, on
// the fast path, on the SDK's (a session that set a log level) and as a
// resource, with its memory bounded by a small multiple of the result, and
// handed back once the call is over. VMCP_BIG_RESULT_MB sets the size
// (default 32); the figures are logged.
func TestLargeResultMemory(t *testing.T) {
	setup(t)
	mb := 32
	if v, err := strconv.Atoi(os.Getenv("VMCP_BIG_RESULT_MB")); err == nil && v > 0 {
		mb = v
	}
	size := mb << 20
	be := httptest.NewServer(bigBackend(size))
	t.Cleanup(be.Close)
	// Memory is measured on vmcp as deployed: without the race detector,
	// whose shadow memory would make the figures meaningless.
	binary := bins.vmcp
	if raceBuild {
		var err error
		if binary, err = plainVMCP(); err != nil {
			t.Fatal(err)
		}
	}
	v := startBinary(t, binary, fmt.Sprintf("backends:\n- {name: big, url: %s}\nserver: {maxResultBytes: %d}\n", be.URL, size+(1<<20)))
	v.waitBackends(t, "ready", "big")
	pid := v.cmd.Process.Pid
	fast := connect(t, v.URL, legacyVersion, nil)
	relaying := connect(t, v.URL, legacyVersion, nil)
	if err := relaying.SetLoggingLevel(t.Context(), &mcp.SetLoggingLevelParams{Level: "error"}); err != nil {
		t.Fatal(err)
	}
	post := func(ctx context.Context, session, body string) int64 { // the answer read and dropped
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, v.URL, strings.NewReader(body))
		req.Header = http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json, text/event-stream"},
			"Mcp-Session-Id": {session}, "Mcp-Protocol-Version": {legacyVersion}}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	// The bounds: the fast path holds the result about twice (read, and
	// written to the client) and its garbage; the go-sdk decodes and
	// encodes the result several times over on its path, and how much of
	// that garbage is still there at the peak depends on when the collector
	// runs (GOGC=400): 8–18× measured.
	for _, tc := range []struct {
		name, session, body string
		bound               int64
	}{
		{"tools/call, fast path", fast.ID(), `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"big_big"}}`, 8},
		{"tools/call, SDK path", relaying.ID(), `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"big_big"}}`, 24},
		{"resources/read", fast.ID(), `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///big"}}`, 24},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			before, _ := memory(t, pid)
			// Reset the peak to the present (Linux: clear_refs 5).
			if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
				t.Fatalf("resetting the peak RSS: %v", err)
			}
			if n := post(ctx, tc.session, tc.body); n < int64(size) {
				t.Fatalf("%d bytes answered, want over %d", n, size)
			}
			during, peak := memory(t, pid)
			var after int64
			released := "not within 15 s"
			for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if after, _ = memory(t, pid); after < before+int64(size)/2 {
					released = "yes"
					break
				}
			}
			t.Logf("%d MiB result: vmcp's RSS %.1f MiB before, peak %.1f MiB (+%.1f× the result), %.1f MiB when the call returned, %.1f MiB after (released: %s)",
				mb, mib(before), mib(peak), float64(peak-before)/float64(size), mib(during), mib(after), released)
			if grew := peak - before; grew > tc.bound*int64(size) {
				t.Errorf("vmcp's RSS grew by %.1f× the result during the call; want at most %d×", float64(grew)/float64(size), tc.bound)
			}
			if released != "yes" {
				t.Errorf("vmcp's RSS stayed %.1f MiB above what it was before the call", mib(after-before))
			}
		})
	}
}

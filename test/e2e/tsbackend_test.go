package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// startTSBackend serves js/ts-backend.mjs (the TypeScript SDK's low-level
// Server) on a free port, closing its standalone streams every closeEvery
// milliseconds, and returns its process and port.
func startTSBackend(t *testing.T, tl *tools, name string, closeEvery int) (*proc, int) {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(tl.node, filepath.Join(tl.js, "ts-backend.mjs"), strconv.Itoa(port))
	cmd.Env = childEnv("CLOSE_EVERY_MS=" + strconv.Itoa(closeEvery))
	p, _ := startProc(t, name, cmd, func(line string) (string, bool) { return "", strings.HasPrefix(line, "listening on") })
	return p, port
}

// TestTypeScriptBackends: backends that work directly work through vmcp.
// A server written with the TypeScript SDK's low-level Server that
//   - declares resources but answers resources/templates/list with -32601,
//   - closes its calls' streams before answering, for the client to poll
//     (SEP-1699),
//   - and closes its standalone GET streams every 300 ms (as a proxy's read
//     timeout would),
//
// is ready, its poll tool answers on both of vmcp's paths, it stays ready
// on its first connection, and a list change it tells on a reopened stream
// reaches the client. The same server behind a plain Node proxy, which
// holds back the GET stream's headers until its first event, is connected.
func TestTypeScriptBackends(t *testing.T) {
	setup(t)
	tl := needTools(t)
	ts, port := startTSBackend(t, tl, "ts-backend", 300)
	_, quietPort := startTSBackend(t, tl, "ts-backend-quiet", 3_600_000)
	proxyPort := freePort(t)
	proxy := exec.Command(tl.node, filepath.Join(tl.js, "hold-proxy.mjs"), strconv.Itoa(proxyPort), strconv.Itoa(quietPort))
	proxy.Env = childEnv()
	startProc(t, "hold-proxy", proxy, func(line string) (string, bool) { return "", strings.HasPrefix(line, "listening on") })
	v := startVMCP(t, fmt.Sprintf(`backends:
- {name: ts, url: "http://127.0.0.1:%d/mcp"}
- {name: held, url: "http://127.0.0.1:%d/mcp"}
`, port, proxyPort))
	v.waitBackends(t, "ready", "ts", "held")

	fast := connect(t, v.URL, legacyVersion, nil)
	relaying := connect(t, v.URL, legacyVersion, nil)
	if err := relaying.SetLoggingLevel(t.Context(), &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	for name, cs := range map[string]*mcp.ClientSession{"fast path": fast, "SDK path": relaying} {
		if got := callOK(t, cs, "ts_poll", map[string]any{}); got != "polled" {
			t.Errorf("%s: ts_poll = %q, want polled", name, got)
		}
	}
	res, err := fast.ListResources(t.Context(), nil)
	if err != nil || len(res.Resources) != 2 {
		t.Errorf("resources: %v %v; want both backends' readme", res, err)
	}

	eventually(t, waitTimeout, "the ts backend closed its standalone streams 5 times", func() (bool, string) {
		return ts.logged("standalone closed 5"), ""
	})
	callOK(t, fast, "ts_grow", map[string]any{})
	eventually(t, waitTimeout, "ts_grown listed", func() (bool, string) {
		tools, err := fast.ListTools(t.Context(), nil)
		if err != nil {
			return false, err.Error()
		}
		var names []string
		for _, tool := range tools.Tools {
			names = append(names, tool.Name)
		}
		return slices.Contains(names, "ts_grown"), strings.Join(names, " ")
	})
	h := v.health(t)
	for _, name := range []string{"ts", "held"} {
		if b := h.backend(name); b.State != "ready" || b.Restarts != 0 {
			t.Errorf("backend %s: %+v; want ready on its first connection", name, b)
		}
	}
}

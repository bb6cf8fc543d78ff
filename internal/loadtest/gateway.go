package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/vmcp-dev/vmcp/internal/app"
	"github.com/vmcp-dev/vmcp/internal/config"
)

// BackendRef is one backend of a generated gateway configuration: a URL, or
// a stdio command.
type BackendRef struct {
	Name    string
	URL     string
	Command string
	Env     map[string]string
}

// GatewayConfig returns the YAML of a gateway fronting backends, with the
// default aggregation (prefix strategy) and anonymous access. If template is
// not empty it is used instead: ${BACKEND_URL} (the first backend's URL) and
// ${BACKEND_URL_<i>} are replaced, so that a configuration with incoming
// authentication and authorization can be benchmarked against the same
// in-process backend.
func GatewayConfig(backends []BackendRef, template string) string {
	if template != "" {
		for i := len(backends) - 1; i >= 0; i-- {
			template = strings.ReplaceAll(template, "${BACKEND_URL_"+strconv.Itoa(i)+"}", backends[i].URL)
		}
		if len(backends) > 0 {
			template = strings.ReplaceAll(template, "${BACKEND_URL}", backends[0].URL)
		}
		return template
	}
	var b strings.Builder
	b.WriteString("name: vmcp-load\nserver:\n  listen: 127.0.0.1:0\n  logLevel: warn\nbackends:\n")
	for _, r := range backends {
		fmt.Fprintf(&b, "  - name: %s\n", r.Name)
		if r.URL != "" {
			fmt.Fprintf(&b, "    url: %s\n", r.URL)
			continue
		}
		fmt.Fprintf(&b, "    command: %s\n", quote(r.Command))
		if len(r.Env) > 0 {
			b.WriteString("    env:\n")
			for k, v := range r.Env {
				fmt.Fprintf(&b, "      %s: %s\n", k, quote(v))
			}
		}
	}
	return b.String()
}

func quote(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// Gateway is an in-process vmcp.
type Gateway struct {
	App *app.App
	// URL is the MCP endpoint; Base is the URL without the path.
	URL, Base string
}

// StartGateway starts an in-process vmcp for the configuration YAML and
// waits until /readyz answers 200. Its goroutines carry the pprof label
// role=gateway, so that a CPU profile of a run can be split by role.
func StartGateway(ctx context.Context, yaml string) (*Gateway, error) {
	return StartGatewayWith(ctx, yaml, nil)
}

// StartGatewayWith is [StartGateway] with modify applied to the parsed
// configuration (nil: none).
func StartGatewayWith(ctx context.Context, yaml string, modify func(*config.Config)) (*Gateway, error) {
	cfg, err := config.Parse([]byte(yaml), "<vmcp-load>")
	if err != nil {
		return nil, err
	}
	if modify != nil {
		modify(cfg)
	}
	a, err := app.New(cfg, &app.Options{Listen: "127.0.0.1:0"})
	if err != nil {
		return nil, err
	}
	pprof.Do(ctx, pprof.Labels("role", "gateway"), func(context.Context) { a.Start() })
	g := &Gateway{App: a, URL: a.URL(), Base: strings.TrimSuffix(a.URL(), "/mcp")}
	if err := WaitReady(ctx, g.Base, 30*time.Second); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// Close shuts the gateway down.
func (g *Gateway) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = g.App.Shutdown(ctx)
}

var readyClient = &http.Client{Timeout: 2 * time.Second}

// WaitReady polls base+"/readyz" every 2ms until it answers 200.
func WaitReady(ctx context.Context, base string, timeout time.Duration) error {
	_, err := pollReady(ctx, base, timeout, false)
	return err
}

// pollReady polls /readyz until it answers 200 (and, if all, until every
// backend is ready) and returns the time it took.
func pollReady(ctx context.Context, base string, timeout time.Duration, all bool) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		resp, err := readyClient.Get(base + "/readyz")
		if err == nil {
			var h struct {
				Ready    bool `json:"ready"`
				Backends []struct {
					State string `json:"state"`
				} `json:"backends"`
			}
			err = json.NewDecoder(resp.Body).Decode(&h)
			_ = resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				n := 0
				for _, b := range h.Backends {
					if b.State == "ready" {
						n++
					}
				}
				if !all || n == len(h.Backends) {
					return time.Since(start), nil
				}
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s/readyz not ready within %s (last: %s)", base, timeout, last)
}

// selfExe is the executable to re-run as a child process.
func selfExe() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", errors.New("cannot find the running executable: " + err.Error())
	}
	return exe, nil
}

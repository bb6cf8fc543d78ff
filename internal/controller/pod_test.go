package controller_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vmcp-dev/vmcp/internal/testsupport/vmcptest"
)

// vmcpBinary builds cmd/vmcp once (with the race detector when the tests
// run with it) and returns its path.
var vmcpBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "vmcp-controller-test-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "vmcp")
	args := []string{"build", "-o", bin}
	if raceBuild {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/vmcp")...)
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building vmcp: %v\n%s", err, out)
	}
	return bin, nil
})

// runPod plays the kubelet and the Deployment controller for the
// Deployment name: it writes the pod's volumes (the items of its ConfigMap
// and Secret volumes) under a directory, runs the container (the vmcp
// binary built from this tree) with the container's args and environment,
// every path under a mount moved under that directory and the listen
// address made a free loopback port, waits until the readiness probe's
// path answers 200, and records the Deployment as available. It returns
// the pod's base URL. The process is stopped when the test ends.
func runPod(t *testing.T, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	bin, err := vmcpBinary()
	if err != nil {
		t.Fatal(err)
	}
	d := deployment(t, ns, name)
	pod := d.Spec.Template.Spec
	root := t.TempDir()
	mounts := map[string]string{} // volume name -> mount path
	c := pod.Containers[0]
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	for _, v := range pod.Volumes {
		dir := filepath.Join(root, mounts[v.Name])
		var data map[string][]byte
		var items []corev1.KeyToPath
		mode := os.FileMode(0o644) // the kubelet's default
		switch {
		case v.ConfigMap != nil:
			var cm corev1.ConfigMap
			if err := env.client.Get(ctx, key(ns, v.ConfigMap.Name), &cm); err != nil {
				t.Fatalf("volume %s: %v", v.Name, err)
			}
			data = map[string][]byte{}
			for k, s := range cm.Data {
				data[k] = []byte(s)
			}
			items = v.ConfigMap.Items
		case v.Secret != nil:
			var s corev1.Secret
			if err := env.client.Get(ctx, key(ns, v.Secret.SecretName), &s); err != nil {
				t.Fatalf("volume %s: %v (the pod would not start)", v.Name, err)
			}
			data, items = s.Data, v.Secret.Items
			if m := v.Secret.DefaultMode; m != nil {
				mode = os.FileMode(*m)
			}
		default:
			t.Fatalf("volume %s: the test kubelet knows ConfigMap and Secret volumes only", v.Name)
		}
		for _, it := range items {
			b, ok := data[it.Key]
			if !ok {
				t.Fatalf("volume %s: no key %s (the pod would not start)", v.Name, it.Key)
			}
			p := filepath.Join(dir, it.Path)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	inPod := func(s string) string {
		for _, mp := range mounts {
			if strings.HasPrefix(s, mp+"/") || s == mp || strings.HasPrefix(mp, s+"/") {
				return filepath.Join(root, s)
			}
		}
		return s
	}
	addr := vmcptest.FreeAddr(t)
	args := make([]string, 0, len(c.Args)+2)
	for _, a := range c.Args {
		args = append(args, inPod(a))
	}
	args = append(args, "--listen", addr)
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for _, e := range c.Env {
		cmd.Env = append(cmd.Env, e.Name+"="+inPod(e.Value))
	}
	cmd.Stdout, cmd.Stderr = testWriter{t, name}, testWriter{t, name}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	base := "http://" + addr
	probe := base + c.ReadinessProbe.HTTPGet.Path
	eventually(t, "the pod's readiness probe "+probe, func() (bool, string) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("vmcp exited: %v", err)
		default:
		}
		resp, err := http.Get(probe)
		if err != nil {
			return false, err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, body)
	})
	before := d.DeepCopy()
	d.Status.ObservedGeneration = d.Generation
	d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas = 1, 1, 1, 1
	if err := env.client.Status().Patch(ctx, d, client.MergeFrom(before)); err != nil {
		t.Fatalf("recording the Deployment as available: %v", err)
	}
	return base
}

// testWriter logs a process's output, a write at a time.
type testWriter struct {
	t    *testing.T
	name string
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func httpGet(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// startGoBackend serves a go-sdk MCP server with one tool, hello, over
// streamable HTTP on loopback, and returns its endpoint.
func startGoBackend(t *testing.T) string {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "hello", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "hello", Description: "says hello"}, func(ctx context.Context, _ *mcp.CallToolRequest, in struct {
		Name string `json:"name"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "hello " + in.Name}}}, nil, nil
	})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp"
}

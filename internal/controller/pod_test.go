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
// Deployment name: it starts a pod (startPod) and returns its base URL.
func runPod(t *testing.T, ns, name string) string {
	t.Helper()
	return startPod(t, ns, name).base
}

// testPod is a pod the test kubelet runs.
type testPod struct {
	base string // http://<its address>
	stop func() // stops it (SIGTERM), and counts it out of the Deployment's status
}

// claimDirs are the test kubelet's volumes for PersistentVolumeClaims, by
// namespace/claim: a claim's files outlive the pods that mount it.
var claimDirs sync.Map

// claimDir returns the directory holding a claim's files (made on first
// use, removed when the test ends), and records the claim as bound, as the
// volume controller would.
func claimDir(t *testing.T, ns, claim string) string {
	t.Helper()
	var pvc corev1.PersistentVolumeClaim
	if err := env.client.Get(context.Background(), key(ns, claim), &pvc); err != nil {
		t.Fatalf("PersistentVolumeClaim %s: %v (the pod would not start)", claim, err)
	}
	if pvc.Status.Phase != corev1.ClaimBound {
		before := pvc.DeepCopy()
		pvc.Status.Phase = corev1.ClaimBound
		if err := env.client.Status().Patch(context.Background(), &pvc, client.MergeFrom(before)); err != nil {
			t.Fatalf("binding PersistentVolumeClaim %s: %v", claim, err)
		}
	}
	dir := filepath.Join(t.TempDir(), "pvc-"+claim)
	got, loaded := claimDirs.LoadOrStore(ns+"/"+claim, dir)
	if !loaded {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { claimDirs.Delete(ns + "/" + claim) })
	}
	return got.(string)
}

// startPod plays the kubelet and the Deployment controller for the
// Deployment name: it writes the pod's volumes (the items of its ConfigMap
// and Secret volumes; a directory per PersistentVolumeClaim, kept across
// pods) under a directory, runs the container (the vmcp binary built from
// this tree) with the container's args and environment, every path under a
// mount moved to where the test put it and the listen address made a free
// loopback port, waits until the readiness probe's path answers 200, and
// counts the pod available in the Deployment's status. HOME is an empty
// directory that must stay empty: a pod's root filesystem is read-only.
// The process is stopped when the test ends, if not before.
func startPod(t *testing.T, ns, name string) *testPod {
	t.Helper()
	ctx := context.Background()
	bin, err := vmcpBinary()
	if err != nil {
		t.Fatal(err)
	}
	d := deployment(t, ns, name)
	pod := d.Spec.Template.Spec
	root := t.TempDir()
	c := pod.Containers[0]
	mountPath := map[string]string{} // volume name -> mount path
	for _, m := range c.VolumeMounts {
		mountPath[m.Name] = m.MountPath
	}
	hostDir := map[string]string{} // mount path -> where the test put the volume
	for _, v := range pod.Volumes {
		mp := mountPath[v.Name]
		dir := filepath.Join(root, mp)
		hostDir[mp] = dir
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
		case v.PersistentVolumeClaim != nil:
			hostDir[mp] = claimDir(t, ns, v.PersistentVolumeClaim.ClaimName)
			continue
		default:
			t.Fatalf("volume %s: the test kubelet knows ConfigMap, Secret and PersistentVolumeClaim volumes only", v.Name)
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
		for mp, dir := range hostDir {
			if rest, ok := strings.CutPrefix(s, mp); ok && (rest == "" || strings.HasPrefix(rest, "/")) {
				return dir + rest
			}
		}
		for mp := range hostDir {
			if strings.HasPrefix(mp, s+"/") { // a parent of mounts, such as VMCP_SECRETS_DIR
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
	home := filepath.Join(root, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
	for _, e := range c.Env {
		cmd.Env = append(cmd.Env, e.Name+"="+inPod(e.Value))
	}
	cmd.Stdout, cmd.Stderr = testWriter{t, name}, testWriter{t, name}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			if files, _ := os.ReadDir(home); len(files) > 0 {
				t.Errorf("vmcp wrote %s under HOME, on what is a pod's read-only root filesystem", files[0].Name())
			}
			countAvailable(t, ns, name, -1)
		})
	}
	t.Cleanup(stop)
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
	countAvailable(t, ns, name, +1)
	return &testPod{base: base, stop: stop}
}

// countAvailable adds n available pods to the Deployment's status, as the
// Deployment controller would count them.
func countAvailable(t *testing.T, ns, name string, n int32) {
	t.Helper()
	d := deployment(t, ns, name)
	before := d.DeepCopy()
	avail := max(d.Status.AvailableReplicas+n, 0)
	d.Status.ObservedGeneration = d.Generation
	d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas = avail, avail, avail, avail
	if err := env.client.Status().Patch(context.Background(), d, client.MergeFrom(before)); err != nil {
		t.Errorf("recording %d available pods of Deployment %s: %v", avail, name, err)
	}
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

// Package image tests what the container image holds without a container
// engine: the Dockerfile's build stage is replayed on the files it copies,
// and the binaries it produces are checked and run as the image runs them
// (statically linked, as the distroless nonroot user).
package image

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// buildStage is what the Dockerfile's build stage does.
type buildStage struct {
	copies []string // sources of its COPY lines, relative to the repository
	run    string   // its go build command
	user   string   // the final stage's USER
	entry  string   // the final stage's ENTRYPOINT
}

func readDockerfile(t *testing.T, path string) buildStage {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st buildStage
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if n := len(lines); n > 0 && strings.HasSuffix(lines[n-1], `\`) {
			lines[n-1] = strings.TrimSuffix(lines[n-1], `\`) + " " + line
			continue
		}
		lines = append(lines, line)
	}
	for _, line := range lines {
		f := strings.Fields(line)
		switch {
		case f[0] == "COPY" && !strings.HasPrefix(f[1], "--from"):
			st.copies = append(st.copies, f[1:len(f)-1]...)
		case f[0] == "RUN" && strings.Contains(line, "go build"):
			st.run = strings.TrimPrefix(line, "RUN ")
		case f[0] == "USER":
			st.user = f[1]
		case f[0] == "ENTRYPOINT":
			st.entry = strings.Trim(strings.TrimPrefix(line, "ENTRYPOINT "), `[]"`)
		}
	}
	if len(st.copies) == 0 || st.run == "" || st.user == "" || st.entry == "" {
		t.Fatalf("Dockerfile: build stage not understood: %+v", st)
	}
	return st
}

// TestImageBinaries builds the image's binaries as its Dockerfile does,
// from only the files it copies, and runs the gateway's default job as
// the image's user.
func TestImageBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries (-short)")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	st := readDockerfile(t, filepath.Join(root, "Dockerfile"))

	// The build context holds what the COPY lines copy, nothing else.
	work, err := os.MkdirTemp("", "vmcp-image-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	src := filepath.Join(work, "src")
	for _, c := range st.copies {
		from := filepath.Join(root, filepath.Clean(c))
		fi, err := os.Stat(from)
		if err != nil {
			t.Fatalf("Dockerfile copies %s: %v", c, err)
		}
		to := filepath.Join(src, filepath.Clean(c))
		if fi.IsDir() {
			err = os.CopyFS(to, os.DirFS(from))
		} else {
			err = copyFile(from, to)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(work, "out")
	const version = "9.9.9-imagetest"
	cmd := exec.Command("bash", "-c", strings.ReplaceAll(st.run, "/out/", out+"/"))
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "VERSION="+version)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the Dockerfile's build, %s: %v\n%s", cmd.Args, err, b)
	}

	// distroless/static has no C library: the binaries must need none.
	for _, name := range []string{"vmcp", "vmcp-operator"} {
		f, err := elf.Open(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		libs, _ := f.ImportedLibraries()
		interp := slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
		f.Close()
		if interp || len(libs) > 0 {
			t.Errorf("%s is dynamically linked (interpreter %v, libraries %q)", name, interp, libs)
		}
	}
	if filepath.Base(st.entry) != "vmcp" {
		t.Fatalf("entrypoint %q is not vmcp", st.entry)
	}

	// The image's user, as the image sets it (uid:gid), when this test may
	// take it on; its home is the only directory it may write.
	var cred *syscall.Credential
	home := filepath.Join(work, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		uid, gid, ok := strings.Cut(st.user, ":")
		u, err1 := strconv.ParseUint(uid, 10, 32)
		g, err2 := strconv.ParseUint(gid, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("USER %q is not uid:gid", st.user)
		}
		cred = &syscall.Credential{Uid: uint32(u), Gid: uint32(g)}
		for _, dir := range []string{work, out} {
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chown(home, int(u), int(g)); err != nil {
			t.Fatal(err)
		}
	}
	image := func(ctx context.Context, args ...string) *exec.Cmd {
		c := exec.CommandContext(ctx, filepath.Join(out, "vmcp"), args...)
		c.Env = []string{"HOME=" + home, "PATH=/usr/local/bin"}
		c.Dir = home
		c.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return c
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := image(ctx, "version").Output()
	if err != nil || strings.TrimSpace(string(b)) != "vmcp "+version {
		t.Errorf("vmcp version: %q, %v; want the build's VERSION", b, err)
	}
	b, err = exec.CommandContext(ctx, filepath.Join(out, "vmcp-operator"), "--help").CombinedOutput()
	if !strings.Contains(string(b), "leader-elect") {
		t.Errorf("vmcp-operator --help: %v\n%s", err, b)
	}

	// The gateway's default job (the README's first command), with its
	// built-in stdio backends (the binary itself).
	serve := image(ctx, "serve", "--listen", "127.0.0.1:0")
	stdout, err := serve.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	serve.Stderr = &stderr
	serve.Cancel = func() error { return serve.Process.Signal(syscall.SIGTERM) }
	serve.WaitDelay = 30 * time.Second
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	defer func() {
		if !exited {
			_ = serve.Process.Kill()
			_ = serve.Wait()
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	_, url, found := strings.Cut(strings.TrimSpace(line), " on ")
	if err != nil || !found {
		t.Fatalf("vmcp serve printed %q (%v); stderr:\n%s", line, err, stderr.String())
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "image-test"}, nil).Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, nil)
	if err != nil {
		t.Fatalf("connecting to %s: %v; stderr:\n%s", url, err, stderr.String())
	}
	// The stdio backends start after the endpoint does: their tools show
	// once they are ready.
	var tools []string
	for {
		tools = tools[:0]
		for tool, err := range cs.Tools(ctx, nil) {
			if err != nil {
				t.Fatal(err)
			}
			tools = append(tools, tool.Name)
		}
		slices.Sort(tools)
		if len(tools) >= 3 || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cs.Close()
	if want := []string{"docs_search", "notes_add_note", "notes_search"}; !slices.Equal(tools, want) {
		t.Errorf("tools %q, want the demo's %q; stderr:\n%s", tools, want, stderr.String())
	}
	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = serve.Wait()
	exited = true
	if err != nil {
		t.Errorf("vmcp serve after SIGTERM: %v; stderr:\n%s", err, stderr.String())
	}
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o644)
}

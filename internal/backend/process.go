package backend

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// processTransport runs a stdio backend: the child's standard input and
// output carry newline-delimited JSON-RPC (the go-sdk's IOTransport, so
// that a message may be as large as the result size limit; its
// CommandTransport fixes 16 MiB). Closing the connection closes the
// child's standard input, then sends SIGTERM if it has not exited after
// terminate, then SIGKILL (as the go-sdk's CommandTransport does), and
// then kills the rest of its process group (see isolate).
type processTransport struct {
	cmd       *exec.Cmd
	terminate time.Duration
	maxLine   int
}

func (t *processTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	stdout, err := t.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := t.cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := t.cmd.Start(); err != nil {
		return nil, err
	}
	child := &childInput{WriteCloser: stdin, cmd: t.cmd, terminate: t.terminate}
	// The output is not closed by the connection: the child ends it.
	return (&mcp.IOTransport{Reader: io.NopCloser(stdout), Writer: child, MaxLineLength: t.maxLine}).Connect(ctx)
}

// childInput is a child's standard input; closing it stops the child.
type childInput struct {
	io.WriteCloser
	cmd       *exec.Cmd
	terminate time.Duration
}

func (c *childInput) Close() error {
	err := c.WriteCloser.Close()
	exited := make(chan error, 1)
	go func() { exited <- c.cmd.Wait() }()
	wait := func() (error, bool) {
		select {
		case err := <-exited:
			return err, true
		case <-time.After(c.terminate):
			return nil, false
		}
	}
	if werr, ok := wait(); ok {
		killGroup(c.cmd)
		return werr
	}
	if c.cmd.Process.Signal(syscall.SIGTERM) == nil {
		if werr, ok := wait(); ok {
			killGroup(c.cmd)
			return werr
		}
	}
	_ = c.cmd.Process.Kill()
	killGroup(c.cmd)
	if werr, ok := wait(); ok {
		return werr
	}
	if err == nil {
		err = fmt.Errorf("the child process (pid %d) did not exit", c.cmd.Process.Pid)
	}
	return err
}

package backend

import (
	"context"
	"os/exec"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// isolate puts the child in its own process group, so that a terminal's
// Ctrl-C reaches vmcp only (vmcp stops its children itself) and the whole
// group (npx and the node it starts, say) can be stopped together; the child
// is killed if vmcp dies.
func isolate(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// processTransport is a command transport whose Close also stops whatever
// the child started.
type processTransport struct {
	mcp.CommandTransport
}

func (t *processTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := t.CommandTransport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &processConn{Connection: c, cmd: t.Command}, nil
}

type processConn struct {
	mcp.Connection
	cmd *exec.Cmd
}

func (c *processConn) Close() error {
	err := c.Connection.Close()
	if p := c.cmd.Process; p != nil {
		_ = syscall.Kill(-p.Pid, syscall.SIGKILL) // the rest of the group, if any
	}
	return err
}

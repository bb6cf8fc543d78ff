package backend

import (
	"os/exec"
	"syscall"
)

// isolate puts the child in its own process group, so that a terminal's
// Ctrl-C reaches vmcp only (vmcp stops its children itself) and the whole
// group (npx and the node it starts, say) can be stopped together; the child
// is killed if vmcp dies.
func isolate(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills what is left of the child's process group.
func killGroup(cmd *exec.Cmd) {
	if p := cmd.Process; p != nil {
		_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	}
}

//go:build !linux

package backend

import (
	"os/exec"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func isolate(*exec.Cmd) {}

type processTransport struct {
	mcp.CommandTransport
}

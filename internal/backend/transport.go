package backend

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// transport returns a fresh MCP transport for the backend. For stdio it
// prepares (but does not start) the child process.
func (b *Backend) transport() (mcp.Transport, error) {
	switch b.spec.Transport {
	case StreamableHTTP:
		return &mcp.StreamableClientTransport{Endpoint: b.spec.URL, HTTPClient: b.set.opts.HTTPClient, MaxRetries: -1}, nil
	case SSE:
		return &mcp.SSEClientTransport{Endpoint: b.spec.URL, HTTPClient: b.set.opts.HTTPClient}, nil
	case Stdio:
		cmd := exec.Command(b.spec.Command, b.spec.Args...)
		cmd.Dir = b.spec.Cwd
		cmd.Env = os.Environ()
		keys := make([]string, 0, len(b.spec.Env))
		for k := range b.spec.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			cmd.Env = append(cmd.Env, k+"="+b.spec.Env[k])
		}
		cmd.Stderr = &lineLogger{logger: b.logger}
		isolate(cmd)
		return &processTransport{CommandTransport: mcp.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}}, nil
	}
	return nil, fmt.Errorf("unknown transport %q", b.spec.Transport)
}

// lineLogger writes a child's stderr to the log, a record per line.
type lineLogger struct {
	logger *slog.Logger
	mu     sync.Mutex // guards buf
	buf    []byte
}

const maxLogLine = 4096

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			if len(l.buf) > maxLogLine {
				l.emit(l.buf)
				l.buf = l.buf[:0]
			}
			return len(p), nil
		}
		l.emit(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
}

func (l *lineLogger) emit(line []byte) {
	line = bytes.TrimRight(line, "\r")
	if len(line) > maxLogLine {
		line = line[:maxLogLine]
	}
	if len(line) > 0 {
		l.logger.Info("stderr", "line", string(line))
	}
}

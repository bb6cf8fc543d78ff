// Command vmcp is a virtual MCP gateway: one MCP endpoint in front of many
// MCP servers.
//
//	vmcp serve [--config FILE] [--listen ADDR] [--state-dir DIR]
//	vmcp validate --config FILE
//	vmcp client tools|call ...
//	vmcp version
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmcp-dev/vmcp/internal/app"
	"github.com/vmcp-dev/vmcp/internal/config"
	"github.com/vmcp-dev/vmcp/internal/demo"
	"github.com/vmcp-dev/vmcp/internal/gctune"
)

//go:embed default.yaml
var defaultConfig []byte

const usage = `vmcp - one MCP endpoint in front of many MCP servers

Usage:
  vmcp serve [--config FILE] [--listen ADDR] [--state-dir DIR]
                                               run the gateway (no config: a built-in demo)
  vmcp validate --config FILE                  check a configuration file
  vmcp client tools [--url URL]                list the tools of an MCP endpoint
  vmcp client call TOOL [JSON] [--url URL]     call a tool with JSON arguments
  vmcp authz explain --config FILE --identity ID.json --action A --resource NAME
                                               explain a policy decision
  vmcp authz test CASES.yaml                   run policy test cases
  vmcp version                                 print the version
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "vmcp:", err)
		var ce config.Errors
		var iv invalid
		if errors.As(err, &ce) || errors.As(err, &iv) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// invalid marks an error in what the user wrote (exit status 2).
type invalid struct{ error }

func (e invalid) Unwrap() error { return e.error }

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "validate":
		return validate(args[1:], stdout)
	case "client":
		return client(args[1:], stdout)
	case "authz":
		return authzCmd(args[1:], stdout)
	case "version", "--version":
		fmt.Fprintln(stdout, "vmcp", app.Version)
		return nil
	case "demo-server":
		if len(args) != 2 {
			return errors.New("usage: vmcp demo-server NAME")
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return demo.Run(ctx, args[1], app.Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// loadConfig reads FILE, or the embedded demo configuration if file is "".
func loadConfig(file string) (*config.Config, error) {
	if file != "" {
		return config.Load(file)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cfg, err := config.Parse(defaultConfig, "<builtin>")
	if err != nil {
		return nil, err
	}
	for i := range cfg.Backends {
		if cfg.Backends[i].Command == "{self}" {
			cfg.Backends[i].Command = self
		}
	}
	return cfg, nil
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Server.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Server.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	file := fs.String("config", "", "configuration file (default: the built-in demo)")
	listen := fs.String("listen", "", "address to listen on (default: server.listen, 127.0.0.1:4483)")
	stateDir := fs.String("state-dir", "", "directory of the embedded store (default: storage.stateDir, else $XDG_STATE_HOME/vmcp)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*file)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	if tuned := gctune.Tune(os.Getenv); tuned != "" {
		logger.Debug("garbage collector tuned (GOGC and GOMEMLIMIT in the environment win)", "settings", tuned)
	}
	if *stateDir != "" && cfg.Storage.Type != config.StorageEmbedded {
		return fmt.Errorf("--state-dir is for the embedded store; storage.type is %s", cfg.Storage.Type)
	}
	a, err := app.New(cfg, &app.Options{Logger: logger, Listen: *listen, StateDir: *stateDir})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a.Start()
	url := a.URL()
	fmt.Fprintf(stdout, "vmcp %s serving %q with %d backends on %s\n", app.Version, cfg.Name, len(cfg.Backends), url)
	if *file == "" {
		fmt.Fprintf(stdout, "try it: vmcp client call docs_search '{\"query\":\"conflict\"}' --url %s\n", url)
	} else {
		fmt.Fprintf(stdout, "try it: vmcp client tools --url %s\n", url)
	}
	<-ctx.Done()
	stop() // a second signal kills at once
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout.D())
	defer cancel()
	return a.Shutdown(shutdownCtx)
}

func validate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	file := fs.String("config", "", "configuration file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("validate needs --config FILE")
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return err
	}
	if err := app.Validate(cfg); err != nil {
		return invalid{err}
	}
	fmt.Fprintf(stdout, "%s: valid (%d backends, conflict resolution %s)\n", *file, len(cfg.Backends), cfg.Config.Aggregation.ConflictResolution)
	for _, n := range cfg.Notes() {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	return nil
}

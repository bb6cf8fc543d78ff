package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vmcp-dev/vmcp/internal/app"
)

// client is a small MCP client to try a gateway from the command line.
func client(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: vmcp client tools|call [flags]")
	}
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:4483/mcp", "MCP endpoint")
	cmd, rest := args[0], args[1:]
	var positional []string
	for len(rest) > 0 { // flags may come after the positional arguments
		if err := fs.Parse(rest); err != nil {
			return err
		}
		rest = fs.Args()
		if len(rest) > 0 {
			positional, rest = append(positional, rest[0]), rest[1:]
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "vmcp-client", Version: app.Version}, nil)
	session, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: *url}, nil)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", *url, err)
	}
	defer session.Close()
	switch cmd {
	case "tools":
		n := 0
		for t, err := range session.Tools(ctx, nil) {
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%-32s %s\n", t.Name, t.Description)
			n++
		}
		if n == 0 {
			return fmt.Errorf("%s lists no tools (its backends may be down or offer none, or policies hide them from this caller)", *url)
		}
		return nil
	case "call":
		if len(positional) < 1 || len(positional) > 2 {
			return errors.New("usage: vmcp client call TOOL [JSON-ARGUMENTS] [--url URL]")
		}
		params := &mcp.CallToolParams{Name: positional[0]}
		if len(positional) == 2 {
			params.Arguments = json.RawMessage(positional[1])
			if !json.Valid(params.Arguments.(json.RawMessage)) {
				return errors.New("arguments are not valid JSON")
			}
		}
		res, err := session.CallTool(ctx, params)
		if err != nil {
			return err
		}
		out, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintln(stdout, string(out))
		if res.IsError {
			return errors.New("the tool reported an error")
		}
		return nil
	}
	return fmt.Errorf("unknown client command %q", cmd)
}

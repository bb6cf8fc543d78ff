# vmcp: one MCP endpoint in front of many MCP servers.
SHELL := /bin/bash
GO ?= go
export GOTOOLCHAIN := local

.PHONY: run test test-unit tools vet bench build

build:
	$(GO) build -o bin/vmcp ./cmd/vmcp

## run: the gateway on its built-in demo (two stdio backends) at 127.0.0.1:4483/mcp
run:
	$(GO) run ./cmd/vmcp serve

## tools: install the third-party parts the tests use (Node 22, npm MCP packages, Hydra into ~/.cache/vmcp-tools; Debian chromium)
tools:
	scripts/tools.sh all >/dev/null

## test: everything, end-to-end tests against real parts included
test: tools vet
	eval "$$(scripts/tools.sh env)" && VMCP_E2E=1 $(GO) test -race -count=1 -timeout 30m ./...

## test-unit: the fast tests only (no external tools)
test-unit:
	$(GO) test -short -count=1 ./...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

bench:
	scripts/bench.sh

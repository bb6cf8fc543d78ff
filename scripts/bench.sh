#!/usr/bin/env bash
# scripts/bench.sh measures what the gateway costs (issue 6) and writes a
# markdown report: the Go micro-benchmarks of the hot paths (-benchmem, plus
# process CPU per op), then every scenario of the load harness (cmd/vmcp-load
# all): vmcp against the direct backend in interleaved rounds, anonymous and
# with JWT + Cedar (an RS256 token from the harness's own JWKS server, 20
# policies), tools/list of 1,000 tools unfiltered and filtered per user, one
# Cedar decision, vmcp with every kind of telemetry on against everything off
# (issue 15), idle sessions, cold start. About 6 minutes on 2 cores.
#
#   scripts/bench.sh                 full run, report in bench-report.md
#   scripts/bench.sh --smoke         a few seconds: proves it all runs, figures meaningless
#   scripts/bench.sh --out FILE      report elsewhere
#
# Figures are reported, never checked: the exit status says only whether
# everything ran. Method and latest figures: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
GO=${GO:-go}

smoke=0
out=bench-report.md
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
log() { echo "bench: $*" >&2; }

# Every package with benchmarks, so that new ones (token validation, Cedar)
# join the report without editing this script.
mapfile -t pkgs < <(grep -rl --include='*_test.go' '^func Benchmark' internal cmd 2>/dev/null | xargs -n1 dirname | sort -u | sed 's|^|./|')
benchtime=500ms
[ "$smoke" = 1 ] && benchtime=1x

log "building the load harness"
"$GO" build -o "$tmp/vmcp-load" ./cmd/vmcp-load

load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
log "micro-benchmarks (${pkgs[*]}), -benchtime $benchtime"
"$GO" test -run '^$' -bench . -benchmem -benchtime "$benchtime" -count 1 "${pkgs[@]}" 2>&1 | tee "$tmp/micro.txt" >&2

log "load harness scenarios"
all_args=(all --out "$tmp/load.md")
[ "$smoke" = 1 ] && all_args+=(--smoke)
"$tmp/vmcp-load" "${all_args[@]}"
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

{
  echo "# vmcp benchmark report"
  echo
  [ "$smoke" = 1 ] && echo "> **Smoke run** (scripts/bench.sh --smoke): everything ran once or briefly; the figures mean nothing." && echo
  echo "- Date: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
  echo "- Machine: $(nproc) CPUs (nproc), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //'), $("$GO" version | cut -d' ' -f3-)"
  echo "- Load average (1, 5, 15 min) before: $load_before; after: $load_after. Other work on the machine skews wall-clock figures; ratios and CPU/req less so."
  echo "- Took $(( $(date +%s) - start ))s. Method: docs/benchmarks.md."
  echo
  echo "## Micro-benchmarks"
  echo
  echo "\`go test -run '^\$' -bench . -benchmem -benchtime $benchtime\`; cpu-ns/op is the CPU time of the whole test process per op (backends in the same process included)."
  echo
  echo '```'
  grep -E '^(Benchmark|pkg:|cpu:|goos|goarch|ok|FAIL|---)' "$tmp/micro.txt" || true
  echo '```'
  echo
  sed '1s/^# .*/## Load harness (vmcp-load all)/' "$tmp/load.md"
} > "$out"
log "report written to $out ($(( $(date +%s) - start ))s)"

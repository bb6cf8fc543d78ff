#!/usr/bin/env bash
# Runs staticcheck (pinned version, through the Go module proxy; nothing is
# installed) on every package. Findings fail the run, except the documented
# exception: deprecation warnings (SA1019) for the MCP features that the
# 2026-07-28 revision deprecates (SEP-2577: sampling, logging, roots), which
# vmcp must still relay for 2025-11-25 clients and backends. See
# docs/design.md, "Static checks".
set -euo pipefail
cd "$(dirname "$0")/.."
version=v0.8.2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
GOTOOLCHAIN=local go run "honnef.co/go/tools/cmd/staticcheck@$version" -f text ./... >"$out" 2>&1 || status=$?
# staticcheck exits 1 when it reports findings; anything else is a failure to run.
if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then
	cat "$out"
	echo "staticcheck $version failed to run (exit $status)" >&2
	exit 1
fi
# (go run adds "exit status 1" when staticcheck reports findings.)
findings=$(grep -v -E '^exit status 1$|deprecated as of protocol version 2026-07-28 \(SEP-2577\).*\(SA1019\)$' "$out" || true)
if [ -n "$findings" ]; then
	echo "$findings"
	echo "staticcheck $version: findings above (fix them; the only exception is SA1019 for SEP-2577 MCP features)" >&2
	exit 1
fi
echo "staticcheck $version: clean ($(grep -c 'SEP-2577' "$out" || true) documented SEP-2577 deprecation uses)"

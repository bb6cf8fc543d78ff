// Package e2e holds vmcp's end-to-end tests: the vmcp binary runs as a real
// process (`vmcp serve --config FILE`) in front of real MCP servers — the
// conformance fixture (cmd/vmcp-fixture), the npm servers
// @modelcontextprotocol/server-everything and server-memory, and small go-sdk
// servers started by the tests — and is driven by real clients: the official
// conformance suite, the TypeScript SDK (scripts in js/) and the go-sdk.
//
// The tests that need only Go (TestInvalidConfig, TestHTTPEdge,
// TestListChanged, TestModernAndLegacyClients, TestPagination) always run on
// Linux, in `make test-unit` too; they build vmcp and the fixture on first
// use. The others need the tools that scripts/tools.sh installs (Node 22 and
// the npm packages) and run when VMCP_E2E=1 (`make test` sets it); with
// VMCP_E2E=1 a missing tool fails the test, it never skips it. They need
// Linux (/proc).
//
//	eval "$(scripts/tools.sh env)" && VMCP_E2E=1 go test -race -count=1 ./test/e2e/
package e2e

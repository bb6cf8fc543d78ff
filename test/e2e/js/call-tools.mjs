// call-tools.mjs is a TypeScript SDK client for the end-to-end tests:
//
//   node call-tools.mjs URL CALLS_JSON
//
// It connects to the MCP endpoint URL with StreamableHTTPClientTransport,
// lists every tool (following cursors), makes each call of CALLS_JSON (an
// array of {"name": ..., "arguments": {...}}) in order, and prints one JSON
// object to stdout:
//
//   {"protocolVersion": ..., "sessionId": ..., "tools": [names],
//    "results": [CallToolResult, or {"error": message} for a failed call]}
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, callsJSON] = process.argv.slice(2);
if (!url || !callsJSON) {
  console.error("usage: node call-tools.mjs URL CALLS_JSON");
  process.exit(2);
}
const calls = JSON.parse(callsJSON);

const client = new Client({ name: "vmcp-e2e-ts", version: "1.0.0" });
const transport = new StreamableHTTPClientTransport(new URL(url));
await client.connect(transport);

const tools = [];
let cursor;
do {
  const page = await client.listTools(cursor ? { cursor } : {});
  tools.push(...page.tools.map((t) => t.name));
  cursor = page.nextCursor;
} while (cursor);

const results = [];
for (const c of calls) {
  try {
    results.push(await client.callTool({ name: c.name, arguments: c.arguments ?? {} }));
  } catch (err) {
    results.push({ error: String(err?.message ?? err) });
  }
}

const out = {
  protocolVersion: transport.protocolVersion ?? null,
  sessionId: transport.sessionId ?? null,
  tools,
  results,
};
await client.close();
process.stdout.write(JSON.stringify(out) + "\n");

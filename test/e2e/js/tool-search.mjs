// tool-search.mjs is a TypeScript SDK client for the end-to-end tests of
// search mode:
//
//   node tool-search.mjs URL STEPS_JSON
//
// It connects to the MCP endpoint URL with StreamableHTTPClientTransport,
// lists the tools, then runs the steps of STEPS_JSON in order:
//
//   {"find": QUERY}                     call find_tool and keep its tools
//   {"callFound": true, "arguments": A} call_tool on the first tool the last find gave
//   {"call": NAME, "arguments": A}      call_tool on NAME
//
// and prints one JSON object to stdout:
//
//   {"tools": [names], "steps": [{"found": [names]} | {"name": NAME, "result": CallToolResult} | {"error": message}]}
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, stepsJSON] = process.argv.slice(2);
if (!url || !stepsJSON) {
  console.error("usage: node tool-search.mjs URL STEPS_JSON");
  process.exit(2);
}
const steps = JSON.parse(stepsJSON);

const client = new Client({ name: "vmcp-e2e-search", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
const tools = (await client.listTools()).tools.map((t) => t.name);

const out = [];
let found = [];
for (const s of steps) {
  try {
    if (s.find !== undefined) {
      const res = await client.callTool({ name: "find_tool", arguments: { query: s.find } });
      if (res.isError) throw new Error(JSON.stringify(res.content));
      found = (res.structuredContent ?? JSON.parse(res.content[0].text)).tools;
      out.push({ found: found.map((t) => t.name) });
      continue;
    }
    const name = s.callFound ? found[0]?.name : s.call;
    const result = await client.callTool({ name: "call_tool", arguments: { name, arguments: s.arguments ?? {} } });
    out.push({ name, result });
  } catch (err) {
    out.push({ error: String(err?.message ?? err) });
  }
}
await client.close();
process.stdout.write(JSON.stringify({ tools, steps: out }) + "\n");

// ts-backend.mjs is an MCP server written with the TypeScript SDK's
// low-level Server, over streamable HTTP on 127.0.0.1:PORT, the way many
// servers are written:
//
//   - it declares tools and resources but registers no handler for
//     resources/templates/list, which the SDK answers with -32601;
//   - it keeps events (an event store) and asks clients to poll
//     (SEP-1699): the tool "poll" closes its call's stream before it
//     answers, and the client must resume it with GET and Last-Event-ID;
//   - it closes every session's standalone GET stream every
//     CLOSE_EVERY_MS milliseconds (as a proxy's read timeout would), and
//     the tool "grow" adds a tool and says so on that stream.
//
//   node ts-backend.mjs PORT
// It prints "listening on PORT" when it serves, and "standalone closed N"
// the first five times it closes the standalone streams.
import http from "node:http";
import { randomUUID } from "node:crypto";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { InMemoryEventStore } from "@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js";
import {
  CallToolRequestSchema,
  ListResourcesRequestSchema,
  ListToolsRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

const port = Number(process.argv[2]);
const closeEvery = Number(process.env.CLOSE_EVERY_MS || 300);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const transports = new Map();
let closed = 0;

function newServer() {
  let grown = false;
  const server = new Server(
    { name: "ts-backend", version: "1.0.0" },
    { capabilities: { tools: { listChanged: true }, resources: {} } },
  );
  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: [
      { name: "echo", inputSchema: { type: "object" } },
      { name: "poll", inputSchema: { type: "object" } },
      { name: "grow", inputSchema: { type: "object" } },
      ...(grown ? [{ name: "grown", inputSchema: { type: "object" } }] : []),
    ],
  }));
  server.setRequestHandler(ListResourcesRequestSchema, async () => ({
    resources: [{ uri: "file:///ts-readme", name: "readme" }],
  }));
  server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
    switch (req.params.name) {
      case "poll":
        extra.closeSSEStream?.(); // the client polls (SEP-1699)
        await sleep(300);
        return { content: [{ type: "text", text: "polled" }] };
      case "grow":
        grown = true;
        setTimeout(() => server.sendToolListChanged(), 50); // on the standalone stream
        return { content: [{ type: "text", text: "grew" }] };
      default:
        return { content: [{ type: "text", text: "echo" }] };
    }
  });
  return server;
}

setInterval(() => {
  for (const t of transports.values()) {
    t.closeStandaloneSSEStream();
  }
  closed++;
  if (closed <= 5) {
    console.log(`standalone closed ${closed}`);
  }
}, closeEvery);

http
  .createServer(async (req, res) => {
    const sid = req.headers["mcp-session-id"];
    let transport = sid && transports.get(sid);
    if (!transport) {
      if (sid || req.method !== "POST") {
        res.writeHead(404).end();
        return;
      }
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        eventStore: new InMemoryEventStore(),
        retryInterval: 100,
        onsessioninitialized: (id) => transports.set(id, transport),
      });
      transport.onclose = () => transports.delete(transport.sessionId);
      await newServer().connect(transport);
    }
    await transport.handleRequest(req, res);
  })
  .listen(port, "127.0.0.1", () => console.log(`listening on ${port}`));

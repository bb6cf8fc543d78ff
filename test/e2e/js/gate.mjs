// gate.mjs starts a Node script unless a gate file exists, so that a test can
// keep a stdio backend from coming back after it killed it, for as long as it
// needs to look at the outage:
//
//   node gate.mjs GATE_FILE SCRIPT [ARGS...]
//
// While GATE_FILE exists it exits with status 1 at once; otherwise it runs
// SCRIPT with ARGS as if started as `node SCRIPT ARGS...`.
import { existsSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [gate, script, ...args] = process.argv.slice(2);
if (!gate || !script) {
  console.error("usage: node gate.mjs GATE_FILE SCRIPT [ARGS...]");
  process.exit(2);
}
if (existsSync(gate)) {
  console.error(`gate.mjs: ${gate} exists: not starting ${script}`);
  process.exit(1);
}
process.argv = [process.argv[0], script, ...args];
await import(pathToFileURL(script).href);

// loopback.mjs is a --import preload that makes every TCP server of the
// process listen on 127.0.0.1 only: some npm MCP servers (server-everything
// over HTTP) bind all interfaces, and the tests may use loopback addresses
// only.
//
//   node --import ./loopback.mjs SERVER.js ...
import net from "node:net";

const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first === undefined || typeof first === "function") {
    args.unshift(0, "127.0.0.1"); // listen([cb]): a random port
  } else if (typeof first === "object" && first !== null) {
    if (first.path === undefined && first.fd === undefined && !first._handle) {
      args[0] = { ...first, host: "127.0.0.1" }; // listen(options[, cb])
    }
  } else if (typeof first === "number" || /^\d+$/.test(String(first))) {
    // listen(port[, host][, backlog][, cb])
    if (typeof args[1] === "string") {
      args[1] = "127.0.0.1";
    } else {
      args.splice(1, 0, "127.0.0.1");
    }
  }
  return listen.apply(this, args);
};

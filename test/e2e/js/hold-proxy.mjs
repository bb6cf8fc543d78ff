// hold-proxy.mjs is a plain Node HTTP proxy, 127.0.0.1:PORT to TARGET: it
// writes the backend's status and headers with writeHead and pipes the
// body, so that Node sends the head only with the first byte of the body
// (it holds it back for an event stream that has nothing to say yet).
//
//   node hold-proxy.mjs PORT TARGET_PORT
import http from "node:http";

const [port, target] = process.argv.slice(2).map(Number);
http
  .createServer((req, res) => {
    const up = http.request(
      { host: "127.0.0.1", port: target, path: req.url, method: req.method, headers: req.headers },
      (upRes) => {
        res.writeHead(upRes.statusCode, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on("error", () => res.destroy());
    req.pipe(up);
  })
  .listen(port, "127.0.0.1", () => console.log(`listening on ${port}`));

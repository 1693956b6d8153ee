// An independent Standard Webhooks receiver: it verifies every delivery with
// the reference implementation (npm "standardwebhooks") and prints one JSON
// line per request: {"ok":true,"id":…,"type":…} or {"ok":false,"error":…}.
// It listens on the port given as argv[2] and answers 204, or 400 when the
// signature does not verify, or 503 while the file argv[3] exists (down).
import http from "node:http";
import fs from "node:fs";
import { Webhook } from "standardwebhooks";

const port = Number(process.argv[2]);
const downFile = process.argv[3];
const wh = new Webhook(process.env.WEBHOOK_SECRET);

http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    if (fs.existsSync(downFile)) {
      res.writeHead(503).end();
      return;
    }
    try {
      const payload = wh.verify(body, req.headers);
      console.log(JSON.stringify({ ok: true, id: req.headers["webhook-id"], type: payload.type, data: payload.data }));
      res.writeHead(204).end();
    } catch (e) {
      console.log(JSON.stringify({ ok: false, error: String(e) }));
      res.writeHead(400).end();
    }
  });
}).listen(port, "127.0.0.1", () => console.log(JSON.stringify({ listening: port })));

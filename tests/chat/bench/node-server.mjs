// The benchmark's baseline: a minimal socket.io 4.8 server doing the same broadcast as
// roomcast-chat (validate, stamp id and time, broadcast to the room, ack). No auth, no storage.
import { createServer } from "node:http";
import { Server } from "socket.io";

const path = process.env.BENCH_PATH || "/bench/room/chat/socket.io";
const maxLen = 500;
let seq = 0;
const http = createServer();
const io = new Server(http, { path, serveClient: false });
io.on("connection", (socket) => {
  socket.emit("joined", { history: [], viewers: io.engine.clientsCount });
  socket.on("message", (data, ack) => {
    const text = typeof data?.text === "string" ? data.text.trim() : "";
    if (!text || text.length > maxLen) {
      if (typeof ack === "function") ack({ ok: false, error: { code: "bad_request" } });
      return;
    }
    const msg = { id: `${Date.now().toString(16)}${(seq++).toString(16)}`, userId: "u", name: "n", role: "viewer", text, ts: Date.now() };
    io.emit("message", msg);
    if (typeof ack === "function") ack({ ok: true, data: msg });
  });
});
http.listen(0, "127.0.0.1", () => {
  console.log(`node-socket.io listening addr=127.0.0.1:${http.address().port}`);
});
process.on("SIGTERM", () => process.exit(0));

// Chat load generator speaking the socket.io v5 / engine.io v4 protocol over websockets (a minimal
// RFC 6455 client on `net` sockets, below), so one Node process can hold 1,000 clients cheaply.
//
// usage: node load.mjs --url ws://127.0.0.1:PORT --path /ns/room/chat/socket.io --pid SERVER_PID
//                      [--clients 1000] [--tokens t1,t2,...] [--fixed-rate 20] [--fixed-seconds 10]
//                      [--step-seconds 5] [--max-seconds 150]
// Prints one JSON line of results. Loopback only; every phase is bounded in count and time.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { cpus } from "node:os";
import { performance } from "node:perf_hooks";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const url = args.url;
const path = args.path;
const serverPid = Number(args.pid);
const clients = Number(args.clients ?? 1000);
const tokens = (args.tokens ?? "").split(",").filter(Boolean);
const fixedRate = Number(args["fixed-rate"] ?? 20);
const fixedSeconds = Number(args["fixed-seconds"] ?? 10);
const stepSeconds = Number(args["step-seconds"] ?? 5);
const maxSeconds = Number(args["max-seconds"] ?? 150);
if (!url?.startsWith("ws://127.") || !path) throw new Error("--url ws://127.x... and --path are required (loopback only)");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const TICK = 100; // USER_HZ on Linux

function procCpu(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: Number(fields[11]) / TICK, sys: Number(fields[12]) / TICK };
}
function procRssBytes(pid) {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
  return Number(m[1]) * 1024;
}
function selfCpu() {
  const u = process.cpuUsage();
  return { user: u.user / 1e6, sys: u.system / 1e6 };
}
/** Busy and total jiffies of the whole machine (all cores), from /proc/stat. */
function machineCpu() {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + (f[4] ?? 0); // idle + iowait
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // guest time is already in user
  return { busy: total - idle, total };
}
const pct = (x) => Math.round(x * 1000) / 10; // one decimal

// Latency histogram: 50 µs buckets up to 10 s.
const BUCKET_MS = 0.05;
const hist = new Uint32Array(200_000);
let delivered = 0;
function record(ms) {
  delivered++;
  hist[Math.min(hist.length - 1, Math.max(0, Math.floor(ms / BUCKET_MS)))]++;
}
function resetStats() {
  hist.fill(0);
  delivered = 0;
}
function percentile(p) {
  const target = Math.ceil(delivered * p);
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i];
    if (seen >= target) return (i + 1) * BUCKET_MS;
  }
  return Infinity;
}

// A minimal websocket client (RFC 6455), enough for socket.io's small text frames: one `net`
// socket and a frame parser per client, no per-message stream machinery, so the generator spends
// its CPU on the protocol the servers speak rather than on a client library. The same client
// drives both servers.
const target = new URL(url);
const upgradeRequest =
  `GET ${path}/?EIO=4&transport=websocket HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\n` +
  "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ";
const HEADERS_END = Buffer.from("\r\n\r\n");
const READ_BUFFER = Buffer.alloc(256 * 1024);
const prefix = (p) => Buffer.from(p, "latin1");
const P_REFUSED = prefix("44");
const P_EVENT = prefix("42");
const P_JOINED = prefix('42["joined"');
const P_MESSAGE = prefix('42["message"');
const TEXT_KEY = prefix('"text":"');
const startsWith = (buf, p) => buf.length >= p.length && buf.compare(p, 0, p.length, 0, p.length) === 0;

/** A masked client frame (clients must mask; the key is random per frame as the RFC asks). */
function clientFrame(opcode, payload) {
  const len = payload.length;
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + 4 + len);
  out[0] = 0x80 | opcode;
  if (len < 126) out[1] = 0x80 | len;
  else if (len < 65536) { out[1] = 0x80 | 126; out.writeUInt16BE(len, 2); }
  else { out[1] = 0x80 | 127; out.writeBigUInt64BE(BigInt(len), 2); }
  const mask = randomBytes(4);
  mask.copy(out, head);
  for (let i = 0; i < len; i++) out[head + 4 + i] = payload[i] ^ mask[i & 3];
  return out;
}

class Client {
  constructor(onText, onFail) {
    this.onText = onText;
    this.onFail = onFail;
    this.pending = null; // bytes not yet parsed (headers, or a partial frame)
    this.upgraded = false;
    this.fragments = [];
    // `onread` reads into one shared buffer and skips the stream machinery; the parser copies
    // what it keeps past the callback.
    this.sock = connect({
      host: target.hostname,
      port: Number(target.port),
      onread: { buffer: READ_BUFFER, callback: (n, buf) => { this.data(buf.subarray(0, n)); } },
    });
    this.sock.setNoDelay(true);
    this.sock.on("connect", () => this.sock.write(`${upgradeRequest}${randomBytes(16).toString("base64")}\r\n\r\n`));
    this.sock.on("error", (e) => onFail(e));
    this.sock.on("close", () => onFail(new Error("connection closed")));
  }

  send(text) {
    this.sock.write(clientFrame(0x1, Buffer.from(text)));
  }

  terminate() {
    this.sock.destroy();
  }

  data(chunk) {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    if (!this.upgraded) {
      const end = buf.indexOf(HEADERS_END);
      if (end < 0) { this.pending = Buffer.from(buf); return; }
      const status = buf.toString("latin1", 0, buf.indexOf("\r\n"));
      if (!/^HTTP\/1\.1 101 /.test(status)) { this.onFail(new Error(`upgrade refused: ${status}`)); this.sock.destroy(); return; }
      this.upgraded = true;
      buf = buf.subarray(end + 4);
    }
    let at = 0;
    while (buf.length - at >= 2) {
      const b0 = buf[at];
      const b1 = buf[at + 1];
      let len = b1 & 0x7f;
      let off = at + 2;
      if (len === 126) {
        if (buf.length - at < 4) break;
        len = buf.readUInt16BE(at + 2);
        off = at + 4;
      } else if (len === 127) {
        if (buf.length - at < 10) break;
        len = Number(buf.readBigUInt64BE(at + 2));
        off = at + 10;
      }
      const masked = (b1 & 0x80) !== 0;
      const start = off + (masked ? 4 : 0);
      if (buf.length < start + len) break;
      let payload = buf.subarray(start, start + len);
      if (masked) { // servers do not mask, but stay correct if one does
        payload = Buffer.from(payload);
        for (let i = 0; i < len; i++) payload[i] ^= buf[off + (i & 3)];
      }
      at = start + len;
      this.frame(b0 & 0x80, b0 & 0x0f, payload);
    }
    if (at < buf.length) this.pending = Buffer.from(buf.subarray(at));
  }

  frame(fin, opcode, payload) {
    switch (opcode) {
      case 0x0: // continuation
      case 0x1: // text
        if (!fin) { this.fragments.push(Buffer.from(payload)); return; }
        if (this.fragments.length) { payload = Buffer.concat([...this.fragments, payload]); this.fragments = []; }
        this.onText(payload);
        return;
      case 0x8: this.sock.destroy(); return; // close
      case 0x9: this.sock.write(clientFrame(0xa, payload)); return; // ping -> pong
      default: // binary, pong: not used by these servers' chat
    }
  }
}

function open(token) {
  return new Promise((resolve, reject) => {
    let joined = false;
    const fail = (e) => { if (!joined) { clearTimeout(timer); reject(e); } };
    const client = new Client((buf) => {
      if (buf.length === 1 && buf[0] === 0x32) { client.send("3"); return; } // engine.io ping
      if (buf[0] === 0x30) { client.send(token ? `40${JSON.stringify({ token })}` : "40"); return; } // open
      if (startsWith(buf, P_REFUSED)) { fail(new Error(`refused: ${buf.toString()}`)); return; }
      if (startsWith(buf, P_EVENT)) {
        if (!joined && startsWith(buf, P_JOINED)) { joined = true; clearTimeout(timer); resolve(client); return; }
        if (startsWith(buf, P_MESSAGE)) {
          const i = buf.indexOf(TEXT_KEY, P_MESSAGE.length);
          if (i > 0) {
            const sent = Number(buf.toString("latin1", i + 8, buf.indexOf(0x22, i + 8)));
            if (Number.isFinite(sent)) record(performance.now() - sent);
          }
        }
      }
    }, fail);
    const timer = setTimeout(() => { client.terminate(); fail(new Error("connect timeout")); }, 20000);
  });
}

async function connectAll(n, concurrency = 50) {
  const sockets = [];
  for (let i = 0; i < n; i += concurrency) {
    sockets.push(...(await Promise.all(Array.from({ length: Math.min(concurrency, n - i) }, () => open()))));
  }
  return sockets;
}

/** Send `rate` msg/s (spread over the senders) for `seconds`; returns messages sent. */
async function drive(senders, rate, seconds) {
  const total = Math.round(rate * seconds);
  const start = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate) + 1);
    while (sent < due) {
      const s = senders[sent % senders.length];
      s.send(`42["message",{"text":"${performance.now().toFixed(3)}"}]`);
      sent++;
    }
    await sleep(Math.max(1, 1000 / rate));
  }
  return sent;
}

async function phase(senders, rate, seconds) {
  resetStats();
  const cpu0 = procCpu(serverPid);
  const gen0 = selfCpu();
  const m0 = machineCpu();
  const t0 = performance.now();
  const sent = await drive(senders, rate, seconds);
  await sleep(1000); // drain
  const wall = (performance.now() - t0) / 1000;
  return {
    rate,
    sent,
    expected: sent * (clients + senders.length), // senders receive the broadcast too
    delivered,
    deliveriesPerSec: Math.round(delivered / wall),
    p50Ms: +percentile(0.5).toFixed(2),
    p99Ms: +percentile(0.99).toFixed(2),
    ...(() => {
      const cpu1 = procCpu(serverPid);
      const gen1 = selfCpu();
      const m1 = machineCpu();
      const user = cpu1.user - cpu0.user;
      const sys = cpu1.sys - cpu0.sys;
      const genUser = gen1.user - gen0.user;
      const genSys = gen1.sys - gen0.sys;
      return {
        wallSeconds: +wall.toFixed(2),
        // CPU seconds from /proc/<pid>/stat (utime, stime) and percentages of one core.
        serverUserSeconds: +user.toFixed(2),
        serverSysSeconds: +sys.toFixed(2),
        serverCpuPct: pct((user + sys) / wall),
        serverUserPct: pct(user / wall),
        serverSysPct: pct(sys / wall),
        generatorUserSeconds: +genUser.toFixed(2),
        generatorSysSeconds: +genSys.toFixed(2),
        generatorCpuPct: pct((genUser + genSys) / wall),
        // Every core of the machine: what the server and the generator left to others.
        machineBusyPct: pct((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)),
      };
    })(),
  };
}

const started = performance.now();
const rss0 = procRssBytes(serverPid);
const receivers = await connectAll(clients);
await sleep(2000);
const rss1 = procRssBytes(serverPid);
const senders = [];
for (const t of tokens.length ? tokens : [undefined]) senders.push(await open(t));
const result = {
  clients,
  memoryPerIdleConnectionBytes: Math.round((rss1 - rss0) / clients),
  serverRssMiB: +(rss1 / 1048576).toFixed(1),
};
result.fixed = await phase(senders, fixedRate, fixedSeconds);

// Saturation: raise the rate x1.5 until deliveries fall short or latency explodes.
result.steps = [];
let rate = fixedRate * 2;
while ((performance.now() - started) / 1000 < maxSeconds) {
  const r = await phase(senders, rate, stepSeconds);
  result.steps.push(r);
  if (r.delivered < 0.95 * r.expected || r.p99Ms > 1000) break;
  rate = Math.round(rate * 1.5);
}
const ok = result.steps.filter((s) => s.delivered >= 0.95 * s.expected && s.p99Ms <= 1000);
const best = [...result.steps].sort((a, b) => b.deliveriesPerSec - a.deliveriesPerSec)[0];
result.maxDeliveriesPerSec = best?.deliveriesPerSec ?? 0;
result.maxSustainedRate = ok.at(-1)?.rate ?? fixedRate;
// The best step that still met the bar (p99 <= 1 s, >= 95 % delivered); the peak above may be a
// step past it.
result.maxSustainedDeliveriesPerSec = Math.max(0, ...ok.map((s) => s.deliveriesPerSec));
const last = result.steps.at(-1);
// The generator is one JS thread: pinned near a full core, it is the limit. Otherwise, when every
// core of the machine was busy the server could not get more CPU (the generator and other work
// held the rest): "cores". Otherwise the server itself was the limit.
result.cores = cpus().length;
const fellShort = last && (last.delivered < 0.95 * last.expected || last.p99Ms > 1000);
result.saturated = fellShort
  ? last.generatorCpuPct >= 90
    ? "generator"
    : last.machineBusyPct >= 95
      ? "cores"
      : "server"
  : "none (time limit)";
for (const s of [...receivers, ...senders]) s.terminate();
console.log(JSON.stringify(result));
process.exit(0);

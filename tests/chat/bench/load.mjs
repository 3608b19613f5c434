// Chat load generator speaking the socket.io v5 / engine.io v4 protocol over raw websockets
// (the `ws` package socket.io itself uses), so one Node process can hold 1,000 clients cheaply.
//
// usage: node load.mjs --url ws://127.0.0.1:PORT --path /ns/room/chat/socket.io --pid SERVER_PID
//                      [--clients 1000] [--tokens t1,t2,...] [--fixed-rate 20] [--fixed-seconds 10]
//                      [--step-seconds 5] [--max-seconds 60]
// Prints one JSON line of results. Loopback only; every phase is bounded in count and time.
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";

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

const wsUrl = `${url}${path}/?EIO=4&transport=websocket`;

function open(token) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, { perMessageDeflate: false });
    const timer = setTimeout(() => { ws.terminate(); reject(new Error("connect timeout")); }, 20000);
    let joined = false;
    ws.on("message", (buf) => {
      const s = buf.toString();
      if (s === "2") { ws.send("3"); return; }
      if (s[0] === "0") { ws.send(token ? `40${JSON.stringify({ token })}` : "40"); return; }
      if (s.startsWith("44")) { clearTimeout(timer); reject(new Error(`refused: ${s}`)); return; }
      if (s.startsWith("42")) {
        if (!joined && s.startsWith('42["joined"')) { joined = true; clearTimeout(timer); resolve(ws); return; }
        const i = s.indexOf('"text":"');
        if (s.startsWith('42["message"') && i > 0) {
          const sent = Number(s.slice(i + 8, s.indexOf('"', i + 8)));
          if (Number.isFinite(sent)) record(performance.now() - sent);
        }
      }
    });
    ws.on("error", (e) => { clearTimeout(timer); reject(e); });
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

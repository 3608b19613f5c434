// Test harness for roomcast-chat: starts the real binary, redis-server and secantusd-py on
// free loopback ports, and wraps the official socket.io client.
import { spawn, execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, writeFileSync, existsSync, statSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../../..");

/** The binary under test: ROOMCAST_CHAT_BIN, else $CARGO_TARGET_DIR/debug, else target/debug. */
export function chatBin() {
  if (process.env.ROOMCAST_CHAT_BIN) return process.env.ROOMCAST_CHAT_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(repo, "target");
  const bin = path.join(target, "debug", "roomcast-chat");
  if (!existsSync(bin)) {
    throw new Error(`${bin} not found: run cargo build -p roomcast-chat or set ROOMCAST_CHAT_BIN`);
  }
  return bin;
}

export const KEY = "test-signing-key-0123456789abcdef";

/** True when `CI` says this is a CI run (set, and not `false` or `0`), as in roomcast_runtime::skip. */
export function inCi() {
  const v = (process.env.CI ?? "").trim();
  return v !== "" && v.toLowerCase() !== "false" && v !== "0";
}

function onPath(command) {
  return (process.env.PATH ?? "").split(path.delimiter).some((dir) => {
    try {
      return dir !== "" && statSync(path.join(dir, command)).isFile();
    } catch {
      return false;
    }
  });
}

/**
 * For `describe(name, { skip: needs("redis-server") }, ...)`: false when every command is on
 * PATH. Otherwise, on a developer's machine, a skip reason (printed as a notice); under CI,
 * where scripts/install-deps.sh installs everything, an error, so a green run never hides a
 * test that did not run.
 */
export function needs(...commands) {
  const missing = commands.filter((c) => !onPath(c));
  if (missing.length === 0) return false;
  const why = `${missing.join(" and ")} not found on PATH (run scripts/install-deps.sh)`;
  if (inCi()) throw new Error(`${why}: CI must run every test`);
  console.warn(`SKIP: ${why}; these tests did not run`);
  return why;
}

export function tempDir(label = "chat") {
  return mkdtempSync(path.join(tmpdir(), `roomcast-${label}-`));
}

/** Mint with the CLI subcommand (what a tester does). */
export function mintToken(keyFile, { user, name, role = "viewer", ttl = "1h" }) {
  return execFileSync(chatBin(), ["mint-token", "--key-file", keyFile, "--user", user, "--name", name, "--role", role, "--ttl", ttl], { encoding: "utf8" }).trim();
}

/** Mint the way the README tells an application to: an HS256 JWT with node:crypto. */
export function mintTokenLikeAnApp(key, claims) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  const sig = createHmac("sha256", key).update(input).digest("base64url");
  return `${input}.${sig}`;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function waitForLine(proc, stream, regex, label, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error(`${label} did not start in ${timeoutMs} ms:\n${buf}`)), timeoutMs);
    const onData = (chunk) => {
      buf += chunk.toString();
      const m = buf.match(regex);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    proc[stream].on("data", onData);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited with ${code} before starting:\n${buf}`));
    });
  });
}

function stopProcess(proc, signal = "SIGTERM", timeoutMs = 15000) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    proc.kill(signal);
  });
}

export async function startRedis() {
  const port = await freePort();
  const proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: ["ignore", "pipe", "pipe"] });
  await waitForLine(proc, "stdout", /Ready to accept connections/, "redis-server");
  return { url: `redis://127.0.0.1:${port}`, stop: () => stopProcess(proc) };
}

export async function startMongo() {
  const proc = spawn("secantusd-py", ["--host", "127.0.0.1", "--port", "0", "--storage-path", ":memory:"], { stdio: ["ignore", "ignore", "pipe"] });
  const m = await waitForLine(proc, "stderr", /listening on (\S+)/, "secantusd-py");
  return { uri: `mongodb://${m[1]}/roomcast_node_test?directConnection=true`, stop: () => stopProcess(proc) };
}

/**
 * Start roomcast-chat for one room. `dir` holds the key, config and data (reuse it to restart).
 * chat: ChatSpec fields; mongoUri / redisUrl optional; args: extra CLI flags.
 */
export async function startChat({ dir = tempDir(), namespace = "shows", room = "lobby", chat = {}, mongoUri, redisUrl, args = [], env = {} } = {}) {
  const keyFile = path.join(dir, "chat-signing-key");
  writeFileSync(keyFile, KEY + "\n");
  const chatSection = { signingKeyFile: keyFile, ...chat };
  if (redisUrl) {
    // The URL may carry a password: like the operator, mount it as a file, never inline.
    const urlFile = path.join(dir, "redis-url");
    writeFileSync(urlFile, redisUrl);
    chatSection.redisUrlFile = urlFile;
  }
  const config = {
    room: { namespace, name: room },
    ingest: { streamKeyFile: "/dev/null", maxBitrateKbps: 8000, reconnectGraceSeconds: 10 },
    transcode: {},
    chat: chatSection,
    playback: { pathPrefix: `/${namespace}/${room}`, playlistMaxAgeSeconds: 1, segmentMaxAgeSeconds: 60 },
  };
  if (mongoUri) {
    const uriFile = path.join(dir, "mongodb-uri");
    writeFileSync(uriFile, mongoUri);
    config.mongodbUriFile = uriFile;
  }
  const configFile = path.join(dir, "room.yaml");
  // JSON is YAML.
  writeFileSync(configFile, JSON.stringify(config));
  const proc = spawn(chatBin(), ["--config", configFile, "--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--data-dir", path.join(dir, "data"), "--presence-interval", "1s", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "info", ...env },
  });
  let log = "";
  proc.stderr.on("data", (c) => { log += c.toString(); });
  const m = await waitForLine(proc, "stderr", /chat listening addr=(\S+) metrics=(\S+)/, "roomcast-chat");
  return {
    dir,
    keyFile,
    proc,
    url: `http://${m[1]}`,
    metricsUrl: `http://${m[2]}/metrics`,
    path: `/${namespace}/${room}/chat/socket.io`,
    log: () => log,
    stop: (signal = "SIGTERM") => stopProcess(proc, signal),
  };
}

/** Connect with the official client; resolves once the server's `joined` arrives. */
export function connect(server, { token, transports = ["websocket"], timeoutMs = 10000, headers } = {}) {
  return new Promise((resolve, reject) => {
    const socket = io(server.url, {
      path: server.path,
      auth: token ? { token } : undefined,
      transports,
      extraHeaders: headers,
      reconnection: false,
      forceNew: true,
    });
    const events = recordEvents(socket);
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error("no joined event"));
    }, timeoutMs);
    socket.once("joined", (joined) => {
      clearTimeout(timer);
      resolve({ socket, joined, events });
    });
    socket.once("connect_error", (err) => {
      clearTimeout(timer);
      socket.close();
      reject(err);
    });
  });
}

/** Keep every event a socket receives, so tests can assert on what arrived. */
function recordEvents(socket) {
  const events = [];
  socket.onAny((event, ...args) => events.push({ event, args }));
  return events;
}

export function nextEvent(socket, event, timeoutMs = 5000, filter = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, handler);
      reject(new Error(`no ${event} event in ${timeoutMs} ms`));
    }, timeoutMs);
    function handler(payload) {
      if (!filter(payload)) return;
      clearTimeout(timer);
      socket.off(event, handler);
      resolve(payload);
    }
    socket.on(event, handler);
  });
}

export function request(socket, event, data, timeoutMs = 5000) {
  return socket.timeout(timeoutMs).emitWithAck(event, data);
}

export async function closeAll(...sockets) {
  for (const s of sockets) s?.close();
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The latest viewer count a connection has seen (joined, then `viewers` events). */
export function latestViewers(conn) {
  const last = conn.events.filter((e) => e.event === "viewers").at(-1);
  return last ? last.args[0].count : conn.joined.viewers;
}

/** Wait until a connection's latest viewer count is `n`. */
export async function waitForViewers(conn, n, timeoutMs = 8000) {
  const deadline = Date.now() + timeoutMs;
  while (latestViewers(conn) !== n) {
    if (Date.now() > deadline) throw new Error(`viewer count is ${latestViewers(conn)}, expected ${n}`);
    await sleep(50);
  }
}

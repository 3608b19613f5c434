// The latency benchmark behind scripts/bench-latency.sh: one `roomcast dev` with a standard and
// a low-latency room, watched one after the other (so the dev process's CPU in each window is
// that room's) by Chromium + hls.js while ffmpeg publishes to it.
//
// The low-latency room is watched twice: as hls.js plays it (delta updates, `_HLS_skip=YES`,
// once the window passes the skip boundary) and with `_HLS_skip` stripped from its playlist
// requests, so the playlist bytes a viewer costs are measured with and without delta updates.
//
// Latency is wall clock minus hls.js's `playingDate` (the playhead's EXT-X-PROGRAM-DATE-TIME),
// sampled every 250 ms once playback runs; the server stamps PDT when it receives the media, so
// this is ingest-to-screen latency.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "tests", "browser", "package.json"));
const { chromium } = require("playwright-core");

const bin = process.env.ROOMCAST_BIN;
const watchSeconds = Number(process.env.WATCH_SECONDS || 60);
const warmupSeconds = Number(process.env.WARMUP_SECONDS || 12);
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";

const room = (name, playback) => `apiVersion: roomcast.dev/v1alpha1
kind: StreamRoom
metadata: {name: ${name}, namespace: bench}
spec:
  transcode:
    segmentSeconds: 2
    dvrWindowSeconds: 120
    renditions:
      - {name: source}
      - {name: 360p, height: 360, videoKbps: 800, audioKbps: 96}
      - {name: 144p, height: 144, videoKbps: 150, audioKbps: 64}
${playback}`;
const ROOMS = `${room("standard", "")}---\n${room("low", "  playback: {latency: low, partTargetMs: 500}\n")}`;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function cpuSeconds(pid) {
  // utime and stime, fields 14 and 15 of /proc/<pid>/stat, in clock ticks (100 a second).
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function publish(url) {
  return spawn("ffmpeg", ["-loglevel", "error", "-re",
    "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
    "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "60", "-pix_fmt", "yuv420p",
    "-c:a", "aac", "-b:a", "96k", "-f", "flv", url], { stdio: ["ignore", "ignore", "inherit"] });
}

async function watch(browser, base, { label, name, stripSkip }, pid) {
  const context = await browser.newContext();
  const page = await context.newPage();
  let requests = 0;
  let playlistBytes = 0;
  let counting = false;
  page.on("request", (request) => {
    if (counting && request.url().includes("/hls/")) requests += 1;
  });
  page.on("response", async (response) => {
    if (!counting || !/\/index\.m3u8(\?|$)/.test(response.url())) return;
    const body = await response.body().catch(() => null);
    if (body) playlistBytes += body.length;
  });
  if (stripSkip) {
    await page.route(/\/index\.m3u8\?/, (route) => {
      const url = new URL(route.request().url());
      url.searchParams.delete("_HLS_skip");
      return route.continue({ url: url.toString() });
    });
  }
  await page.goto(`${base}/bench/${name}/`);
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    if (await page.evaluate(() => document.getElementById("video").currentTime > 1)) break;
    await sleep(250);
  }
  await sleep(warmupSeconds * 1000);
  await page.evaluate(() => {
    window.benchStalls = 0;
    document.getElementById("video").addEventListener("waiting", () => { window.benchStalls += 1; });
  });
  const lowLatencyMode = await page.evaluate(() => hls.config.lowLatencyMode);
  const cpu0 = cpuSeconds(pid);
  const t0 = Date.now();
  counting = true;
  const samples = [];
  while (Date.now() - t0 < watchSeconds * 1000) {
    const latency = await page.evaluate(() => hls.playingDate ? (Date.now() - hls.playingDate.getTime()) / 1000 : null);
    if (latency !== null) samples.push(latency);
    await sleep(250);
  }
  counting = false;
  const elapsed = (Date.now() - t0) / 1000;
  const cpu = (cpuSeconds(pid) - cpu0) / elapsed;
  const stalls = await page.evaluate(() => window.benchStalls);
  await context.close();
  samples.sort((a, b) => a - b);
  return {
    room: label,
    lowLatencyMode,
    samples: samples.length,
    medianLatency: quantile(samples, 0.5),
    p95Latency: quantile(samples, 0.95),
    stalls,
    requestsPerSecond: requests / elapsed,
    playlistBytesPerSecond: playlistBytes / elapsed,
    cpuCores: cpu,
  };
}

async function main() {
  if (!bin) throw new Error("set ROOMCAST_BIN (scripts/bench-latency.sh does)");
  const dir = mkdtempSync(join(tmpdir(), "roomcast-bench-latency-"));
  writeFileSync(join(dir, "rooms.yaml"), ROOMS);
  const dev = spawn(bin, ["dev", "-f", join(dir, "rooms.yaml"), "--data-dir", join(dir, "data"),
    "--http-addr", "127.0.0.1:0", "--rtmp-addr", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "inherit"] });
  let banner = "";
  dev.stdout.on("data", (chunk) => { banner += chunk; });
  for (let i = 0; i < 200 && !/rooms\s+http:\/\/\S+/.test(banner); i += 1) await sleep(100);
  const base = banner.match(/rooms\s+(http:\/\/\S+?)\/?\s/)[1];
  const urls = Object.fromEntries([...banner.matchAll(/room (\S+)\s+OBS\s+server (\S+)\s+stream key (\S+)/g)]
    .map(([, id, server, key]) => [id, `${server}/${key}`]));
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
  });
  const results = [];
  try {
    const passes = [
      { label: "standard", name: "standard" },
      { label: "low", name: "low" },
      { label: "low-full", name: "low", stripSkip: true },
    ];
    for (const pass of passes) {
      const publisher = publish(urls[`bench/${pass.name}`]);
      try {
        results.push(await watch(browser, base, pass, dev.pid));
      } finally {
        publisher.kill("SIGINT");
        await sleep(3000);
      }
    }
  } finally {
    await browser.close();
    dev.kill("SIGINT");
  }
  const fmt = (v, digits = 2) => Number.isFinite(v) ? v.toFixed(digits) : "n/a";
  console.log("room      ll-mode  samples  latency-median  latency-p95  stalls  req/viewer/s  playlist-B/viewer/s  cpu-cores");
  for (const r of results) {
    console.log(`${r.room.padEnd(9)} ${String(r.lowLatencyMode).padEnd(8)} ${String(r.samples).padEnd(8)} ` +
      `${fmt(r.medianLatency).padEnd(15)} ${fmt(r.p95Latency).padEnd(12)} ${String(r.stalls).padEnd(7)} ` +
      `${fmt(r.requestsPerSecond).padEnd(13)} ${fmt(r.playlistBytesPerSecond, 0).padEnd(20)} ${fmt(r.cpuCores)}`);
  }
  const [standard, low, lowFull] = results;
  console.log(`low-latency playlist bytes per viewer per second: ${fmt(low.playlistBytesPerSecond, 0)} with delta ` +
    `updates, ${fmt(lowFull.playlistBytesPerSecond, 0)} without (low-full: _HLS_skip stripped), ` +
    `${fmt(low.playlistBytesPerSecond / lowFull.playlistBytesPerSecond)}x`);
  console.log(`low-latency CPU / standard CPU: ${fmt(low.cpuCores / standard.cpuCores)}x`);
  console.log(`goals: median <= 2.0 s ${low.medianLatency <= 2.0 ? "met" : "MISSED"}, ` +
    `p95 <= 3.0 s ${low.p95Latency <= 3.0 ? "met" : "MISSED"}, ` +
    `no stall ${low.stalls === 0 ? "met" : "MISSED"}, ` +
    `CPU <= 1.25x ${low.cpuCores <= 1.25 * standard.cpuCores ? "met" : "MISSED"}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

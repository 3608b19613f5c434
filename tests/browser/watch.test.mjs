// The watch page in a real browser: Debian's Chromium driven by playwright-core, against the
// real `roomcast dev` binary with ffmpeg publishing a test pattern over RTMP.
//
//   ROOMCAST_BIN=…/roomcast node --test tests/browser/
//
// Screenshots of each step go to tests/artifacts/browser/ (kept by CI as artifacts).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const artifacts = join(here, "..", "artifacts", "browser");
mkdirSync(artifacts, { recursive: true });
const bin = process.env.ROOMCAST_BIN;
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";

// A developer's machine without Chromium or ffmpeg skips these tests with a notice; CI, which
// installs both, fails instead: a skip there means an install step is missing.
function onPath(command) {
  return (process.env.PATH || "").split(":").some((dir) => dir && existsSync(join(dir, command)));
}
const missing = [
  !existsSync(chromiumPath) && `Chromium (${chromiumPath})`,
  !onPath("ffmpeg") && "ffmpeg",
].filter(Boolean);
const inCi = !["", "false", "0"].includes((process.env.CI || "").trim().toLowerCase());
if (missing.length > 0 && inCi) {
  throw new Error(`${missing.join(" and ")} missing: CI must run every test (scripts/install-deps.sh)`);
}
const skip = missing.length > 0 ? `${missing.join(" and ")} missing (run scripts/install-deps.sh)` : false;
if (skip) console.warn(`SKIP: ${skip}; the watch page tests did not run`);

// Small renditions keep two cores free enough for the browser.
const ROOMS = `apiVersion: roomcast.dev/v1alpha1
kind: StreamRoom
metadata: {name: lobby, namespace: shows}
spec:
  ingest: {reconnectGraceSeconds: 2}
  transcode:
    segmentSeconds: 2
    dvrWindowSeconds: 120
    renditions:
      - {name: source}
      - {name: 240p, height: 240, videoKbps: 400, audioKbps: 64}
      - {name: 144p, height: 144, videoKbps: 150, audioKbps: 64}
---
apiVersion: roomcast.dev/v1alpha1
kind: StreamRoom
metadata: {name: fast, namespace: shows}
spec:
  transcode:
    segmentSeconds: 2
    dvrWindowSeconds: 120
    renditions:
      - {name: source}
      - {name: 144p, height: 144, videoKbps: 150, audioKbps: 64}
  playback: {latency: low, partTargetMs: 500}
`;

let dev;
let publisher;
let browser;
let base;
let rtmpUrl;
let fastUrl;
let devLog = "";

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(what, probe, timeoutMs = 30000, intervalMs = 250) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) return last;
    await sleep(intervalMs);
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})\n${devLog.slice(-3000)}`);
}

function publish(url) {
  const ffmpeg = spawn("ffmpeg", ["-loglevel", "error", "-re",
    "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15",
    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
    "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-pix_fmt", "yuv420p",
    "-c:a", "aac", "-b:a", "64k", "-f", "flv", url], { stdio: ["ignore", "ignore", "pipe"] });
  ffmpeg.stderr.on("data", (chunk) => { devLog += `[ffmpeg] ${chunk}`; });
  return ffmpeg;
}

before(async () => {
  if (skip) return;
  assert.ok(bin, "set ROOMCAST_BIN to the roomcast binary");
  const dir = mkdtempSync(join(tmpdir(), "roomcast-browser-"));
  writeFileSync(join(dir, "rooms.yaml"), ROOMS);
  dev = spawn(bin, ["dev", "-f", join(dir, "rooms.yaml"), "--data-dir", join(dir, "data"),
    "--http-addr", "127.0.0.1:0", "--rtmp-addr", "127.0.0.1:0", "--rtmps-addr", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "pipe"] });
  let banner = "";
  dev.stdout.on("data", (chunk) => { banner += chunk; devLog += chunk; });
  dev.stderr.on("data", (chunk) => { devLog += chunk; });
  await waitFor("the dev banner", () => /rooms\s+http:\/\/\S+/.test(banner));
  base = banner.match(/rooms\s+(http:\/\/\S+?)\/?\s/)[1];
  const urls = Object.fromEntries([...banner.matchAll(/room (\S+)\s+OBS\s+server (\S+)\s+stream key (\S+)/g)]
    .map(([, room, server, key]) => [room, `${server}/${key}`]));
  rtmpUrl = urls["shows/lobby"];
  fastUrl = urls["shows/fast"];
  publisher = publish(rtmpUrl);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--autoplay-policy=no-user-gesture-required"],
  });
});

after(async () => {
  if (skip) return;
  if (browser) await browser.close();
  if (publisher) publisher.kill("SIGINT");
  if (dev) {
    dev.kill("SIGINT");
    await new Promise((resolve) => dev.once("exit", resolve));
  }
});

async function openWatchPage(context, room = "lobby") {
  const page = await context.newPage();
  const errors = [];
  const logs = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  page.on("console", (message) => logs.push(`${message.type()}: ${message.text()}`));
  await page.goto(`${base}/shows/${room}/`);
  page.errors = errors;
  page.logs = logs;
  return page;
}

async function currentTime(page) {
  return page.evaluate(() => document.getElementById("video").currentTime);
}

// What the player shows, for assertions and for failure messages.
async function playerState(page) {
  const state = await page.evaluate(() => {
    const video = document.getElementById("video");
    const ranges = (r) => Array.from({ length: r.length }, (_, i) => [r.start(i), r.end(i)].map((t) => t.toFixed(1)));
    const position = document.getElementById("position").dataset;
    return {
      currentTime: video.currentTime, seeking: video.seeking, paused: video.paused,
      behind: Number(position.behind), latency: Number(position.latency),
      seekable: ranges(video.seekable), buffered: ranges(video.buffered),
    };
  });
  return { ...state, console: page.logs.slice(-20) };
}

// Wait until `accept(state)` holds for the player's state; a timeout says what the player
// showed last and what the page logged.
async function waitForPlayer(page, what, accept, timeoutMs) {
  try {
    return await waitFor(what, async () => {
      const state = await playerState(page);
      return accept(state) ? state : null;
    }, timeoutMs);
  } catch (error) {
    error.message += `\nplayer: ${JSON.stringify(await playerState(page), null, 1)}`;
    throw error;
  }
}

// Rewind 30 s once the DVR window holds 35 s: the viewer then watches about 30 s behind live.
async function rewindThirtySeconds(page) {
  await waitFor("35 s in the DVR window", () => page.evaluate(() => {
    const r = document.getElementById("video").seekable;
    return r.length > 0 && r.end(r.length - 1) - r.start(0) > 35;
  }), 60000, 1000);
  await page.click("#rewind-30");
  // A seek into a range the player must fetch again takes a moment: judge where it lands.
  const rewound = await waitForPlayer(page, "playback 30 s behind live",
    (state) => state.currentTime > 0 && !state.seeking && state.behind > 20, 15000);
  assert.ok(rewound.behind < 45, `~30 s behind live, got ${JSON.stringify(rewound)}`);
  return rewound;
}

// Play the past broadcast `entry` (a button of the list) from 4 s before its end to the end;
// returns its duration.
async function playPastBroadcastToEnd(page, entry) {
  await entry.click();
  const duration = await waitFor("the VOD to load", () => page.evaluate(() => {
    const d = document.getElementById("video").duration;
    return Number.isFinite(d) && d > 0 ? d : 0;
  }), 30000);
  await page.evaluate(() => {
    const video = document.getElementById("video");
    video.currentTime = video.duration - 4;
    video.play();
  });
  await waitFor("the VOD to play to its end", () => page.evaluate(() => document.getElementById("video").ended), 30000);
  assert.equal(await page.locator("#player-error").isVisible(), false, "no error overlay");
  return duration;
}

test("room index lists the room and shows it live", { skip }, async () => {
  const page = await browser.newPage();
  await page.goto(`${base}/`);
  await waitFor("the live badge on the index", async () =>
    (await page.locator("#rooms li").first().textContent() || "").includes("LIVE"), 40000, 500);
  assert.match(await page.locator("#rooms li a").first().getAttribute("href"), /\/shows\/lobby\/$/);
  await page.screenshot({ path: join(artifacts, "01-index.png") });
  await page.close();
});

test("the page plays, switches quality, rewinds within the DVR window and returns to live", { skip }, async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await openWatchPage(context);
  const segments = [];
  page.on("request", (request) => {
    const match = request.url().match(/\/hls\/([^/]+)\/[0-9a-f]{16}-\d+\.ts$/);
    if (match) segments.push(match[1]);
  });

  // Plays: video time advances, no error overlay.
  const t0 = await waitFor("playback to start", async () => {
    const t = await currentTime(page);
    return t > 1 ? t : 0;
  }, 40000);
  await sleep(3000);
  assert.ok(await currentTime(page) > t0 + 1.5, "video time advances");
  assert.equal(await page.locator("#player-error").isVisible(), false, "no error overlay");
  assert.equal(await page.locator("#live-badge").textContent(), "LIVE");
  await page.screenshot({ path: join(artifacts, "02-playing.png") });

  // Quality: the menu lists every rendition; choosing 144p fetches 144p segments.
  const options = await page.locator("#quality option").allTextContents();
  assert.deepEqual(options.slice(0, 1), ["Auto"]);
  assert.equal(options.length, 4, `Auto + 3 renditions, got ${options}`);
  assert.ok(options.some((o) => o.startsWith("source")), `source is offered: ${options}`);
  const value = await page.locator("#quality option", { hasText: "144p" }).getAttribute("value");
  segments.length = 0;
  await page.selectOption("#quality", value);
  await waitFor("a 144p segment request", () => segments.includes("144p"), 20000);
  await page.screenshot({ path: join(artifacts, "03-quality-144p.png") });

  // Rewind from the live edge.
  await page.click("#go-live");
  await sleep(1500);
  await rewindThirtySeconds(page);
  await page.screenshot({ path: join(artifacts, "04-rewound-30s.png") });
  await page.click("#go-live");
  await waitForPlayer(page, "back at the live edge", (state) => state.behind < 12, 15000);
  await page.screenshot({ path: join(artifacts, "05-back-to-live.png") });
  assert.deepEqual(page.errors, []);
  await context.close();
});

test("a chat message posted in one page appears in another, as text", { skip }, async () => {
  const ada = await openWatchPage(await browser.newContext());
  const bob = await openWatchPage(await browser.newContext({ viewport: { width: 390, height: 844 } }));
  for (const [page, name] of [[ada, "Ada"], [bob, "Bob"]]) {
    await waitFor(`${name}'s anonymous chat`, async () =>
      (await page.locator("#chat-state").textContent()).includes("anonymously"), 20000);
    assert.equal(await page.locator("#send").isVisible(), false, "anonymous viewers cannot post");
    await page.fill("#join-name", name);
    await page.click("#join button[type=submit]");
    await waitFor(`${name} joined`, async () => page.locator("#send").isVisible(), 20000);
    assert.equal(await page.locator("#join").isVisible(), false, "the join form goes away");
  }
  const text = `<b>hello</b> from Ada ${Date.now()}`;
  await ada.fill("#text", text);
  await ada.click("#send button[type=submit]");
  const seen = await waitFor("Ada's message on Bob's page", async () => {
    const texts = await bob.locator("#messages .text").allTextContents();
    return texts.includes(text) ? texts : null;
  }, 15000);
  assert.ok(seen.includes(text));
  assert.equal(await bob.locator("#messages b").count(), 0, "markup is shown as text");
  await bob.screenshot({ path: join(artifacts, "06-chat-phone-size.png") });
  await ada.screenshot({ path: join(artifacts, "07-chat-desktop.png") });
});

test("after the publisher stops, the session is a past broadcast that plays to its end", { skip }, async () => {
  const page = await openWatchPage(await browser.newContext());
  await waitFor("playback", async () => (await currentTime(page)) > 1, 30000);
  publisher.kill("SIGINT");
  await new Promise((resolve) => publisher.once("exit", resolve));
  publisher = null;
  await waitFor("the room to go idle", async () => (await page.locator("#live-badge").textContent()) === "IDLE", 30000);
  const entry = page.locator("#past button").first();
  await waitFor("a past broadcast", async () => (await page.locator("#past button").count()) > 0, 60000, 1000);
  const label = await entry.textContent();
  assert.doesNotMatch(label, /interrupted/, "a clean stop is a complete session");
  await page.screenshot({ path: join(artifacts, "08-past-broadcasts.png") });

  const duration = await playPastBroadcastToEnd(page, entry);
  // The publisher ran through the earlier tests: well over half a minute.
  assert.ok(duration > 30, `VOD duration ${duration}`);
  await page.screenshot({ path: join(artifacts, "09-past-broadcast-ended.png") });
  assert.deepEqual(page.errors, []);
});

test("a low-latency room plays about two seconds behind live, switches quality, rewinds and returns", { skip }, async (t) => {
  const fast = publish(fastUrl);
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await openWatchPage(context, "fast");
    const parts = [];
    let blockingReloads = 0;
    let deltaRequests = 0;
    let deltaUpdates = 0;
    page.on("request", (request) => {
      const url = request.url();
      const part = url.match(/\/hls\/([^/]+)\/[0-9a-f]{16}-\d+\.\d+\.m4s$/);
      if (part) parts.push(part[1]);
      if (/\/index\.m3u8\?_HLS_msn=\d+&_HLS_part=\d+/.test(url)) blockingReloads += 1;
      if (/\/index\.m3u8\?.*\b_HLS_skip=YES\b/.test(url)) deltaRequests += 1;
    });
    // hls.js asks for delta updates once the playlist advertises CAN-SKIP-UNTIL; count the
    // answers that actually left segments out.
    page.on("response", async (response) => {
      if (!/\b_HLS_skip=YES\b/.test(response.url()) || response.status() !== 200) return;
      const skipped = (await response.text().catch(() => "")).match(/#EXT-X-SKIP:SKIPPED-SEGMENTS=(\d+)/);
      if (skipped && Number(skipped[1]) > 0) deltaUpdates += 1;
    });
    await waitFor("playback to start", async () => (await currentTime(page)) > 1, 40000);
    assert.equal(await page.evaluate(() => hls.config.lowLatencyMode), true, "hls.js in low-latency mode");
    const latency = await waitFor("a latency reading", async () => {
      const text = await page.locator("#position").textContent();
      return /^\d+\.\d s behind live$/.test(text) ? Number(await page.locator("#position").getAttribute("data-latency")) : 0;
    }, 20000);
    assert.ok(latency > 0 && latency < 4, `low-latency playback ${latency} s behind live`);
    assert.ok(parts.length > 0, "parts are fetched");
    assert.ok(blockingReloads > 0, "playlists are reloaded with blocking requests");
    await page.screenshot({ path: join(artifacts, "10-low-latency-playing.png") });

    const value = await page.locator("#quality option", { hasText: "144p" }).getAttribute("value");
    parts.length = 0;
    await page.selectOption("#quality", value);
    await waitFor("a 144p part request", () => parts.includes("144p"), 20000);

    await waitFor("35 s in the DVR window", () => page.evaluate(() => {
      const r = document.getElementById("video").seekable;
      return r.length > 0 && r.end(r.length - 1) - r.start(0) > 35;
    }), 60000, 1000);
    // By now the window is longer than the skip boundary (12 s): reloads are delta updates
    // that leave segments out, and playback goes on on top of them.
    assert.ok(deltaRequests > 0, "hls.js asks for delta updates (_HLS_skip=YES)");
    await waitFor("a delta update that skips segments", () => deltaUpdates > 0, 10000);
    const playedAt = await currentTime(page);
    await waitFor("playback to go on over delta updates", async () => (await currentTime(page)) > playedAt + 2, 10000);
    t.diagnostic(`${blockingReloads} blocking reloads, ${deltaRequests} with _HLS_skip=YES, ${deltaUpdates} answers skipped segments`);
    await rewindThirtySeconds(page);
    await page.screenshot({ path: join(artifacts, "11-low-latency-rewound.png") });
    await page.click("#go-live");
    await waitForPlayer(page, "back near live", (state) => state.latency > 0 && state.latency < 4, 20000);
    await page.screenshot({ path: join(artifacts, "12-low-latency-back-to-live.png") });
    assert.deepEqual(page.errors, []);
    await context.close();
  } finally {
    fast.kill("SIGINT");
  }
});

test("a low-latency room's session is a past broadcast, recorded as CMAF, that plays to its end", { skip }, async () => {
  // The previous test published to the fast room for well over half a minute, then stopped.
  const page = await openWatchPage(await browser.newContext(), "fast");
  const media = [];
  page.on("request", (request) => {
    const file = request.url().match(/\/recordings\/[^/]+\/[^/]+\/((?:init-\d+\.mp4)|(?:\d+\.m4s))$/);
    if (file) media.push(file[1]);
  });
  const entry = page.locator("#past button").first();
  await waitFor("a past broadcast", async () => (await page.locator("#past button").count()) > 0, 90000, 1000);
  assert.doesNotMatch(await entry.textContent(), /interrupted/, "a clean stop is a complete session");
  const duration = await playPastBroadcastToEnd(page, entry);
  assert.ok(duration > 30, `VOD duration ${duration}`);
  assert.equal(await page.evaluate(() => hls.config.lowLatencyMode), false, "a recording is not low latency");
  assert.ok(media.some((f) => f.startsWith("init-")), `an init segment fetched: ${media}`);
  assert.ok(media.some((f) => f.endsWith(".m4s")), `CMAF segments fetched: ${media}`);
  await page.screenshot({ path: join(artifacts, "13-low-latency-past-broadcast-ended.png") });
  assert.deepEqual(page.errors, []);
});

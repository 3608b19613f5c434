// Watch page of one room: live player with quality menu and DVR rewind, chat, past broadcasts.
// Served by `roomcast dev` at /<namespace>/<room>/. All text from the network is rendered with
// textContent, never as markup.
"use strict";

const [, namespace, roomName] = location.pathname.split("/");
const $ = (id) => document.getElementById(id);
const video = $("video");
let hls = null;
let room = null;
let playing = "live"; // "live" or the id of the past broadcast being played
let liveUrl = "";

// ---------------------------------------------------------------------------------------------
// Player

function showError(text) {
  const box = $("player-error");
  box.textContent = text;
  box.hidden = !text;
}

function lowLatency() {
  return Boolean(room && room.latency === "low" && playing === "live");
}

function load(url) {
  showError("");
  if (window.Hls && Hls.isSupported()) {
    if (hls) hls.destroy();
    // Low-latency rooms: blocking playlist reloads, parts and preload hints (LL-HLS).
    hls = new Hls({ lowLatencyMode: lowLatency(), backBufferLength: 600 });
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      fillQualityMenu();
      video.play().catch(() => {});
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, () => updatePosition());
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      // Said in the console so that a viewer's report (and the browser test) can tell why the
      // player reloaded or gave up.
      console.warn(`hls.js fatal error: ${data.type} ${data.details}`);
      if (data.type === Hls.ErrorTypes.NETWORK_ERROR && playing === "live") {
        // Idle room or a publisher reconnecting: try again shortly.
        $("player-idle").hidden = false;
        setTimeout(() => playing === "live" && load(liveUrl), 3000);
      } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
      } else {
        showError(`Playback failed: ${data.details}`);
      }
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url; // Safari plays HLS natively
    video.play().catch(() => {});
  } else {
    showError("This browser cannot play HLS.");
  }
}

function fillQualityMenu() {
  const select = $("quality");
  const levels = hls ? hls.levels : [];
  select.replaceChildren(new Option("Auto", "-1"));
  levels.forEach((level, index) => {
    // The rendition's name is the directory of its playlist: ".../hls/<rendition>/index.m3u8".
    const url = Array.isArray(level.url) ? level.url[0] : level.url || "";
    const rendition = url.split("/").slice(-2, -1)[0];
    const height = level.height ? `${level.height}p` : "";
    const label = rendition && rendition !== height ? `${rendition}${height ? ` (${height})` : ""}` : height || `level ${index}`;
    select.append(new Option(label, String(index)));
  });
  select.value = "-1";
}

$("quality").addEventListener("change", (event) => {
  if (!hls) return;
  // currentLevel switches at once (flushes the buffer); -1 returns to automatic selection.
  hls.currentLevel = Number(event.target.value);
});

function seekable() {
  const ranges = video.seekable;
  if (!ranges || ranges.length === 0) return null;
  return { start: ranges.start(0), end: ranges.end(ranges.length - 1) };
}

function liveEdge() {
  if (hls && Number.isFinite(hls.liveSyncPosition)) return hls.liveSyncPosition;
  const range = seekable();
  return range ? range.end : video.currentTime;
}

function rewind(seconds) {
  const range = seekable();
  if (!range) return;
  video.currentTime = Math.max(range.start, video.currentTime - seconds);
  updatePosition();
}

$("rewind-30").addEventListener("click", () => rewind(30));
$("rewind-60").addEventListener("click", () => rewind(60));
$("go-live").addEventListener("click", () => {
  if (playing !== "live") {
    playing = "live";
    load(liveUrl);
    return;
  }
  video.currentTime = liveEdge();
  video.play().catch(() => {});
  updatePosition();
});

function updatePosition() {
  const position = $("position");
  if (playing !== "live") {
    position.textContent = "past broadcast";
    return;
  }
  const behind = Math.max(0, liveEdge() - video.currentTime);
  position.dataset.behind = String(behind);
  // A low-latency room plays seconds behind live: say how many (hls.js measures the distance
  // to the end of the last part it knows).
  if (lowLatency() && hls && Number.isFinite(hls.latency) && behind < 5) {
    position.textContent = `${hls.latency.toFixed(1)} s behind live`;
    position.dataset.latency = String(hls.latency);
    return;
  }
  delete position.dataset.latency;
  position.textContent = behind > 5 ? `${Math.round(behind)} s behind live` : "at live edge";
}

video.addEventListener("timeupdate", updatePosition);
video.addEventListener("playing", () => { $("player-idle").hidden = true; });

// ---------------------------------------------------------------------------------------------
// Room state: live badge and viewers

async function refreshRoom() {
  try {
    const response = await fetch(`/api/rooms/${namespace}/${roomName}`, { cache: "no-store" });
    if (!response.ok) throw new Error(`${response.status}`);
    room = await response.json();
  } catch (e) {
    return;
  }
  const badge = $("live-badge");
  badge.textContent = room.live ? "LIVE" : "IDLE";
  badge.className = `badge ${room.live ? "live" : "idle"}`;
  $("viewers").textContent = `${room.viewers} watching`;
}

// ---------------------------------------------------------------------------------------------
// Past broadcasts

async function refreshPast() {
  if (!room || !room.recordingsUrl) return;
  let sessions = [];
  try {
    const response = await fetch(`${room.recordingsUrl}?limit=20`, { cache: "no-store" });
    if (!response.ok) return;
    sessions = (await response.json()).recordings || [];
  } catch (e) {
    return;
  }
  // Newest first; the live session is the player above, not a past broadcast.
  const finished = sessions.filter((s) => s.status !== "live" && s.playlist);
  $("past-empty").hidden = finished.length > 0;
  const list = $("past");
  const shown = [...list.querySelectorAll("button")].map((b) => b.dataset.sessionId).join();
  if (shown === finished.map((s) => s.sessionId).join()) return; // keep focus and state
  list.replaceChildren(...finished.map((session) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    const started = new Date(session.startedAt);
    const seconds = Math.round(session.durationSeconds || 0);
    const length = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
    button.textContent = `${started.toLocaleString()} · ${length}${session.status === "interrupted" ? " · interrupted" : ""}`;
    button.dataset.sessionId = session.sessionId;
    button.setAttribute("aria-label", `Play the broadcast of ${started.toLocaleString()} (${length})`);
    button.addEventListener("click", () => {
      playing = session.sessionId;
      $("player-idle").hidden = true;
      load(`${room.recordingsUrl}/${session.playlist}`);
      updatePosition();
    });
    item.append(button);
    return item;
  }));
}

// ---------------------------------------------------------------------------------------------
// Chat

let socket = null;
let me = null;

function chatError(text) {
  const box = $("chat-error");
  box.textContent = text;
  box.hidden = !text;
}

function appendMessage(message) {
  const item = document.createElement("li");
  item.dataset.id = message.id;
  item.className = `role-${message.role}`;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = message.name;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = message.text; // plain text, always
  item.append(name, text);
  if (me && (me.role === "moderator" || me.role === "streamer")) {
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "mod";
    remove.textContent = "delete";
    remove.setAttribute("aria-label", `Delete message from ${message.name}`);
    remove.addEventListener("click", () => socket.emit("delete", { id: message.id }));
    const ban = document.createElement("button");
    ban.type = "button";
    ban.className = "mod";
    ban.textContent = "ban";
    ban.setAttribute("aria-label", `Ban ${message.name}`);
    ban.addEventListener("click", () => socket.emit("ban", { userId: message.userId }));
    item.append(remove, ban);
  }
  const list = $("messages");
  list.append(item);
  list.scrollTop = list.scrollHeight;
}

function connectChat(token) {
  if (socket) socket.disconnect();
  const options = { path: `/${namespace}/${roomName}/chat/socket.io` };
  if (token) options.auth = { token };
  socket = io(location.origin, options);
  $("chat-state").textContent = "connecting…";
  socket.on("joined", (state) => {
    me = state.user;
    $("chat-state").textContent = me.anonymous ? "reading anonymously" : `as ${me.name}`;
    $("messages").replaceChildren();
    state.history.forEach(appendMessage);
    $("join").hidden = !me.anonymous;
    $("send").hidden = me.anonymous;
    chatError("");
  });
  socket.on("message", appendMessage);
  socket.on("message_deleted", ({ id }) => {
    const item = $("messages").querySelector(`li[data-id="${CSS.escape(id)}"]`);
    if (item) item.remove();
  });
  socket.on("viewers", ({ count }) => { $("chat-state").dataset.viewers = String(count); });
  socket.on("live", () => refreshRoom());
  socket.on("chat_error", (error) => chatError(error.message));
  socket.on("banned", () => chatError("You were banned from this chat."));
  socket.on("connect_error", (error) => chatError(error.message));
}

$("join").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("join-name").value.trim();
  const role = $("join-role").value;
  try {
    const response = await fetch(`/api/rooms/${namespace}/${roomName}/chat-token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name, role }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    connectChat(body.token);
  } catch (e) {
    chatError(`Cannot join: ${e.message}`);
  }
});

$("send").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("text");
  const text = input.value;
  if (!text.trim()) return;
  const ack = await socket.emitWithAck("message", { text });
  if (ack && ack.ok) {
    input.value = "";
  }
});

// ---------------------------------------------------------------------------------------------

async function start() {
  $("room-title").textContent = `${namespace}/${roomName}`;
  document.title = `${roomName} — roomcast`;
  await refreshRoom();
  if (!room) {
    showError("This room does not exist.");
    return;
  }
  liveUrl = room.hlsUrl;
  load(liveUrl);
  connectChat(null);
  refreshPast();
  setInterval(refreshRoom, 3000);
  setInterval(refreshPast, 5000);
}

start();

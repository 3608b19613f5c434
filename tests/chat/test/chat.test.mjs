// roomcast-chat with the embedded store and one replica, driven by the official socket.io client.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { startChat, connect, mintToken, mintTokenLikeAnApp, request, nextEvent, sleep, tempDir, KEY } from "./helpers.mjs";

const nowSec = () => Math.floor(Date.now() / 1000);

describe("one replica, embedded store", () => {
  let chat;
  let tokens;
  before(async () => {
    chat = await startChat({ chat: { historySize: 5, maxMessageLength: 20, rateLimitPerMinute: 600 } });
    tokens = {
      ada: mintToken(chat.keyFile, { user: "ada", name: "Ada" }),
      bob: mintToken(chat.keyFile, { user: "bob", name: "Bob" }),
      mod: mintToken(chat.keyFile, { user: "mod", name: "Mia", role: "moderator" }),
      troll: mintToken(chat.keyFile, { user: "troll", name: "Troll" }),
    };
  });
  after(async () => {
    await chat?.stop();
  });

  test("anonymous viewers join with a generated name, the viewer count and the live state", async () => {
    const { socket, joined } = await connect(chat);
    try {
      assert.equal(joined.user.anonymous, true);
      assert.match(joined.user.name, /^guest-\d{4}$/);
      assert.equal(joined.user.role, "viewer");
      assert.ok(joined.viewers >= 1);
      assert.equal(joined.live, false);
      assert.deepEqual(joined.room, { namespace: "shows", name: "lobby" });
      assert.deepEqual(joined.limits, { maxMessageLength: 20, rateLimitPerMinute: 600 });
    } finally {
      socket.close();
    }
  });

  test("a posted message is trimmed, given an id and time, and broadcast to everyone", async () => {
    const viewer = await connect(chat);
    const ada = await connect(chat, { token: tokens.ada });
    try {
      const seenByViewer = nextEvent(viewer.socket, "message");
      const seenByAda = nextEvent(ada.socket, "message");
      const before = Date.now();
      const ack = await request(ada.socket, "message", { text: "  hello room  " });
      assert.equal(ack.ok, true);
      const msg = await seenByViewer;
      assert.deepEqual(await seenByAda, msg);
      assert.deepEqual(ack.data, msg);
      assert.equal(msg.text, "hello room");
      assert.equal(msg.userId, "ada");
      assert.equal(msg.name, "Ada");
      assert.match(msg.id, /^[0-9a-f]{24}$/);
      assert.ok(msg.ts >= before - 1000 && msg.ts <= Date.now() + 1000);
    } finally {
      viewer.socket.close();
      ada.socket.close();
    }
  });

  test("joining sends the last historySize messages, oldest first", async () => {
    const ada = await connect(chat, { token: tokens.ada });
    try {
      for (let i = 0; i < 7; i++) {
        assert.equal((await request(ada.socket, "message", { text: `history ${i}` })).ok, true);
      }
      const late = await connect(chat);
      late.socket.close();
      assert.deepEqual(late.joined.history.map((m) => m.text), ["history 2", "history 3", "history 4", "history 5", "history 6"]);
    } finally {
      ada.socket.close();
    }
  });

  test("empty, too long and malformed messages are refused with a chat_error event", async () => {
    const ada = await connect(chat, { token: tokens.ada });
    try {
      const errorEvent = nextEvent(ada.socket, "chat_error");
      const empty = await request(ada.socket, "message", { text: "   " });
      assert.equal(empty.ok, false);
      assert.equal(empty.error.code, "empty_message");
      assert.equal((await errorEvent).code, "empty_message");

      const long = await request(ada.socket, "message", { text: "x".repeat(21) });
      assert.equal(long.error.code, "message_too_long");
      assert.match(long.error.message, /limit is 20/);
      // 20 characters (not bytes) is fine, even in multi-byte scripts.
      assert.equal((await request(ada.socket, "message", { text: "é".repeat(20) })).ok, true);

      const bad = await request(ada.socket, "message", { body: "no text field" });
      assert.equal(bad.error.code, "bad_request");
    } finally {
      ada.socket.close();
    }
  });

  test("hostile payloads are refused as bad requests and leave the socket and server working", async () => {
    const ada = await connect(chat, { token: tokens.ada });
    const mod = await connect(chat, { token: tokens.mod });
    try {
      const codeOf = async (socket, event, data) => {
        const ack = await request(socket, event, data);
        return ack.ok ? "ok" : ack.error.code;
      };
      // Wrong types, operator objects, a lone UTF-16 surrogate (JSON.stringify escapes it).
      assert.equal(await codeOf(ada.socket, "message", { text: 42 }), "bad_request");
      assert.equal(await codeOf(ada.socket, "message", { text: { $gt: "" } }), "bad_request");
      assert.equal(await codeOf(ada.socket, "message", "just a string"), "bad_request");
      assert.equal(await codeOf(ada.socket, "message", { text: "a\ud800b" }), "bad_request");
      assert.equal(await codeOf(mod.socket, "slow_mode", { seconds: -1 }), "bad_request");
      assert.equal(await codeOf(mod.socket, "slow_mode", { seconds: 1e300 }), "bad_request");
      assert.equal(await codeOf(mod.socket, "ban", { userId: ["troll"] }), "bad_request");
      // NUL characters are plain text.
      const nul = await request(ada.socket, "message", { text: "a\u0000b" });
      assert.equal(nul.data.text, "a\u0000b");
      // Raw packets the official client would never send: 20,000 and 200 levels of nesting (as
      // a field we read, one we ignore, the whole payload), an ack id past u64. socketioxide's
      // packet parser refuses them and closes that client's own transport; a bystander on the
      // same server keeps chatting.
      const deep = (n) => "[".repeat(n) + "]".repeat(n);
      for (const packet of [
        `42["message",{"text":${deep(20000)}}]`,
        `42["message",{"text":"hi","x":${deep(20000)}}]`,
        `42["message",{"text":"hi","x":${deep(200)}}]`,
        `42["message",${deep(20000)}]`,
        `42[${deep(20000)}]`,
        `4299999999999999999999["message",{"text":"hi"}]`,
      ]) {
        const hostile = await connect(chat, { token: tokens.troll });
        const gone = nextEvent(hostile.socket, "disconnect");
        hostile.socket.io.engine.write(packet);
        assert.equal(await gone, "transport close", packet.slice(0, 40));
      }
      assert.equal(ada.socket.connected, true);
      assert.equal(await codeOf(ada.socket, "message", { text: "still here" }), "ok");
      assert.equal((await fetch(new URL("/healthz", chat.url))).status, 200);
    } finally {
      ada.socket.close();
      mod.socket.close();
    }
  });

  test("anonymous viewers cannot post", async () => {
    const { socket } = await connect(chat);
    try {
      const ack = await request(socket, "message", { text: "hi" });
      assert.equal(ack.ok, false);
      assert.equal(ack.error.code, "unauthorized");
    } finally {
      socket.close();
    }
  });

  test("HTML and script payloads are delivered as inert text, byte for byte", async () => {
    const viewer = await connect(chat);
    const ada = await connect(chat, { token: tokens.ada });
    try {
      const payload = `<img src=x onerror=alert(1)>`.slice(0, 20);
      const got = nextEvent(viewer.socket, "message");
      await request(ada.socket, "message", { text: payload });
      assert.equal((await got).text, payload);
      const script = "<script>alert(1)</";
      await request(ada.socket, "message", { text: script });
      const again = await connect(chat);
      again.socket.close();
      assert.equal(again.joined.history.at(-1).text, script);
    } finally {
      viewer.socket.close();
      ada.socket.close();
    }
  });

  test("forged, expired and malformed tokens are refused with connect_error", async () => {
    const forged = mintTokenLikeAnApp("not-the-room-key-0000000000", { sub: "eve", name: "Eve", role: "streamer", exp: nowSec() + 3600 });
    await assert.rejects(connect(chat, { token: forged }), (err) => {
      assert.match(err.message, /^invalid_token: .*signature/);
      return true;
    });
    const expired = mintTokenLikeAnApp(KEY, { sub: "eve", name: "Eve", role: "viewer", exp: nowSec() - 5 });
    await assert.rejects(connect(chat, { token: expired }), /token_expired/);
    await assert.rejects(connect(chat, { token: "garbage" }), /invalid_token/);
  });

  test("a token minted by an application with a JWT HS256 library works", async () => {
    const token = mintTokenLikeAnApp(KEY, { sub: "app-user", name: "From App", role: "streamer", exp: nowSec() + 60 });
    const { socket, joined } = await connect(chat, { token });
    socket.close();
    assert.deepEqual(joined.user, { id: "app-user", name: "From App", role: "streamer", anonymous: false });
  });

  test("moderators delete messages: everyone is told and history forgets it", async () => {
    const viewer = await connect(chat);
    const ada = await connect(chat, { token: tokens.ada });
    const mod = await connect(chat, { token: tokens.mod });
    try {
      const { data: msg } = await request(ada.socket, "message", { text: "delete me" });
      const denied = await request(ada.socket, "delete", { id: msg.id });
      assert.equal(denied.error.code, "forbidden");
      const removal = nextEvent(viewer.socket, "message_deleted");
      assert.equal((await request(mod.socket, "delete", { id: msg.id })).ok, true);
      assert.deepEqual(await removal, { id: msg.id, by: "mod" });
      assert.equal((await request(mod.socket, "delete", { id: msg.id })).error.code, "not_found");
      const late = await connect(chat);
      late.socket.close();
      assert.ok(!late.joined.history.some((m) => m.id === msg.id));
    } finally {
      viewer.socket.close();
      ada.socket.close();
      mod.socket.close();
    }
  });

  test("a banned user is told, disconnected and refused until unbanned", async () => {
    const troll = await connect(chat, { token: tokens.troll });
    const mod = await connect(chat, { token: tokens.mod });
    try {
      assert.equal((await request(troll.socket, "ban", { userId: "ada" })).error.code, "forbidden");
      const banned = nextEvent(troll.socket, "banned");
      const gone = nextEvent(troll.socket, "disconnect");
      const ack = await request(mod.socket, "ban", { userId: "troll", reason: "spam" });
      assert.equal(ack.ok, true);
      assert.deepEqual(await banned, { reason: "spam" });
      assert.equal(await gone, "io server disconnect");
      await assert.rejects(connect(chat, { token: tokens.troll }), /^Error: banned|banned:/);
      assert.equal((await request(mod.socket, "unban", { userId: "troll" })).ok, true);
      const back = await connect(chat, { token: tokens.troll });
      back.socket.close();
    } finally {
      troll.socket.close();
      mod.socket.close();
    }
  });

  test("slow mode spaces viewers' messages; moderators are exempt", async () => {
    const bob = await connect(chat, { token: tokens.bob });
    const mod = await connect(chat, { token: tokens.mod });
    try {
      assert.equal((await request(bob.socket, "slow_mode", { seconds: 30 })).error.code, "forbidden");
      const notice = nextEvent(bob.socket, "slow_mode");
      assert.equal((await request(mod.socket, "slow_mode", { seconds: 30 })).ok, true);
      assert.deepEqual(await notice, { seconds: 30 });
      assert.equal((await request(bob.socket, "message", { text: "one" })).ok, true);
      const second = await request(bob.socket, "message", { text: "two" });
      assert.equal(second.error.code, "slow_mode");
      assert.ok(second.error.retryAfterMs > 25000);
      assert.equal((await request(mod.socket, "message", { text: "m1" })).ok, true);
      assert.equal((await request(mod.socket, "message", { text: "m2" })).ok, true);
      const joined = (await connect(chat)).joined;
      assert.equal(joined.slowModeSeconds, 30);
    } finally {
      await request(mod.socket, "slow_mode", { seconds: 0 });
      bob.socket.close();
      mod.socket.close();
    }
  });

  test("the viewer count is broadcast when people join and leave", async () => {
    const watcher = await connect(chat);
    try {
      await sleep(1500);
      const base = watcher.joined.viewers;
      const up = nextEvent(watcher.socket, "viewers", 5000, (v) => v.count === base + 2);
      const a = await connect(chat);
      const b = await connect(chat);
      await up;
      const down = nextEvent(watcher.socket, "viewers", 5000, (v) => v.count === base);
      a.socket.close();
      b.socket.close();
      await down;
      const metrics = await (await fetch(chat.metricsUrl)).text();
      assert.match(metrics, /roomcast_chat_connections\{namespace="shows",room="lobby"\} \d+/);
      assert.match(metrics, /roomcast_chat_messages_total\{namespace="shows",room="lobby"\} [1-9]/);
    } finally {
      watcher.socket.close();
    }
  });

  test("the long-polling transport works too", async () => {
    const viewer = await connect(chat, { transports: ["polling"] });
    const ada = await connect(chat, { token: tokens.ada, transports: ["polling"] });
    try {
      const got = nextEvent(viewer.socket, "message");
      await request(ada.socket, "message", { text: "over polling" });
      assert.equal((await got).text, "over polling");
    } finally {
      viewer.socket.close();
      ada.socket.close();
    }
  });

  test("health and readiness endpoints answer", async () => {
    assert.equal((await fetch(`${chat.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${chat.url}/readyz`)).status, 200);
  });
});

describe("single-threaded runtime (ROOMCAST_RUNTIME=current-thread)", () => {
  test("the server runs on the runtime asked for and broadcasts as usual", async () => {
    const chat = await startChat({ env: { ROOMCAST_RUNTIME: "current-thread" } });
    try {
      assert.match(chat.log(), /runtime=CurrentThread/);
      const viewer = await connect(chat);
      const ada = await connect(chat, { token: mintToken(chat.keyFile, { user: "ada", name: "Ada" }) });
      try {
        const seen = nextEvent(viewer.socket, "message");
        const ack = await request(ada.socket, "message", { text: "one thread" });
        assert.equal(ack.ok, true);
        assert.equal((await seen).text, "one thread");
      } finally {
        viewer.socket.close();
        ada.socket.close();
      }
    } finally {
      await chat.stop();
    }
  });
});

describe("rate limit", () => {
  test("a user past rateLimitPerMinute is refused with retryAfterMs; others are not slowed", async () => {
    const chat = await startChat({ chat: { rateLimitPerMinute: 5 } });
    try {
      const flooder = await connect(chat, { token: mintToken(chat.keyFile, { user: "flood", name: "F" }) });
      const bob = await connect(chat, { token: mintToken(chat.keyFile, { user: "bob", name: "Bob" }) });
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => request(flooder.socket, "message", { text: `spam ${i}` })));
      assert.equal(results.filter((r) => r.ok).length, 5);
      const refused = results.find((r) => !r.ok);
      assert.equal(refused.error.code, "rate_limited");
      assert.ok(refused.error.retryAfterMs > 0 && refused.error.retryAfterMs <= 12000);
      const started = Date.now();
      assert.equal((await request(bob.socket, "message", { text: "still here" })).ok, true);
      assert.ok(Date.now() - started < 1000, "bob's message was not held back by the flood");
      flooder.socket.close();
      bob.socket.close();
    } finally {
      await chat.stop();
    }
  });
});

describe("abuse limits", () => {
  test("connections per client address are capped", async () => {
    const chat = await startChat({ args: ["--max-connections-per-ip", "2"] });
    try {
      const a = await connect(chat);
      const b = await connect(chat);
      await assert.rejects(connect(chat), /too_many_connections/);
      a.socket.close();
      await sleep(300);
      const c = await connect(chat);
      b.socket.close();
      c.socket.close();
    } finally {
      await chat.stop();
    }
  });

  test("a spoofed X-Forwarded-For from an untrusted peer does not dodge the per-address cap", async () => {
    // No --trusted-proxies: nobody's header is believed, the socket peer is the client.
    const chat = await startChat({ args: ["--max-connections-per-ip", "2"] });
    try {
      const a = await connect(chat, { headers: { "x-forwarded-for": "198.51.100.1" } });
      const b = await connect(chat, { headers: { "x-forwarded-for": "198.51.100.2" } });
      await assert.rejects(connect(chat, { headers: { "x-forwarded-for": "198.51.100.3" } }), /too_many_connections/);
      await assert.rejects(connect(chat, { headers: { "x-forwarded-for": "2001:db8::7" } }), /too_many_connections/);
      // One log line per offender, not one per refused socket.
      assert.equal(chat.log().match(/at its connection limit/g)?.length, 1, chat.log());
      a.socket.close();
      b.socket.close();
    } finally {
      await chat.stop();
    }
  });

  test("behind a trusted proxy the right-most untrusted X-Forwarded-For address is counted", async () => {
    // The test client connects from loopback, which plays the Ingress here.
    const chat = await startChat({ args: ["--max-connections-per-ip", "1", "--trusted-proxies", "127.0.0.0/8,::1,10.0.0.0/8"] });
    const open = [];
    const as = (xff) => connect(chat, xff === undefined ? {} : { headers: { "x-forwarded-for": xff } }).then((c) => (open.push(c), c));
    try {
      await as("6.6.6.6, 198.51.100.1");
      // The same client with different spoofed entries on the left is still one client...
      await assert.rejects(as("7.7.7.7, 198.51.100.1"), /too_many_connections/);
      // ...also through a trusted in-cluster hop.
      await assert.rejects(as("8.8.8.8, 198.51.100.1, 10.0.3.9"), /too_many_connections/);
      await as("198.51.100.2");
      await as("2001:db8::1");
      await assert.rejects(as("[2001:db8::1]:4711"), /too_many_connections/);
      // IPv6 is counted per /64: another address of the same subscriber is the same client.
      await assert.rejects(as("2001:db8::99"), /too_many_connections/);
      await as("2001:db8:0:1::1");
      // Garbage after trusted hops counts under the nearest trusted hop, never a fresh identity.
      await as("garbage, 10.0.3.9");
      await assert.rejects(as("other-garbage, 10.0.3.9"), /too_many_connections/);
      // A very long header (4,000 spoofed entries) changes nothing.
      const long = Array(4000).fill("6.6.6.6").join(",");
      await assert.rejects(as(`${long}, 198.51.100.2`), /too_many_connections/);
      await as(`${long}, 198.51.100.3`);
      // No header: the peer itself.
      await as(undefined);
      await assert.rejects(as(""), /too_many_connections/);
      const metrics = await (await fetch(chat.metricsUrl)).text();
      assert.match(metrics, /roomcast_chat_connects_refused_total\{[^}]*reason="too_many_connections"\} 7/);
    } finally {
      for (const c of open) c.socket.close();
      await chat.stop();
    }
  });

  test("the deprecated --trust-forwarded-for=true still believes anyone and warns", async () => {
    const chat = await startChat({ args: ["--max-connections-per-ip", "1", "--trust-forwarded-for", "true"] });
    try {
      const a = await connect(chat, { headers: { "x-forwarded-for": "198.51.100.1" } });
      const b = await connect(chat, { headers: { "x-forwarded-for": "6.6.6.6, 198.51.100.2" } });
      await assert.rejects(connect(chat, { headers: { "x-forwarded-for": "198.51.100.2" } }), /too_many_connections/);
      assert.match(chat.log(), /trust-forwarded-for.*deprecated/);
      a.socket.close();
      b.socket.close();
    } finally {
      await chat.stop();
    }
  });

  test("a join gets the newest history that fits in --max-history-bytes, however long the messages", async () => {
    const chat = await startChat({ chat: { historySize: 100, maxMessageLength: 10000, rateLimitPerMinute: 6000 } });
    try {
      const ada = await connect(chat, { token: mintToken(chat.keyFile, { user: "ada", name: "Ada" }) });
      // 30 maximum-length messages of two-byte characters: 600 KB of history.
      for (let i = 0; i < 30; i++) {
        const text = `${String(i).padStart(2, "0")}${"é".repeat(9998)}`;
        assert.equal((await request(ada.socket, "message", { text })).ok, true);
      }
      ada.socket.close();
      const viewer = await connect(chat);
      const historyBytes = Buffer.byteLength(JSON.stringify(viewer.joined.history));
      const joinedBytes = Buffer.byteLength(JSON.stringify(viewer.joined));
      viewer.socket.close();
      assert.ok(historyBytes <= 64 * 1024, `history is ${historyBytes} bytes`);
      assert.ok(joinedBytes <= 64 * 1024 + 1024, `joined is ${joinedBytes} bytes`);
      assert.deepEqual(viewer.joined.history.map((m) => m.text.slice(0, 2)), ["27", "28", "29"], "the newest, oldest first");
      const metrics = await (await fetch(chat.metricsUrl)).text();
      assert.match(metrics, /roomcast_chat_history_capped_total\{[^}]*\} 1/);
    } finally {
      await chat.stop();
    }
  });

  test("frames larger than the maximum close the connection", async () => {
    const chat = await startChat({ chat: { maxMessageLength: 10000 }, args: ["--max-frame-bytes", "1024"] });
    try {
      const ada = await connect(chat, { token: mintToken(chat.keyFile, { user: "ada", name: "Ada" }) });
      const gone = nextEvent(ada.socket, "disconnect");
      ada.socket.emit("message", { text: "x".repeat(4000) });
      assert.equal(await gone, "transport close");
    } finally {
      await chat.stop();
    }
  });

  test("a client that stops answering heartbeats is dropped (idle timeout)", async () => {
    const chat = await startChat({ args: ["--ping-interval", "1s", "--ping-timeout", "1s"] });
    try {
      const watcher = await connect(chat);
      const silent = await connect(chat);
      await sleep(1500);
      // Stop the client's engine from answering pings without closing the socket.
      const engine = silent.socket.io.engine;
      const send = engine._sendPacket.bind(engine);
      engine._sendPacket = (type, ...rest) => (type === "pong" ? undefined : send(type, ...rest));
      const dropped = nextEvent(watcher.socket, "viewers", 8000, (v) => v.count === 1);
      await dropped;
      watcher.socket.close();
      silent.socket.close();
    } finally {
      await chat.stop();
    }
  });
});

describe("restart and shutdown, embedded store", () => {
  test("history and bans survive a restart; shutdown tells clients to reconnect", async () => {
    const dir = tempDir("restart");
    let chat = await startChat({ dir });
    const mod = mintToken(chat.keyFile, { user: "mod", name: "Mia", role: "moderator" });
    const ada = mintToken(chat.keyFile, { user: "ada", name: "Ada" });
    const m = await connect(chat, { token: mod });
    const a = await connect(chat, { token: ada });
    assert.equal((await request(a.socket, "message", { text: "written before restart" })).ok, true);
    assert.equal((await request(m.socket, "ban", { userId: "troll" })).ok, true);
    a.socket.close();
    const told = nextEvent(m.socket, "server_shutdown");
    const gone = nextEvent(m.socket, "disconnect");
    const code = await chat.stop("SIGTERM");
    assert.deepEqual(await told, { reconnect: true });
    assert.equal(await gone, "transport close", "a transport close makes socket.io clients reconnect");
    assert.equal(code, 0);

    chat = await startChat({ dir });
    try {
      const again = await connect(chat);
      again.socket.close();
      assert.ok(again.joined.history.some((x) => x.text === "written before restart"));
      await assert.rejects(connect(chat, { token: mintToken(chat.keyFile, { user: "troll", name: "T" }) }), /banned/);
    } finally {
      await chat.stop();
    }
  });

  test("a bad config fails at start naming the field", async () => {
    await assert.rejects(startChat({ chat: { maxMessageLength: 0 } }), /chat\.maxMessageLength/);
  });
});

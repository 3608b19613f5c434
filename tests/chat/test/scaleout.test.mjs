// Two replicas of one room sharing real Redis (socketioxide-redis adapter) and one MongoDB.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { startChat, startMongo, startRedis, connect, mintToken, request, nextEvent, waitForViewers, needs, sleep } from "./helpers.mjs";

const skip = needs("redis-server", ...(process.env.ROOMCAST_TEST_MONGODB_URI ? [] : ["secantusd-py"]));

describe("two replicas through Redis", { skip }, () => {
  let redis, mongo, a, b;
  before(async () => {
    redis = await startRedis();
    mongo = process.env.ROOMCAST_TEST_MONGODB_URI
      ? { uri: process.env.ROOMCAST_TEST_MONGODB_URI, stop: async () => {} }
      : await startMongo();
    const room = `scale-${Date.now().toString(36)}`;
    const chat = { rateLimitPerMinute: 4 };
    a = await startChat({ room, chat, mongoUri: mongo.uri, redisUrl: redis.url });
    b = await startChat({ room, chat, mongoUri: mongo.uri, redisUrl: redis.url });
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await redis?.stop();
    await mongo?.stop();
  });

  test("a message sent through replica A reaches a client on replica B", async () => {
    const ada = await connect(a, { token: mintToken(a.keyFile, { user: "ada", name: "Ada" }) });
    const viewer = await connect(b);
    try {
      const got = nextEvent(viewer.socket, "message");
      assert.equal((await request(ada.socket, "message", { text: "across replicas" })).ok, true);
      assert.equal((await got).text, "across replicas");
    } finally {
      ada.socket.close();
      viewer.socket.close();
    }
  });

  test("viewer counts add up across replicas", async () => {
    const onA = await connect(a);
    const onB1 = await connect(b);
    const onB2 = await connect(b);
    try {
      await waitForViewers(onA, 3);
      await waitForViewers(onB1, 3);
      await waitForViewers(onB2, 3);
      const metrics = await (await fetch(a.metricsUrl)).text();
      assert.match(metrics, /roomcast_chat_viewers\{[^}]*\} 3/);
      assert.match(metrics, /roomcast_chat_connections\{[^}]*\} 1/);
    } finally {
      onA.socket.close();
      onB1.socket.close();
      onB2.socket.close();
    }
  });

  test("a ban issued on replica A disconnects the user on replica B and B refuses them", async () => {
    const trollToken = mintToken(b.keyFile, { user: "troll", name: "Troll" });
    const troll = await connect(b, { token: trollToken });
    const mod = await connect(a, { token: mintToken(a.keyFile, { user: "mod", name: "Mia", role: "moderator" }) });
    try {
      const banned = nextEvent(troll.socket, "banned");
      const gone = nextEvent(troll.socket, "disconnect");
      assert.equal((await request(mod.socket, "ban", { userId: "troll", reason: "flood" })).ok, true);
      assert.deepEqual(await banned, { reason: "flood" });
      assert.equal(await gone, "io server disconnect");
      await assert.rejects(connect(b, { token: trollToken }), /banned/);
      await assert.rejects(connect(a, { token: trollToken }), /banned/);
    } finally {
      troll.socket.close();
      mod.socket.close();
    }
  });

  test("a user hopping between replicas gets one rate-limit allowance, not one per replica", async () => {
    const token = mintToken(a.keyFile, { user: "hopper", name: "Hop" });
    const onA = await connect(a, { token });
    const onB = await connect(b, { token });
    try {
      const codes = [];
      for (const [i, conn] of [onA, onB, onA, onB, onA, onB].entries()) {
        const ack = await request(conn.socket, "message", { text: `hop ${i}` });
        codes.push(ack.ok ? "ok" : ack.error.code);
      }
      // rateLimitPerMinute is 4: two replicas together admit 4, not 8.
      assert.deepEqual(codes, ["ok", "ok", "ok", "ok", "rate_limited", "rate_limited"]);
      const refused = await request(onA.socket, "message", { text: "again" });
      assert.ok(refused.error.retryAfterMs > 10000 && refused.error.retryAfterMs <= 15000, `${refused.error.retryAfterMs}`);
      for (const server of [a, b]) {
        const metrics = await (await fetch(server.metricsUrl)).text();
        assert.doesNotMatch(metrics, /roomcast_chat_rate_limit_fallbacks_total\{[^}]*\} [1-9]/);
      }
    } finally {
      onA.socket.close();
      onB.socket.close();
    }
  });

  test("slow mode set on replica A is announced to and enforced on replica B", async () => {
    const mod = await connect(a, { token: mintToken(a.keyFile, { user: "mod", name: "Mia", role: "moderator" }) });
    const bob = await connect(b, { token: mintToken(b.keyFile, { user: "bob", name: "Bob" }) });
    try {
      const notice = nextEvent(bob.socket, "slow_mode");
      assert.equal((await request(mod.socket, "slow_mode", { seconds: 60 })).ok, true);
      assert.deepEqual(await notice, { seconds: 60 });
      // B refreshes slow mode from the store on its presence tick (1 s in tests).
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal((await request(bob.socket, "message", { text: "first" })).ok, true);
      assert.equal((await request(bob.socket, "message", { text: "second" })).error.code, "slow_mode");
    } finally {
      await request(mod.socket, "slow_mode", { seconds: 0 });
      mod.socket.close();
      bob.socket.close();
    }
  });
});

describe("Redis goes away", { skip }, () => {
  test("posting keeps working, limited by the replica alone, counted and logged once", async () => {
    const redis = await startRedis();
    const chat = await startChat({ chat: { rateLimitPerMinute: 3 }, redisUrl: redis.url });
    try {
      const ada = await connect(chat, { token: mintToken(chat.keyFile, { user: "ada", name: "Ada" }) });
      assert.equal((await request(ada.socket, "message", { text: "before" })).ok, true);
      await redis.stop();
      await sleep(200);
      const codes = [];
      for (let i = 0; i < 5; i++) {
        const ack = await request(ada.socket, "message", { text: `during ${i}` });
        codes.push(ack.ok ? "ok" : ack.error.code);
      }
      // The replica's own bucket (3 a minute) decides while Redis is gone.
      assert.deepEqual(codes, ["ok", "ok", "ok", "rate_limited", "rate_limited"]);
      const metrics = await (await fetch(chat.metricsUrl)).text();
      assert.match(metrics, /roomcast_chat_rate_limit_fallbacks_total\{[^}]*\} 5/);
      assert.equal(chat.log().match(/Redis does not answer/g)?.length, 1, chat.log());
      ada.socket.close();
    } finally {
      await chat.stop();
      await redis.stop();
    }
  });
});

// Two replicas of one room sharing real Redis (socketioxide-redis adapter) and one MongoDB.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { startChat, startMongo, startRedis, connect, mintToken, request, nextEvent, waitForViewers, needs } from "./helpers.mjs";

const skip = needs("redis-server", ...(process.env.ROOMCAST_TEST_MONGODB_URI ? [] : ["secantusd-py"]));

describe("two replicas through Redis", { skip }, () => {
  let redis, mongo, a, b;
  before(async () => {
    redis = await startRedis();
    mongo = process.env.ROOMCAST_TEST_MONGODB_URI
      ? { uri: process.env.ROOMCAST_TEST_MONGODB_URI, stop: async () => {} }
      : await startMongo();
    const room = `scale-${Date.now().toString(36)}`;
    a = await startChat({ room, mongoUri: mongo.uri, redisUrl: redis.url });
    b = await startChat({ room, mongoUri: mongo.uri, redisUrl: redis.url });
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

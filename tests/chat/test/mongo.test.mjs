// roomcast-chat against the real MongoDB-compatible server (secantusd-py), or the MongoDB in
// ROOMCAST_TEST_MONGODB_URI.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { startChat, startMongo, connect, mintToken, request, tempDir, needs } from "./helpers.mjs";

const skip = process.env.ROOMCAST_TEST_MONGODB_URI ? false : needs("secantusd-py");

describe("MongoDB store", { skip }, () => {
  let mongo;
  before(async () => {
    mongo = process.env.ROOMCAST_TEST_MONGODB_URI
      ? { uri: process.env.ROOMCAST_TEST_MONGODB_URI, stop: async () => {} }
      : await startMongo();
  });
  after(async () => {
    await mongo?.stop();
  });

  test("history, deletions and bans are served after the chat restarts", async () => {
    const room = `mongo-${Date.now().toString(36)}`;
    const dir = tempDir("mongo");
    let chat = await startChat({ dir, room, mongoUri: mongo.uri, chat: { historySize: 3 } });
    const ada = mintToken(chat.keyFile, { user: "ada", name: "Ada" });
    const mod = mintToken(chat.keyFile, { user: "mod", name: "Mia", role: "moderator" });
    const a = await connect(chat, { token: ada });
    const m = await connect(chat, { token: mod });
    const ids = [];
    for (const text of ["one", "two", "<b>three</b>", "four"]) {
      const ack = await request(a.socket, "message", { text });
      assert.equal(ack.ok, true);
      ids.push(ack.data.id);
    }
    assert.equal((await request(m.socket, "delete", { id: ids[3] })).ok, true);
    assert.equal((await request(m.socket, "ban", { userId: "troll" })).ok, true);
    a.socket.close();
    m.socket.close();
    await chat.stop();

    chat = await startChat({ dir, room, mongoUri: mongo.uri, chat: { historySize: 3 } });
    try {
      const viewer = await connect(chat);
      viewer.socket.close();
      assert.deepEqual(viewer.joined.history.map((x) => x.text), ["one", "two", "<b>three</b>"]);
      await assert.rejects(connect(chat, { token: mintToken(chat.keyFile, { user: "troll", name: "T" }) }), /banned/);
    } finally {
      await chat.stop();
    }
  });

  test("rooms sharing one database keep separate histories", async () => {
    const stamp = Date.now().toString(36);
    const a = await startChat({ room: `a-${stamp}`, mongoUri: mongo.uri });
    const b = await startChat({ room: `b-${stamp}`, mongoUri: mongo.uri });
    try {
      const ada = await connect(a, { token: mintToken(a.keyFile, { user: "ada", name: "Ada" }) });
      assert.equal((await request(ada.socket, "message", { text: "only in a" })).ok, true);
      ada.socket.close();
      const viewer = await connect(b);
      viewer.socket.close();
      assert.deepEqual(viewer.joined.history, []);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

// Secrets (the signing key, tokens) never reach the logs, even at the most verbose level.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startChat, connect, mintToken, request, sleep, KEY } from "./helpers.mjs";

test("the signing key and tokens never appear in the logs, even at trace level", async () => {
  const chat = await startChat({ env: { RUST_LOG: "trace" } });
  let token;
  try {
    token = mintToken(chat.keyFile, { user: "ada", name: "Ada", role: "moderator" });
    const ada = await connect(chat, { token });
    assert.equal((await request(ada.socket, "message", { text: "hello" })).ok, true);
    await assert.rejects(connect(chat, { token: token.slice(0, -4) + "AAAA" }), /invalid_token/);
    ada.socket.close();
    await sleep(200);
  } finally {
    await chat.stop();
  }
  const log = chat.log();
  assert.ok(log.includes("chat listening"), "the log was captured");
  assert.match(log, /DEBUG .*connected/, "debug logging was on");
  assert.ok(!log.includes(KEY), "signing key leaked");
  const [, claims, signature] = token.split(".");
  assert.ok(!log.includes(signature), "token signature leaked");
  assert.ok(!log.includes(claims), "token claims leaked");
});

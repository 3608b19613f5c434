// The official socket.io client against two chat replicas of one room, for the
// cluster-in-a-box suite: a viewer on one replica, a signed-in user on the other. The user's
// message must reach the viewer through the Redis adapter. Prints one JSON line.
//
//   node tests/cluster/chat_client.mjs '{"a": URL, "b": URL, "path": PATH, "token": TOKEN}'
import { connect, nextEvent, request } from "../chat/test/helpers.mjs";

const { a, b, path, token } = JSON.parse(process.argv[2]);
const viewer = await connect({ url: a, path });
const user = await connect({ url: b, path }, { token });
try {
  const seen = nextEvent(viewer.socket, "message", 10000);
  const ack = await request(user.socket, "message", { text: "hello from the box" });
  const message = await seen;
  console.log(JSON.stringify({ ack, message, joinedViewer: viewer.joined, joinedUser: user.joined }));
} finally {
  viewer.socket.close();
  user.socket.close();
}

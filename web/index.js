// Room index: every room of this roomcast and whether it is live.
"use strict";

async function refresh() {
  const list = document.getElementById("rooms");
  let rooms = [];
  try {
    const response = await fetch("/api/rooms", { cache: "no-store" });
    rooms = await response.json();
  } catch (e) {
    return;
  }
  document.getElementById("rooms-empty").hidden = rooms.length > 0;
  list.replaceChildren(...rooms.map((room) => {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/${room.namespace}/${room.name}/`;
    const name = document.createElement("span");
    name.textContent = `${room.namespace}/${room.name}`;
    const badge = document.createElement("span");
    badge.className = `badge ${room.live ? "live" : "idle"}`;
    badge.textContent = room.live ? `LIVE · ${room.viewers} watching` : "IDLE";
    link.append(name, badge);
    item.append(link);
    return item;
  }));
}

refresh();
setInterval(refresh, 3000);

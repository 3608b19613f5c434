"""The real `roomcast-operator` with the ingest gateway on (`ROOMCAST_INGEST_GATEWAY_URL`),
against the API server stand-in: it creates the routing key Secret once, publishes the routes
ConfigMap the gateway watches (the hashes computed here independently with Python's hmac), and
keeps it current when a key rotates, a room leaves the gateway or is deleted."""

import base64
import hashlib
import hmac
import json
import time

import pytest

from box import wait_for
from test_operator import (NAMESPACE, OPERATOR_NAMESPACE, ROOMS, Operator, cluster, reconciled,
                           required_binary, room_named, stop_all)

GATEWAY_URL = "rtmps://ingest.example.com/live"
ROUTES = "roomcast-ingest-routes"
ROUTING_KEY = "roomcast-ingest-routing-key"
ROUTES_PATH = f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/configmaps/{ROUTES}"
ROUTING_KEY_PATH = f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/{ROUTING_KEY}"
# The table must follow a change within a few ticks of the operator's one-second pass.
FOLLOWS_WITHIN = 5.0


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    binary = required_binary()
    tmp = tmp_path_factory.mktemp("gateway")
    server, client, kubeconfig = cluster(tmp)
    operator = Operator(binary, kubeconfig, tmp / "operator.log",
                        ROOMCAST_INGEST_GATEWAY_URL=GATEWAY_URL,
                        ROOMCAST_INGEST_GATEWAY_ROUTES_CONFIGMAP=ROUTES,
                        ROOMCAST_INGEST_GATEWAY_ROUTING_KEY_SECRET=ROUTING_KEY)
    try:
        yield client
    finally:
        stop_all(server, operator)


def secret_value(client, path, key):
    code, secret = client.request("GET", path)
    if code != 200 or key not in (secret.get("data") or {}):
        return None
    return base64.b64decode(secret["data"][key])


def routes(client):
    """room -> route of the published table (None while there is no ConfigMap)."""
    code, config_map = client.request("GET", ROUTES_PATH)
    if code != 200:
        return None
    table = json.loads(config_map["data"]["routes.json"])
    assert table["version"] == 1
    return {r["room"]: r for r in table["routes"]}


def expected_hash(client, room):
    """HMAC-SHA256 of the room's stream key (its `<room>-keys` Secret) under the routing key."""
    routing_key = secret_value(client, ROUTING_KEY_PATH, "key")
    stream_key = secret_value(client, f"/api/v1/namespaces/{NAMESPACE}/secrets/{room}-keys", "stream-key")
    assert routing_key and stream_key
    return hmac.new(routing_key, stream_key.strip(), hashlib.sha256).hexdigest()


def routed_as(client, room, key_hash):
    table = routes(client) or {}
    route = table.get(f"{NAMESPACE}/{room}")
    return route if route and route["keyHash"] == key_hash else None


def condition(room, type_):
    return next((c for c in room["status"].get("conditions", []) if c["type"] == type_), None)


def test_the_routing_key_is_generated_once_and_never_overwritten(gw):
    key = wait_for("the routing key Secret", lambda: secret_value(gw, ROUTING_KEY_PATH, "key"), timeout=30)
    assert len(key) == 64 and key.isalnum()
    secret = gw.ok("GET", ROUTING_KEY_PATH)
    assert not secret["metadata"].get("ownerReferences"), "outlives any room"
    time.sleep(2)
    assert secret_value(gw, ROUTING_KEY_PATH, "key") == key


def test_a_room_is_routed_by_the_keyed_hash_of_its_stream_key(gw):
    gw.ok("POST", ROOMS, room_named("lobby"))
    wait_for("the lobby's keys", lambda: secret_value(
        gw, f"/api/v1/namespaces/{NAMESPACE}/secrets/lobby-keys", "stream-key"), timeout=30)
    want = expected_hash(gw, "lobby")
    route = wait_for("the lobby's route", lambda: routed_as(gw, "lobby", want), timeout=30)
    assert route["backend"] == f"lobby-rtmp.{NAMESPACE}.svc:1935"
    config_map = gw.ok("GET", ROUTES_PATH)
    assert {m["manager"] for m in config_map["metadata"]["managedFields"]} == {"roomcast-operator-routes"}
    stream_key = secret_value(gw, f"/api/v1/namespaces/{NAMESPACE}/secrets/lobby-keys", "stream-key")
    assert stream_key.decode() not in json.dumps(config_map), "the table never carries a key"

    def routed_status():
        room = reconciled(gw, "lobby")
        routed = condition(room, "IngestRouted")
        return room if routed and routed["status"] == "True" else None
    room = wait_for("IngestRouted=True", routed_status, timeout=30)
    assert room["status"]["ingestUrl"] == GATEWAY_URL
    rtmp = gw.ok("GET", f"/api/v1/namespaces/{NAMESPACE}/services/lobby-rtmp")
    assert rtmp["spec"]["type"] == "ClusterIP", "no load balancer per room behind the gateway"


def test_a_rotated_key_reaches_the_table_within_seconds(gw):
    gw.ok("POST", ROOMS, room_named("rotating"))
    wait_for("the first route", lambda: (lambda t: t and f"{NAMESPACE}/rotating" in t)(routes(gw)), timeout=30)
    before = routes(gw)[f"{NAMESPACE}/rotating"]["keyHash"]
    fresh = "rotated-" + "x" * 32
    gw.ok("PATCH", f"/api/v1/namespaces/{NAMESPACE}/secrets/rotating-keys",
          {"data": {"stream-key": base64.b64encode(fresh.encode()).decode()}},
          content_type="application/merge-patch+json")
    started = time.monotonic()
    want = expected_hash(gw, "rotating")
    assert want != before
    wait_for("the rotated hash", lambda: routed_as(gw, "rotating", want), timeout=FOLLOWS_WITHIN)
    print(f"rotation reached the table in {time.monotonic() - started:.2f} s")


def test_switching_a_room_to_its_own_service_removes_its_route(gw):
    gw.ok("POST", ROOMS, room_named("switcher"))
    wait_for("the switcher's route", lambda: (lambda t: t and f"{NAMESPACE}/switcher" in t)(routes(gw)), timeout=30)
    gw.ok("PATCH", f"{ROOMS}/switcher", {"spec": {"ingest": {"expose": "service"}}},
          content_type="application/merge-patch+json")
    wait_for("the route to go", lambda: f"{NAMESPACE}/switcher" not in routes(gw), timeout=FOLLOWS_WITHIN)

    def exposed():
        room = reconciled(gw, "switcher")
        return room if condition(room, "IngestRouted") is None else None
    wait_for("the condition to go", exposed, timeout=30)
    rtmp = wait_for("the Service to be exposed again", lambda: (lambda s: s if s["spec"]["type"] == "LoadBalancer"
                    else None)(gw.ok("GET", f"/api/v1/namespaces/{NAMESPACE}/services/switcher-rtmp")), timeout=30)
    assert rtmp


def test_a_room_exposed_as_a_service_from_the_start_is_never_routed(gw):
    room = room_named("direct")
    room["spec"].setdefault("ingest", {})["expose"] = "service"
    gw.ok("POST", ROOMS, room)
    reconciled(gw, "direct")
    time.sleep(2)
    assert f"{NAMESPACE}/direct" not in routes(gw)


def test_deleting_a_room_removes_its_route(gw):
    gw.ok("POST", ROOMS, room_named("leaving"))
    wait_for("the route", lambda: (lambda t: t and f"{NAMESPACE}/leaving" in t)(routes(gw)), timeout=30)
    gw.ok("DELETE", f"{ROOMS}/leaving")
    wait_for("the route to go", lambda: f"{NAMESPACE}/leaving" not in routes(gw), timeout=FOLLOWS_WITHIN)
    # The other rooms keep theirs.
    assert f"{NAMESPACE}/lobby" in routes(gw)


def test_a_room_copying_another_rooms_key_is_left_out_and_told_why(gw):
    """Hostile tenant: a room whose own key Secret holds another room's key must not take
    over that room's route; it is left out, and its condition does not name the other room."""
    lobby_key = wait_for("the lobby's key", lambda: secret_value(
        gw, f"/api/v1/namespaces/{NAMESPACE}/secrets/lobby-keys", "stream-key"), timeout=30)
    gw.ok("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "copied-key"},
        "data": {"stream-key": base64.b64encode(lobby_key).decode()}})
    room = room_named("copycat")
    room["spec"].setdefault("ingest", {})["streamKeySecretRef"] = {"name": "copied-key"}
    gw.ok("POST", ROOMS, room)

    def left_out():
        copycat = reconciled(gw, "copycat")
        routed = condition(copycat, "IngestRouted")
        return routed if routed and routed["reason"] == "DuplicateStreamKey" else None
    routed = wait_for("the copycat's condition", left_out, timeout=30)
    assert routed["status"] == "False" and "lobby" not in routed["message"]
    table = routes(gw)
    assert f"{NAMESPACE}/copycat" not in table
    assert table[f"{NAMESPACE}/lobby"]["keyHash"] == expected_hash(gw, "lobby")

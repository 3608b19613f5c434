"""The real `roomcast-operator` with the ingest gateway on (`ROOMCAST_INGEST_GATEWAY_URL`),
against the API server stand-in: it creates the routing key Secret once, publishes the routes
ConfigMap the gateway watches (the hashes computed here independently with Python's hmac), and
keeps it current when a key rotates, a room leaves the gateway or is deleted."""

import base64
import hashlib
import hmac
import json
import re
import time
import urllib.request

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
    return next((c for c in (room.get("status") or {}).get("conditions", []) if c["type"] == type_), None)


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
    # Fully qualified with the trailing dot: the gateway's resolver tries no search list, where
    # a tenant's namespace named `svc` could answer `lobby-rtmp.<ns>.svc.svc.cluster.local`.
    assert route["backend"] == f"lobby-rtmp.{NAMESPACE}.svc.cluster.local.:1935"
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


def own_key_secret(name, value):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {"stream-key": base64.b64encode(value.encode()).decode()}}


def test_a_key_rotated_in_the_rooms_own_secret_reaches_the_table_within_seconds(gw):
    """The room names its own stream key Secret (`spec.ingest.streamKeySecretRef`). The operator
    watches it by metadata and re-reads it when its resourceVersion moves, so the old key's route
    goes and the new one's appears within a few ticks, not after the 60 s safety net."""
    secrets = f"/api/v1/namespaces/{NAMESPACE}/secrets"
    gw.ok("POST", secrets, own_key_secret("own-key", "own-key-before-" + "a" * 24))
    room = room_named("owner")
    room["spec"].setdefault("ingest", {})["streamKeySecretRef"] = {"name": "own-key"}
    gw.ok("POST", ROOMS, room)
    routing_key = wait_for("the routing key", lambda: secret_value(gw, ROUTING_KEY_PATH, "key"), timeout=30)

    def keyed(value):
        return hmac.new(routing_key, value.encode(), hashlib.sha256).hexdigest()
    before = keyed("own-key-before-" + "a" * 24)
    wait_for("the first route", lambda: routed_as(gw, "owner", before), timeout=30)
    # Past the first read, so only the watch can bring the new key in time.
    time.sleep(2)

    fresh = "own-key-after-" + "b" * 24
    gw.ok("PATCH", f"{secrets}/own-key", {"data": {"stream-key": base64.b64encode(fresh.encode()).decode()}},
          content_type="application/merge-patch+json")
    started = time.monotonic()
    wait_for("the rotated hash", lambda: routed_as(gw, "owner", keyed(fresh)), timeout=FOLLOWS_WITHIN)
    took = time.monotonic() - started
    assert not any(r["keyHash"] == before for r in routes(gw).values()), "the old key's route is gone"
    print(f"a rotation in the room's own Secret reached the table in {took:.2f} s")


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


def test_short_own_keys_are_not_routed_and_never_hear_about_other_rooms(gw):
    """Hostile tenant probing for other rooms' weak keys: two rooms whose own Secrets hold the same
    short key must both be told only that their key is too short. Were the second told
    `DuplicateStreamKey`, every guess it writes into its own Secret would be answered, past the
    gateway's per-address limit. A key reaching 32 characters is then routed."""
    secrets = f"/api/v1/namespaces/{NAMESPACE}/secrets"
    weak = "  " + "w" * 31 + " \n"  # 31 characters once trimmed
    cases = {"weak-first": weak, "weak-second": weak, "weak-wide": "é" * 16, "weak-blank": " \t "}
    for name, value in cases.items():
        gw.ok("POST", secrets, own_key_secret(f"{name}-own", value))
        room = room_named(name)
        room["spec"].setdefault("ingest", {})["streamKeySecretRef"] = {"name": f"{name}-own"}
        gw.ok("POST", ROOMS, room)
        # The first of two rooms sharing a key must be settled before the second appears, as
        # the oracle needs: the older room would keep the route, the newer one be told.
        time.sleep(1.5)

    def too_short(name):
        routed = condition(reconciled(gw, name), "IngestRouted")
        return routed if routed and routed["reason"] in ("StreamKeyTooShort", "DuplicateStreamKey",
                                                         "NoStreamKey", "RouteActive") else None
    for name in cases:
        routed = wait_for(f"{name}'s condition", lambda: too_short(name), timeout=30)
        if name == "weak-blank":
            # A blank key is no key at all.
            assert routed["reason"] == "NoStreamKey", routed
            continue
        assert routed["status"] == "False" and routed["reason"] == "StreamKeyTooShort", (name, routed)
        assert "at least 32" in routed["message"], routed
        assert "another room" not in routed["message"] and "weak" not in routed["message"], routed
    assert not any(f"{NAMESPACE}/{name}" in routes(gw) for name in cases)

    strong = "w" * 32
    gw.ok("PATCH", f"{secrets}/weak-second-own",
          {"data": {"stream-key": base64.b64encode(strong.encode()).decode()}},
          content_type="application/merge-patch+json")
    routing_key = secret_value(gw, ROUTING_KEY_PATH, "key")
    want = hmac.new(routing_key, strong.encode(), hashlib.sha256).hexdigest()
    wait_for("the lengthened key's route", lambda: routed_as(gw, "weak-second", want), timeout=FOLLOWS_WITHIN)


def metric(operator, name):
    """A metric's value from the operator's /metrics (None while it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://{operator.env['ROOMCAST_HTTP_ADDR']}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def gateway_operator(tmp_path, routing_key):
    """A fresh stand-in whose routing key Secret someone created before the operator started."""
    binary = required_binary()
    server, client, kubeconfig = cluster(tmp_path)
    client.ok("POST", f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": ROUTING_KEY},
        "data": {"key": base64.b64encode(routing_key).decode()}})
    operator = Operator(binary, kubeconfig, tmp_path / "operator.log",
                        ROOMCAST_INGEST_GATEWAY_URL=GATEWAY_URL,
                        ROOMCAST_INGEST_GATEWAY_ROUTES_CONFIGMAP=ROUTES,
                        ROOMCAST_INGEST_GATEWAY_ROUTING_KEY_SECRET=ROUTING_KEY)
    return server, client, operator


def test_a_routing_key_someone_else_created_is_used_as_it_is(tmp_path):
    own_key = b"k" * 31 + b"\x00\xff binary \n"
    server, client, operator = gateway_operator(tmp_path, own_key)
    try:
        client.ok("POST", ROOMS, room_named("lobby"))
        stream_key = wait_for("the lobby's keys", lambda: secret_value(
            client, f"/api/v1/namespaces/{NAMESPACE}/secrets/lobby-keys", "stream-key"), timeout=30)
        want = hmac.new(own_key, stream_key.strip(), hashlib.sha256).hexdigest()
        wait_for("the route keyed with the existing key", lambda: routed_as(client, "lobby", want), timeout=30)
        assert secret_value(client, ROUTING_KEY_PATH, "key") == own_key
    finally:
        stop_all(server, operator)


def test_a_routing_key_too_short_to_protect_the_hashes_publishes_nothing(tmp_path):
    """Hostile or careless: a 31-byte key. The operator refuses to hash with it, keeps it (never
    overwrites), writes no table, counts the failure and keeps running."""
    server, client, operator = gateway_operator(tmp_path, b"k" * 31)
    try:
        client.ok("POST", ROOMS, room_named("lobby"))
        reconciled(client, "lobby")
        assert wait_for("failed passes to be counted",
                        lambda: (metric(operator, "roomcast_operator_ingest_routes_errors_total") or 0) >= 2,
                        timeout=30)
        assert routes(client) is None
        assert secret_value(client, ROUTING_KEY_PATH, "key") == b"k" * 31
        assert operator.process.poll() is None, "the operator keeps running"
        assert "at least 32 are required" in operator.log.read_text()
        routed = condition(client.ok("GET", f"{ROOMS}/lobby"), "IngestRouted")
        assert routed["status"] == "False" and routed["reason"] == "RoutePending"
    finally:
        stop_all(server, operator)

"""The real `roomcast-operator` binary reconciling against the API server stand-in: children
with owner references, status and printer columns, workers' status reports next to the
operator's, a child name conflict, events, the Lease, and garbage collection on delete.

The stand-in's limits (no admission, no RBAC, no CEL, no controllers but the garbage
collector) are listed in README.md, "Cluster in a box"."""

import os
import re
import time
import types

import pytest
import yaml

from apiserver import ApiServer
from box import OPERATOR_NAMESPACE, POD_NAME, ROOT, Client, Operator, in_ci, operator_bin, wait_for
from scenario import CHILD_PATHS

NAMESPACE = "shows"
ROOMS = f"/apis/roomcast.dev/v1alpha1/namespaces/{NAMESPACE}/streamrooms"
ROOM_FILE = ROOT / "tests" / "fixtures" / "rooms" / "minimal.yaml"
STATUS_BASE = {"apiVersion": "roomcast.dev/v1alpha1", "kind": "StreamRoom"}


def worker_constant(name):
    """A field manager name as the workers' status reporter defines it (workers/room-status)."""
    source = (ROOT / "workers" / "room-status" / "src" / "lib.rs").read_text()
    return re.search(rf'pub const {name}: &str = "([^"]+)";', source).group(1)


MEDIA_MANAGER = worker_constant("MEDIA_FIELD_MANAGER")
CHAT_MANAGER_PREFIX = worker_constant("CHAT_FIELD_MANAGER_PREFIX")


def room_named(name):
    room = yaml.safe_load(ROOM_FILE.read_text())
    room["metadata"].update(name=name, namespace=NAMESPACE)
    return room


def children(client, room_uid=None, namespace=NAMESPACE):
    """(kind, name) -> object of every managed object in the namespace (of one room, by uid)."""
    found = {}
    for kind, path in CHILD_PATHS.items():
        listed = client.ok("GET", path.format(ns=namespace)
                           + "?labelSelector=app.kubernetes.io%2Fmanaged-by%3Droomcast-operator")
        for obj in listed["items"]:
            refs = obj["metadata"].get("ownerReferences") or []
            if room_uid is None or any(r["uid"] == room_uid for r in refs):
                found[(kind, obj["metadata"]["name"])] = obj
    return found


def required_binary():
    binary = operator_bin()
    if not binary.exists():
        why = f"{binary} is missing: build it with `cargo build -p roomcast-operator` (or set ROOMCAST_OPERATOR_BIN)"
        if in_ci():
            pytest.fail(f"roomcast-operator is missing in CI, where every test must run: {why}")
        pytest.skip(why)
    return binary


def cluster(tmp):
    """A stand-in with the CRD, the operator's namespace and an opted-in tenant namespace; and
    the kubeconfig that finds it."""
    server = ApiServer(verbose=bool(os.environ.get("ROOMCAST_BOX_LOG"))).start()
    client = Client(server.url)
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(server.kubeconfig())
    client.namespace(OPERATOR_NAMESPACE)
    client.namespace(NAMESPACE, {"roomcast.dev/tenant": "enabled"})
    client.install_crd()
    return server, client, kubeconfig


def stop_all(server, *operators):
    for operator in operators:
        operator.stop()
    server.stop()
    if in_ci() or os.environ.get("ROOMCAST_BOX_LOG"):
        for operator in operators:
            print(operator.log.read_text()[-20000:])


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    binary = required_binary()
    tmp = tmp_path_factory.mktemp("box")
    server, client, kubeconfig = cluster(tmp)
    client.namespace("unserved")
    operator = Operator(binary, kubeconfig, tmp / "operator.log")
    room_file = tmp / "room.yaml"
    room_file.write_text(yaml.safe_dump(room_named("lobby")))
    expected = operator.render(room_file)
    room = client.ok("POST", ROOMS, room_named("lobby"))
    try:
        yield types.SimpleNamespace(client=client, operator=operator, room=room, expected=expected,
                                    server=server)
    finally:
        stop_all(server, operator)


def reconciled(client, name):
    def check():
        room = client.ok("GET", f"{ROOMS}/{name}")
        status = room.get("status") or {}
        return room if status.get("observedGeneration") == room["metadata"]["generation"] else None
    return wait_for(f"room {name} to be reconciled", check, timeout=30)


def lease_holder(client):
    code, lease = client.request(
        "GET", f"/apis/coordination.k8s.io/v1/namespaces/{OPERATOR_NAMESPACE}/leases/roomcast-operator")
    return lease.get("spec", {}).get("holderIdentity") if code == 200 else None


def test_operator_takes_the_lease(box):
    assert wait_for("the Lease", lambda: lease_holder(box.client), timeout=30) == POD_NAME
    assert wait_for("/readyz", lambda: box.operator.ready() == 200, timeout=30)


def test_namespaced_operator_serves_only_its_namespace(tmp_path):
    binary = required_binary()
    server, client, kubeconfig = cluster(tmp_path)
    # Namespaced mode needs no tenant label: the namespace it watches is the opt-in.
    client.namespace("studio")
    operator = Operator(binary, kubeconfig, tmp_path / "operator.log", WATCH_NAMESPACE="studio",
                        ROOMCAST_LEADER_ELECTION="false")
    try:
        mine = room_named("solo")
        mine["metadata"]["namespace"] = "studio"
        mine = client.ok("POST", "/apis/roomcast.dev/v1alpha1/namespaces/studio/streamrooms", mine)
        other = client.ok("POST", ROOMS, room_named("elsewhere"))
        wait_for("the studio room's children", lambda: children(client, mine["metadata"]["uid"], "studio"),
                 timeout=30)
        assert wait_for("/readyz", lambda: operator.ready() == 200, timeout=30)
        assert lease_holder(client) is None
        time.sleep(2)
        assert children(client, other["metadata"]["uid"]) == {}
        assert "status" not in client.ok("GET", f"{ROOMS}/elsewhere")
    finally:
        stop_all(server, operator)


def test_one_leader_at_a_time_and_a_follower_takes_over(tmp_path):
    binary = required_binary()
    server, client, kubeconfig = cluster(tmp_path)
    first = Operator(binary, kubeconfig, tmp_path / "first.log", pod_name="operator-a")
    second = None
    try:
        assert wait_for("the first leader", lambda: lease_holder(client), timeout=30) == "operator-a"
        second = Operator(binary, kubeconfig, tmp_path / "second.log", pod_name="operator-b")
        wait_for("the follower to answer /readyz", second.ready, timeout=30)
        time.sleep(2)
        assert second.ready() == 503 and lease_holder(client) == "operator-a"
        assert first.ready() == 200
        first.stop()
        # The follower takes over once the Lease is released or expires (15 s).
        assert wait_for("the follower to lead", lambda: lease_holder(client) == "operator-b" and
                        second.ready() == 200, timeout=40)
    finally:
        stop_all(server, *[o for o in (first, second) if o is not None])


def test_every_child_is_created_and_controlled_by_the_room(box):
    client, room, expected = box.client, box.room, box.expected
    uid = room["metadata"]["uid"]
    found = wait_for("every rendered child", lambda: (lambda c: c if set(c) >= expected else None)(
        children(client, uid)), timeout=30)
    assert set(found) == expected
    for (kind, name), obj in found.items():
        refs = obj["metadata"]["ownerReferences"]
        assert refs == [{"apiVersion": "roomcast.dev/v1alpha1", "kind": "StreamRoom", "name": "lobby",
                         "uid": uid, "controller": True, "blockOwnerDeletion": True}], (kind, name)
        managers = {m["manager"] for m in obj["metadata"]["managedFields"]}
        assert managers == {"roomcast-operator"}, (kind, name, managers)


def test_status_and_printer_columns_read_right(box):
    client = box.client
    room = reconciled(client, "lobby")
    status = room["status"]
    assert status["phase"] in ("Pending", "Idle", "Degraded"), status
    assert {c["type"] for c in status["conditions"]} >= {"Ready"}
    table = client.ok("GET", ROOMS, accept="application/json;as=Table;g=meta.k8s.io;v=v1")
    crd = yaml.safe_load((ROOT / "crds" / "streamroom.yaml").read_text())
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    row = next(r for r in table["rows"] if r["cells"][0] == "lobby")
    cells = dict(zip([c["name"] for c in table["columnDefinitions"]], row["cells"]))
    assert [c["name"] for c in columns] == list(cells)[1:]
    assert cells["Phase"] == status["phase"]
    assert cells["Ingest"] == status.get("ingestUrl")
    assert cells["Playback"] == status.get("playbackUrl")
    assert cells["Age"] == room["metadata"]["creationTimestamp"]


def test_worker_reports_land_next_to_the_operators_fields(box):
    client = box.client
    before = reconciled(client, "lobby")["status"]
    path = f"{ROOMS}/lobby/status"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    media = {"live": True, "viewers": 7, "reportedAt": now}
    code, answer = client.apply(path, {**STATUS_BASE, "status": {"media": media}}, MEDIA_MANAGER)
    assert code == 200, answer
    for pod, connections in (("chat-a", 3), ("chat-b", 4)):
        entry = {"pod": pod, "connections": connections, "reportedAt": now}
        code, answer = client.apply(path, {**STATUS_BASE, "status": {"chat": {"replicas": [entry]}}},
                                    f"{CHAT_MANAGER_PREFIX}{pod}")
        assert code == 200, answer
    room = client.ok("GET", f"{ROOMS}/lobby")
    status = room["status"]
    assert status["media"]["viewers"] == 7 and status["media"]["live"] is True
    assert sorted((r["pod"], r["connections"]) for r in status["chat"]["replicas"]) == [("chat-a", 3), ("chat-b", 4)]
    assert status["conditions"] and status["observedGeneration"] == before["observedGeneration"]
    managers = {(m["manager"], m.get("subresource")) for m in room["metadata"]["managedFields"]}
    assert {("roomcast-operator", "status"), (MEDIA_MANAGER, "status"), (f"{CHAT_MANAGER_PREFIX}chat-a", "status"),
            (f"{CHAT_MANAGER_PREFIX}chat-b", "status")} <= managers
    # `kubectl get rooms` reads the workers' fields through the CRD's printer columns.
    table = client.ok("GET", ROOMS, accept="application/json;as=Table;g=meta.k8s.io;v=v1")
    row = dict(zip([c["name"] for c in table["columnDefinitions"]],
                   next(r for r in table["rows"] if r["cells"][0] == "lobby")["cells"]))
    assert row["Live"] is True and row["Viewers"] == 7
    # A replica that withdraws removes only its own entry.
    code, answer = client.apply(path, {**STATUS_BASE, "status": {}}, f"{CHAT_MANAGER_PREFIX}chat-a")
    assert code == 200, answer["message"]
    status = client.ok("GET", f"{ROOMS}/lobby")["status"]
    assert [r["pod"] for r in status["chat"]["replicas"]] == ["chat-b"]
    assert status["media"]["viewers"] == 7 and status["conditions"]


def test_operator_settles_without_writing(box):
    client = box.client
    reconciled(client, "lobby")
    store = box.server.store
    time.sleep(1)  # let the last write's watch events reach the operator
    with store.cond:
        since = store.rv
    time.sleep(3)
    with store.cond:
        writes = [(q, kind, new["metadata"]["name"]) for rv, q, kind, _, new in store.events
                  if rv > since and not q.startswith(("leases.", "events."))]
    # An apply loop (a field the server rewrites and the operator puts back) shows up here.
    assert writes == []


def test_deleted_child_is_put_back(box):
    client = box.client
    uid = reconciled(client, "lobby")["metadata"]["uid"]
    wait_for("the children", lambda: set(children(client, uid)) >= box.expected, timeout=30)
    path = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
    name = next(n for k, n in box.expected if k == "ConfigMap")
    before = client.ok("GET", f"{path}/{name}")
    client.ok("DELETE", f"{path}/{name}")
    back = wait_for("the ConfigMap to come back", lambda: (lambda r: r[1] if r[0] == 200 else None)(
        client.request("GET", f"{path}/{name}")), timeout=20)
    assert back["metadata"]["uid"] != before["metadata"]["uid"]
    assert back["data"] == before["data"]


def test_operator_prunes_a_chat_replica_that_stopped_reporting(box):
    client = box.client
    reconciled(client, "lobby")
    path = f"{ROOMS}/lobby/status"
    gone = {"pod": "chat-gone", "connections": 9, "reportedAt": "2020-01-01T00:00:00Z"}
    code, answer = client.apply(path, {**STATUS_BASE, "status": {"chat": {"replicas": [gone]}}},
                                f"{CHAT_MANAGER_PREFIX}chat-gone")
    assert code == 200, answer["message"]
    # The operator removes it with a JSON patch guarded by `test` ops; the fresh entry stays.
    pods = wait_for("the stale entry to be pruned", lambda: (lambda p: p if "chat-gone" not in p else None)(
        [r["pod"] for r in client.ok("GET", f"{ROOMS}/lobby")["status"]["chat"]["replicas"]]), timeout=20)
    assert pods == ["chat-b"]


def test_foreign_secret_holding_a_child_name_is_a_conflict(box):
    client = box.client
    client.ok("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets",
              {"metadata": {"name": "taken-keys"}, "stringData": {"mine": "not yours"}})
    room = client.ok("POST", ROOMS, room_named("taken"))
    status = wait_for("the conflict", lambda: (client.ok("GET", f"{ROOMS}/taken").get("status") or {})
                      .get("conditions") and client.ok("GET", f"{ROOMS}/taken")["status"], timeout=30)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ChildConflict", ready
    assert "taken-keys" in ready["message"]
    assert children(client, room["metadata"]["uid"]) == {}
    secret = client.ok("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets/taken-keys")
    assert "ownerReferences" not in secret["metadata"]
    events = wait_for("the ChildConflict event", lambda: [
        e for e in client.ok("GET", f"/apis/events.k8s.io/v1/namespaces/{NAMESPACE}/events")["items"]
        if e.get("reason") == "ChildConflict" and e["regarding"]["name"] == "taken"], timeout=10)
    assert events[0]["type"] == "Warning" and "taken-keys" in events[0]["note"]


def test_room_breaking_a_cel_rule_is_refused_by_the_operator(box):
    # The stand-in runs no CEL (see README), as an API server with an older CRD would not run a
    # newer rule: the operator checks the CRD's rules itself before building anything.
    client = box.client
    room = room_named("echo")
    room["spec"] = {"transcode": {"renditions": [{"name": "source"}, {"name": "source"}]}}
    created = client.ok("POST", ROOMS, room)
    wait_for("the refusal", lambda: (client.ok("GET", f"{ROOMS}/echo").get("status") or {}).get("phase"),
             timeout=30)
    status = client.ok("GET", f"{ROOMS}/echo")["status"]
    assert status["phase"] == "Error", status
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and "rendition names must be unique" in ready["message"], ready
    assert children(client, created["metadata"]["uid"]) == {}


def test_events_tell_what_the_operator_did(box):
    client = box.client
    reconciled(client, "lobby")
    reasons = wait_for("events about lobby", lambda: {
        e["reason"] for e in client.ok("GET", f"/apis/events.k8s.io/v1/namespaces/{NAMESPACE}/events")["items"]
        if e["regarding"]["name"] == "lobby"}, timeout=10)
    assert "KeysGenerated" in reasons, reasons


def test_rooms_outside_opted_in_namespaces_get_no_children(box):
    client = box.client
    path = "/apis/roomcast.dev/v1alpha1/namespaces/unserved/streamrooms"
    room = room_named("ignored")
    room["metadata"]["namespace"] = "unserved"
    client.ok("POST", path, room)
    wait_for("the NamespaceNotServed event", lambda: [
        e for e in client.ok("GET", "/apis/events.k8s.io/v1/namespaces/unserved/events")["items"]
        if e.get("reason") == "NamespaceNotServed"], timeout=20)
    assert children(client, namespace="unserved") == {}


def test_a_room_naming_a_missing_secret_says_so_until_it_is_created(box):
    """Without the ingest gateway nothing else would say it: the media pod would only fail with
    CreateContainerConfigError. The room's Ready condition and a Warning Event name the Secret and
    the field; creating the Secret clears it within seconds (the operator watches Secrets)."""
    client = box.client
    secrets = f"/api/v1/namespaces/{NAMESPACE}/secrets"
    own_key = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keyless-key"},
               "data": {"stream-key": "a2V5bGVzcy1rZXktMDEyMzQ1Njc4OWFiY2RlZg=="}}
    # Hostile neighbour: a Secret of that name in another namespace is not the room's.
    client.ok("POST", f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets", own_key)
    room = room_named("keyless")
    room["spec"].setdefault("ingest", {})["streamKeySecretRef"] = {"name": "keyless-key"}
    client.ok("POST", ROOMS, room)

    def ready(reason_wanted):
        def check():
            status = client.ok("GET", f"{ROOMS}/keyless").get("status") or {}
            found = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)
            return found if found and reason_wanted(found["reason"]) else None
        return check
    missing = wait_for("Ready=False SecretNotFound", ready(lambda r: r == "SecretNotFound"), timeout=30)
    message = (f"Secret keyless-key (spec.ingest.streamKeySecretRef) does not exist in namespace {NAMESPACE}; "
               "the room's pods that mount it cannot start until it is created")
    assert missing["status"] == "False" and missing["message"] == message, missing
    assert client.ok("GET", f"{ROOMS}/keyless")["status"]["message"] == message
    events = client.ok("GET", f"/apis/events.k8s.io/v1/namespaces/{NAMESPACE}/events")["items"]
    warned = [e for e in events if e.get("reason") == "SecretNotFound" and e["regarding"]["name"] == "keyless"]
    assert len(warned) == 1 and warned[0]["type"] == "Warning" and warned[0]["note"] == message, warned
    # Applied anyway: the media worker starts as soon as the Secret exists.
    client.ok("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/keyless-media")

    client.ok("POST", secrets, own_key)
    started = time.monotonic()
    wait_for("the condition to clear", ready(lambda r: r != "SecretNotFound"), timeout=5)
    print(f"a created Secret cleared the condition in {time.monotonic() - started:.2f} s")


def test_deleting_the_room_removes_its_children_for_good(box):
    client, room, expected = box.client, box.room, box.expected
    uid = room["metadata"]["uid"]
    wait_for("the children", lambda: set(children(client, uid)) >= expected, timeout=30)
    client.ok("DELETE", f"{ROOMS}/lobby", {"propagationPolicy": "Background"})
    wait_for("the children to be collected", lambda: children(client, uid) == {}, timeout=15)
    # The operator must not recreate them for a room that is gone (nor for a stale cache).
    time.sleep(3)
    assert children(client, uid) == {}
    leftovers = {k for k in children(client) if k[1].startswith("lobby")}
    assert leftovers == set()

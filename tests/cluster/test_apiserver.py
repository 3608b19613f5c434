"""The API server stand-in against the semantics the operator and the workers rely on, and
against hostile requests. Each case would pass on a real API server too."""

import json
import socket

import apiserver

from box import wait_for

ROOMS = "/apis/roomcast.dev/v1alpha1/namespaces/shows/streamrooms"
SECRETS = "/api/v1/namespaces/shows/secrets"


def room(name="lobby", spec=None):
    return {"apiVersion": "roomcast.dev/v1alpha1", "kind": "StreamRoom",
            "metadata": {"name": name, "namespace": "shows"}, "spec": spec if spec is not None else {}}


def ready(client):
    client.namespace("shows")
    client.install_crd()


def test_crd_defaults_and_prunes_like_a_structural_schema(client):
    ready(client)
    created = client.ok("POST", ROOMS, room(spec={"unknownField": 1}))
    assert "unknownField" not in created["spec"]
    assert created["spec"]["chat"]["replicas"] == 2
    assert created["metadata"]["generation"] == 1 and created["metadata"]["uid"]


def test_schema_violations_are_422_with_causes(client):
    ready(client)
    code, status = client.request("POST", ROOMS, room(spec={"chat": {"replicas": "many"}}))
    assert code == 422 and status["reason"] == "Invalid" and status["kind"] == "Status"
    assert any(c["field"] == "spec.chat.replicas" for c in status["details"]["causes"])


def test_hostile_names_and_owner_references_are_refused(client):
    ready(client)
    for name in ["UPPER", "a" * 254, "../etc", "", "-dash"]:
        code, status = client.request("POST", SECRETS, {"metadata": {"name": name}})
        assert code == 422, (name, status)
    code, status = client.request("POST", SECRETS, {"metadata": {"name": "x", "ownerReferences": [
        {"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": True},
        {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "2", "controller": True}]}})
    assert code == 422 and "Controller" in status["message"]


def test_hostile_selectors_bodies_and_media_types_are_refused(client):
    ready(client)
    for selector in ["a in b", "a b", "a=(", "=x"]:
        code, _ = client.request("GET", f"{SECRETS}?labelSelector={selector.replace(' ', '%20')}")
        assert code == 400, selector
    code, _ = client.request("GET", f"{SECRETS}?fieldSelector=spec.secret=1")
    assert code == 400
    code, _ = client.request("POST", SECRETS, b"{not json")
    assert code == 400
    code, _ = client.request("POST", SECRETS, b"x" * (3 * 1024 * 1024 + 1))
    assert code == 413
    code, _ = client.request("PATCH", f"{ROOMS}/lobby", {}, content_type="text/plain")
    assert code == 415
    code, _ = client.request("GET", "/apis/roomcast.dev/v1alpha1/namespaces/shows/streamrooms/x/exec")
    assert code == 404
    code, _ = client.request("POST", SECRETS, b"[" * 100000 + b"]" * 100000)
    assert code == 400
    code, _ = client.request("PATCH", f"{ROOMS}/lobby?fieldManager=x", b"a: [" * 5000,
                             content_type="application/apply-patch+yaml")
    assert code in (400, 404)
    # Still serving.
    assert client.request("GET", SECRETS)[0] == 200


def test_missing_and_duplicate_objects_answer_real_status_objects(client):
    ready(client)
    code, status = client.request("GET", f"{ROOMS}/nope")
    assert code == 404 and status["reason"] == "NotFound" and status["details"]["name"] == "nope"
    client.ok("POST", ROOMS, room())
    code, status = client.request("POST", ROOMS, room())
    assert code == 409 and status["reason"] == "AlreadyExists"
    stale = client.ok("GET", f"{ROOMS}/lobby")
    client.ok("PATCH", f"{ROOMS}/lobby", {"metadata": {"labels": {"a": "b"}}},
              content_type="application/merge-patch+json")
    code, status = client.request("PUT", f"{ROOMS}/lobby", stale)
    assert code == 409 and status["reason"] == "Conflict"
    code, status = client.request("POST", "/api/v1/namespaces/absent/secrets", {"metadata": {"name": "x"}})
    assert code == 404


def test_label_and_field_selectors_filter_lists(client):
    ready(client)
    client.ok("POST", SECRETS, {"metadata": {"name": "a", "labels": {"tier": "x"}}})
    client.ok("POST", SECRETS, {"metadata": {"name": "b", "labels": {"tier": "y"}}})
    names = lambda q: [o["metadata"]["name"] for o in client.ok("GET", f"{SECRETS}?{q}")["items"]]  # noqa: E731
    assert names("labelSelector=tier%3Dx") == ["a"]
    assert names("labelSelector=tier%20notin%20(x)") == ["b"]
    assert names("labelSelector=!tier") == []
    assert names("fieldSelector=metadata.name%3Db") == ["b"]


def test_apply_conflicts_unless_forced_and_merges_list_maps_by_key(client):
    ready(client)
    client.ok("POST", ROOMS, room())
    status = f"{ROOMS}/lobby/status"
    base = {"apiVersion": "roomcast.dev/v1alpha1", "kind": "StreamRoom"}
    assert client.apply(status, {**base, "status": {"phase": "Idle"}}, "op")[0] == 200
    code, conflict = client.apply(status, {**base, "status": {"phase": "Live"}}, "other", force=False)
    assert code == 409 and conflict["details"]["causes"][0]["field"] == ".status.phase"
    entry = lambda pod: {"pod": pod, "connections": 1, "reportedAt": "2026-01-01T00:00:00Z"}  # noqa: E731
    for pod in ("a", "b"):
        assert client.apply(status, {**base, "status": {"chat": {"replicas": [entry(pod)]}}}, f"chat/{pod}")[0] == 200
    got = client.ok("GET", f"{ROOMS}/lobby")
    assert sorted(r["pod"] for r in got["status"]["chat"]["replicas"]) == ["a", "b"]
    assert got["status"]["phase"] == "Idle"
    # An empty apply withdraws only what that manager owned.
    assert client.apply(status, {**base, "status": {}}, "chat/a")[0] == 200
    got = client.ok("GET", f"{ROOMS}/lobby")
    assert [r["pod"] for r in got["status"]["chat"]["replicas"]] == ["b"]
    assert got["status"]["phase"] == "Idle"


def test_status_subresource_and_main_resource_write_their_own_halves(client):
    ready(client)
    client.ok("POST", ROOMS, room())
    merged = client.ok("PATCH", f"{ROOMS}/lobby", {"status": {"phase": "Live"}, "spec": {"chat": {"replicas": 3}}},
                       content_type="application/merge-patch+json")
    assert "status" not in merged and merged["metadata"]["generation"] == 2
    on_status = client.ok("PATCH", f"{ROOMS}/lobby/status", {"status": {"phase": "Live"},
                                                            "spec": {"chat": {"replicas": 5}}},
                          content_type="application/merge-patch+json")
    assert on_status["status"]["phase"] == "Live" and on_status["spec"]["chat"]["replicas"] == 3
    assert on_status["metadata"]["generation"] == 2
    again = client.ok("PATCH", f"{ROOMS}/lobby/status", {"status": {"phase": "Live"}},
                      content_type="application/merge-patch+json")
    assert again["metadata"]["resourceVersion"] == on_status["metadata"]["resourceVersion"], "no-op write bumped"


def test_json_patch_test_op_guards_the_removal(client):
    ready(client)
    client.ok("POST", ROOMS, room())
    path = f"{ROOMS}/lobby/status"
    client.ok("PATCH", path, {"status": {"chat": {"replicas": [
        {"pod": "a", "connections": 0, "reportedAt": "2026-01-01T00:00:00Z"}]}}},
        content_type="application/merge-patch+json")
    stale = [{"op": "test", "path": "/status/chat/replicas/0/pod", "value": "other"},
             {"op": "remove", "path": "/status/chat/replicas/0"}]
    code, _ = client.request("PATCH", path, stale, content_type="application/json-patch+json")
    assert code == 422
    stale[0]["value"] = "a"
    got = client.ok("PATCH", path, stale, content_type="application/json-patch+json")
    assert got["status"]["chat"]["replicas"] == []


def test_discovery_lists_the_crd_once_installed(client):
    assert "roomcast.dev" not in {g["name"] for g in client.ok("GET", "/apis")["groups"]}
    ready(client)
    groups = {g["name"]: g for g in client.ok("GET", "/apis")["groups"]}
    assert groups["roomcast.dev"]["preferredVersion"]["version"] == "v1alpha1"
    resources = {r["name"]: r for r in client.ok("GET", "/apis/roomcast.dev/v1alpha1")["resources"]}
    assert resources["streamrooms"]["kind"] == "StreamRoom" and resources["streamrooms"]["namespaced"]
    assert "room" in resources["streamrooms"]["shortNames"] and "streamrooms/status" in resources
    assert "leases" in {r["name"] for r in client.ok("GET", "/apis/coordination.k8s.io/v1")["resources"]}


def test_watch_streams_changes_after_a_resource_version_with_selectors(server, client, monkeypatch):
    monkeypatch.setattr(apiserver, "BOOKMARK_INTERVAL_SECONDS", 0.3)
    ready(client)
    rv = client.ok("GET", SECRETS)["metadata"]["resourceVersion"]
    client.ok("POST", SECRETS, {"metadata": {"name": "seen", "labels": {"k": "v"}}})
    client.ok("POST", SECRETS, {"metadata": {"name": "filtered"}})
    client.ok("DELETE", f"{SECRETS}/seen")
    host, port = server.httpd.server_address
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall((f"GET {SECRETS}?watch=1&resourceVersion={rv}&labelSelector=k%3Dv&timeoutSeconds=1"
                      "&allowWatchBookmarks=true HTTP/1.1\r\n"
                      f"Host: x\r\nAccept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1\r\n\r\n")
                     .encode())
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    events = [json.loads(line) for line in data.split(b"\r\n") if line.startswith(b"{")]
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    events = [e for e in events if e["type"] != "BOOKMARK"]
    assert bookmarks and int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]) > int(rv)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "seen"), ("DELETED", "seen")]
    assert all(e["object"]["kind"] == "PartialObjectMetadata" for e in events)


def test_owner_reference_gc_background_and_foreground(client):
    ready(client)
    owner = client.ok("POST", ROOMS, room())
    ref = {"apiVersion": "roomcast.dev/v1alpha1", "kind": "StreamRoom", "name": "lobby",
           "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
    client.ok("POST", SECRETS, {"metadata": {"name": "child", "ownerReferences": [ref]}})
    client.ok("POST", SECRETS, {"metadata": {"name": "free"}})
    deleting = client.ok("DELETE", f"{ROOMS}/lobby", {"propagationPolicy": "Foreground"})
    assert deleting["metadata"]["deletionTimestamp"] and "foregroundDeletion" in deleting["metadata"]["finalizers"]
    wait_for("the owner and its child to go", lambda: client.request("GET", f"{ROOMS}/lobby")[0] == 404
             and client.request("GET", f"{SECRETS}/child")[0] == 404, timeout=5)
    assert client.request("GET", f"{SECRETS}/free")[0] == 200
    # A dependent created for an owner that no longer exists is collected too.
    client.ok("POST", SECRETS, {"metadata": {"name": "orphan", "ownerReferences": [ref]}})
    wait_for("the orphan to go", lambda: client.request("GET", f"{SECRETS}/orphan")[0] == 404, timeout=5)


def test_table_renders_the_crd_printer_columns(client):
    ready(client)
    client.ok("POST", ROOMS, room())
    client.ok("PATCH", f"{ROOMS}/lobby/status", {"status": {"phase": "Idle", "ingestUrl": "rtmp://i/live"}},
              content_type="application/merge-patch+json")
    table = client.ok("GET", ROOMS, accept="application/json;as=Table;g=meta.k8s.io;v=v1")
    names = [c["name"] for c in table["columnDefinitions"]]
    row = dict(zip(names, table["rows"][0]["cells"]))
    assert row["Name"] == "lobby" and row["Phase"] == "Idle" and row["Ingest"] == "rtmp://i/live"
    assert row["Live"] is None

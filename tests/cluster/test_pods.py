"""The cluster in a box end to end: the real operator, the API server stand-in over TLS, and
the pods the operator builds run as containers of the image `scripts/image.sh` built, by the
mini-kubelet (`kubelet.py`) on a pod network of its own.

One test walks a platform team's day: apply the example room, publish with ffmpeg to the media
container, play every rendition through the origin, chat across two chat replicas, watch
status reach LIVE with viewers in `kubectl get rooms`, find the session recorded in S3 and
replay it, then delete the room and see its containers stop and its children go.

Needs root (network namespaces), podman, the image, and the workspace binaries; without them it
skips with a notice, and fails under CI=true. README.md, "Cluster in a box", says what this
proves and what only a real cluster can."""

import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest
import yaml

import node
import scenario
from apiserver import ApiServer
from box import ROOT, Client, binary, in_ci, operator_bin, wait_for
from kubelet import MiniKubelet, PodNetwork, endpoints, podman, process_facts
from test_operator import CHILD_PATHS

IMAGE = os.environ.get("ROOMCAST_IMAGE", "localhost/roomcast:0.1.0")
NAMESPACE = "shows"
ROOM = "lobby"
EXAMPLE = ROOT / "charts" / "roomcast" / "examples" / "room.yaml"
STREAM_KEY = "box-stream-key-0123456789abcdef"
ORIGIN_SECRET = "box-origin-secret-0123456789"
S3_SERVER = binary("examples/s3-test-server", "ROOMCAST_S3_TEST_SERVER_BIN")


def missing():
    """Why this machine cannot run the box, or None."""
    if os.geteuid() != 0:
        return "root (network namespaces for pods)"
    tools = node.missing_tools()
    if tools:
        return f"{', '.join(tools)} (scripts/install-deps.sh)"
    for path in (operator_bin(), binary("roomcast-chat"), S3_SERVER):
        if not path.exists():
            return f"{path} (cargo build --bins; cargo build -p roomcast-recorder --features test-support --example s3-test-server)"
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        return f"the image {IMAGE} (bash scripts/image.sh)"
    return None


class Box:
    """Everything the scenario needs from this cluster (see `scenario`)."""

    def __init__(self, client, kubelet):
        self.client, self.kubelet = client, kubelet

    def reach(self, namespace, service, port_name):
        found = endpoints(self.client, namespace, service, port_name)
        assert found, f"no ready pod behind {service}:{port_name}"
        return found[0]

    def containers(self, namespace):
        return [c for c in self.kubelet.running_containers() if c.endswith(f"_{namespace}")]


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    why = missing()
    if why:
        if in_ci():
            pytest.fail(f"cluster-in-a-box pods need {why}")
        pytest.skip(f"cluster-in-a-box pods need {why}")
    work = tmp_path_factory.mktemp("box")
    network = PodNetwork().up()
    started = []
    try:
        ca, cert, key = node.certificate_authority(work / "pki", [network.node_ip, "127.0.0.1"])
        api = ApiServer(host=network.node_ip, tls=(str(cert), str(key)), verbose=bool(os.environ.get("ROOMCAST_BOX_LOG"))).start()
        started.append(api)
        client = Client(api.url, cafile=str(ca))
        redis, mongo = node.redis(network.node_ip, work), node.mongodb(network.node_ip, work)
        s3 = node.s3(network.node_ip, work, S3_SERVER)
        started += [redis, mongo, s3]
        kubeconfig = work / "kubeconfig"
        kubeconfig.write_text(api.kubeconfig(ca_file=ca))
        client.install_crd()
        client.namespace("roomcast-system")
        client.namespace(NAMESPACE, {"roomcast.dev/tenant": "enabled"})
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": "roomcast-system",
               "POD_NAME": "roomcast-operator-0", "ROOMCAST_LEADER_ELECTION": "false",
               "ROOMCAST_HTTP_ADDR": f"127.0.0.1:{node.free_port('127.0.0.1')}", "RUST_LOG": "info,kube=warn",
               "ROOMCAST_MEDIA_IMAGE": IMAGE, "ROOMCAST_CHAT_IMAGE": IMAGE, "ROOMCAST_IMAGE_PULL_POLICY": "Never",
               "ROOMCAST_INGEST_SERVICE_TYPE": "ClusterIP", "ROOMCAST_LOG_FORMAT": "pretty",
               "ROOMCAST_S3_ALLOWED_ENDPOINTS": s3.settings["endpoint"]}
        for unset in ("WATCH_NAMESPACE", "ROOMCAST_TENANT_NAMESPACE_SELECTOR"):
            env.pop(unset, None)
        operator = node.Process([str(operator_bin()), "run"], work / "operator.log", env=env)
        started.append(operator)
        kubelet = MiniKubelet(client, network, work / "node", api_host=network.node_ip, api_port=api.port,
                              ca_file=ca, log=lambda line: print(line, flush=True)).start()
        started.append(kubelet)
        cluster = Box(client, kubelet)
        cluster.work, cluster.s3, cluster.operator = work, s3, operator
        cluster.redis_url, cluster.mongodb_uri = redis.url, mongo.uri
        yield cluster
    finally:
        for thing in reversed(started):
            thing.stop()
        network.down()
        if in_ci() or os.environ.get("ROOMCAST_BOX_LOG"):
            for log in sorted(work.rglob("*.log")):
                print(f"===== {log.relative_to(work)}\n{log.read_text(errors='replace')[-6000:]}")


def example_room(s3):
    """The chart's example room, with the box's S3 server as its store."""
    room = yaml.safe_load(EXAMPLE.read_text())
    room["metadata"]["namespace"] = NAMESPACE
    room["spec"]["recording"]["s3"].update(endpoint=s3.settings["endpoint"], bucket=s3.settings["bucket"])
    return room


def test_example_room_runs_in_pods(box):
    client = box.client
    # What the example room's header says to create first.
    for obj in (
        scenario.secret("lobby-key", {"stream-key": STREAM_KEY}),
        scenario.secret("s3-creds", {"AWS_ACCESS_KEY_ID": box.s3.settings["accessKeyId"],
                                     "AWS_SECRET_ACCESS_KEY": box.s3.settings["secretAccessKey"]}),
        scenario.secret("live-tls", {"tls.crt": (box.work / "pki" / "apiserver.crt").read_text(),
                                     "tls.key": (box.work / "pki" / "apiserver.key").read_text()}, "kubernetes.io/tls"),
        scenario.secret("cdn-origin", {"origin-secret": ORIGIN_SECRET}),
        scenario.secret("lobby-redis-url", {"url": box.redis_url}),
        scenario.secret("lobby-mongodb-uri", {"uri": box.mongodb_uri}),
    ):
        scenario.create(client, NAMESPACE, obj)
    scenario.create(client, NAMESPACE, example_room(box.s3))

    # The operator's children, the mini-kubelet's pods, ready through their own probes.
    def ready_pods():
        pods = box.kubelet.pods(NAMESPACE, {"roomcast.dev/room": ROOM})
        ready = [p for p in pods if {c["type"]: c["status"] for c in p.get("status", {}).get("conditions", [])}
                 .get("Ready") == "True"]
        return len(ready) == 3 and ready
    pods = wait_for("the media pod and two chat pods to be ready", ready_pods, timeout=120)
    assert sorted(p["metadata"]["labels"]["app.kubernetes.io/component"] for p in pods) == ["chat", "chat", "media"]
    # The pod's restrictions, as the kernel applied them to the running workers.
    for container in box.containers(NAMESPACE):
        facts = process_facts(container)
        assert (facts["uid"], facts["gid"]) == ("10001", "10001"), (container, facts)
        assert "10001" in facts["groups"], (container, facts)  # fsGroup
        assert facts["cap_effective"] == 0 and facts["cap_bounding"] == 0, (container, facts)
        assert facts["no_new_privs"] == "1" and facts["seccomp"] == "2", (container, facts)
        assert facts["root_read_only"], (container, facts)
        if "_media_" in container:
            assert facts["memory_max"] == str(2 * 2**30), (container, facts)  # the example's 2Gi limit
    def idle():
        status = scenario.room(client, NAMESPACE, ROOM).get("status", {})
        return status.get("phase") == "Idle" or print("room status:", status.get("phase"), status.get("conditions"))
    wait_for("the room to be Idle (ready, nobody publishing)", idle, timeout=60, interval=2)

    # ffmpeg publishes to the media container through the room's RTMP Service.
    rtmp = box.reach(NAMESPACE, f"{ROOM}-rtmp", "rtmp")
    hls_host, hls_port = box.reach(NAMESPACE, f"{ROOM}-hls", "http")
    publisher = scenario.publish(*rtmp, STREAM_KEY, seconds=45)
    try:
        master_url = f"http://{hls_host}:{hls_port}/{NAMESPACE}/{ROOM}/hls/index.m3u8"

        def master():
            try:
                return scenario.http_get(master_url, ORIGIN_SECRET)[1].decode()
            except OSError:
                return None
        text = wait_for("the live master playlist", lambda: (m := master()) and "#EXT-X-STREAM-INF" in m and m,
                        timeout=60)
        # Every rendition the master lists decodes, at the height it claims.
        variants = scenario.renditions(text)
        assert len(variants) >= 2, text
        for uri, height in variants:
            url = master_url.rsplit("/", 1)[0] + "/" + uri
            wait_for(f"{uri} to have segments", lambda: "#EXTINF" in scenario.http_get(url, ORIGIN_SECRET)[1].decode(),
                     timeout=30)
            codec, decoded_height, frames = scenario.ffprobe_video(url, ORIGIN_SECRET)
            assert codec == "h264" and frames > 0, (uri, codec, frames)
            if height:
                assert decoded_height == height, (uri, decoded_height, height)
        # Without the CDN's origin secret the origin refuses.
        with pytest.raises(Exception, match="403|401"):
            scenario.http_get(master_url)

        # Two players (by user agent) and the workers' own reports: LIVE with viewers.
        for viewer in ("player-a", "player-b"):
            scenario.http_get(master_url, ORIGIN_SECRET, user_agent=viewer)

        def live_row():
            row = scenario.printer_row(client, NAMESPACE, ROOM)
            return row and row.get("Live") is True and (row.get("Viewers") or 0) >= 2 and row
        row = wait_for("LIVE with viewers in `kubectl get rooms`", live_row, timeout=45)
        status = scenario.room(client, NAMESPACE, ROOM)["status"]
        assert row["Ingest"] == status["ingestUrl"] and "rtmp://" in row["Ingest"], row
        assert row["Playback"] == status["playbackUrl"] and row["Playback"].startswith("https://live.example.com/"), row
        assert STREAM_KEY not in str(status)

        # Chat: the official client, a viewer on one replica and a user on the other.
        chat_urls = [f"http://{h}:{p}" for h, p in endpoints(client, NAMESPACE, f"{ROOM}-chat", "http")]
        assert len(chat_urls) == 2, chat_urls
        key_file = box.work / "chat-signing-key"
        key_file.write_text(scenario.read_secret(client, NAMESPACE, f"{ROOM}-keys", "chat-signing-key"))
        token = scenario.mint_token(binary("roomcast-chat"), key_file, "ada", "Ada")
        said = scenario.chat_across_replicas(chat_urls, f"/{NAMESPACE}/{ROOM}/chat/socket.io", token)
        assert said["ack"]["ok"] is True, said
        assert said["message"]["text"] == "hello from the box" and said["message"]["userId"] == "ada", said
        wait_for("both chat replicas in status", lambda: len(
            scenario.room(client, NAMESPACE, ROOM)["status"].get("chat", {}).get("replicas", [])) == 2, timeout=30)
    finally:
        publisher.terminate()
        publisher.wait(timeout=10)

    # The session lands in S3 (the in-process server's bucket) and replays through the origin.
    recordings_url = f"http://{hls_host}:{hls_port}/{NAMESPACE}/{ROOM}/recordings"

    def complete():
        listed = scenario.json_get(recordings_url, ORIGIN_SECRET)
        done = [r for r in listed["recordings"] if r.get("status") == "complete"]
        return done and done[0]
    recording = wait_for("the recording to complete", complete, timeout=90)
    objects = [p.relative_to(box.s3.bucket_dir).as_posix() for p in box.s3.bucket_dir.rglob("*") if p.is_file()]
    session_keys = [k for k in objects if f"{NAMESPACE}/{ROOM}/" in k]
    assert any(k.endswith("/index.m3u8") for k in session_keys), objects
    assert any(re.search(r"\.(ts|m4s)$", k) for k in session_keys), objects
    vod_master = f"{recordings_url}/{recording['playlist']}"
    vod_text = scenario.http_get(vod_master, ORIGIN_SECRET)[1].decode()
    for uri, _ in scenario.renditions(vod_text):
        codec, _, frames = scenario.ffprobe_video(vod_master.rsplit("/", 1)[0] + "/" + uri, ORIGIN_SECRET)
        assert codec == "h264" and frames > 0

    # Deleting the room stops its containers and collects its children.
    assert box.containers(NAMESPACE), "containers ran"
    client.ok("DELETE", f"{scenario.ROOMS.format(ns=NAMESPACE)}/{ROOM}")
    scenario.wait_deleted(box, NAMESPACE, ROOM, {**CHILD_PATHS, "Pod": "/api/v1/namespaces/{ns}/pods"})

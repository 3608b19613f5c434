"""The room scenario a platform team cares about, as steps any cluster can run: the cluster in
a box (`test_pods.py`: the API stand-in and the mini-kubelet's podman pods) and a real cluster
(`tests/e2e`, through kubectl port-forwards). Each step takes a `Cluster`:

- `client`: a `box.Client` for the API server;
- `reach(namespace, service, port_name)`: (host, port) where the test process reaches that
  Service port: the ready pod behind it in the box, a port-forward in a real cluster;
- `containers(namespace)`: what runs for the namespace on the nodes (None when unknowable).

Every step checks what a user would: a publish plays, every rendition decodes, chat crosses
replicas, the status columns read right, the recording replays, and deletion leaves nothing."""

import base64
import json
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

from box import ROOT, binary, wait_for

EXAMPLE = ROOT / "charts" / "roomcast" / "examples" / "room.yaml"
STREAM_KEY = "scenario-stream-key-0123456789abcdef"
ORIGIN_SECRET = "scenario-origin-secret-0123456789"
# Where each child kind lives in the API (the kinds of `child_kinds!` in operator/src/build/child.rs).
CHILD_PATHS = {
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "Service": "/api/v1/namespaces/{ns}/services",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "Ingress": "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
}
ROOMS = "/apis/roomcast.dev/v1alpha1/namespaces/{ns}/streamrooms"
TABLE = "application/json;as=Table;g=meta.k8s.io;v=v1"
ORIGIN_HEADER = "X-Origin-Secret"


def secret(name, data, kind="Opaque"):
    return {"apiVersion": "v1", "kind": "Secret", "type": kind, "metadata": {"name": name},
            "data": {k: base64.b64encode(v.encode() if isinstance(v, str) else v).decode() for k, v in data.items()}}


def create(client, namespace, obj):
    path = {"Secret": "/api/v1/namespaces/{ns}/secrets", "StreamRoom": ROOMS}[obj["kind"]].format(ns=namespace)
    obj = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
    return client.ok("POST", path, obj)


def read_secret(client, namespace, name, key):
    obj = client.ok("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
    return base64.b64decode(obj["data"][key]).decode()


def room(client, namespace, name):
    return client.ok("GET", f"{ROOMS.format(ns=namespace)}/{name}")


def printer_row(client, namespace, name):
    """The `kubectl get rooms` row as the server's Table answers it: column -> cell."""
    table = client.ok("GET", ROOMS.format(ns=namespace), accept=TABLE)
    columns = [c["name"] for c in table["columnDefinitions"]]
    for row in table["rows"]:
        cells = dict(zip(columns, row["cells"]))
        if cells.get("Name") == name:
            return cells
    return None


def http_get(url, origin_secret=None, user_agent="roomcast-scenario", timeout=5):
    headers = {"User-Agent": user_agent}
    if origin_secret:
        headers[ORIGIN_HEADER] = origin_secret
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


def json_get(url, origin_secret=None):
    return json.loads(http_get(url, origin_secret)[1])


def publish(rtmp_host, rtmp_port, key, seconds=40, size="640x360"):
    """ffmpeg publishing a test pattern and a tone in real time, as OBS would."""
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-b:v", "1200k",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-f", "flv",
         f"rtmp://{rtmp_host}:{rtmp_port}/live/{key}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def renditions(master_text):
    """(uri, RESOLUTION height) of every variant of a master playlist."""
    found, height = [], None
    for line in master_text.splitlines():
        if line.startswith("#EXT-X-STREAM-INF"):
            match = re.search(r"RESOLUTION=\d+x(\d+)", line)
            height = int(match.group(1)) if match else None
        elif line and not line.startswith("#"):
            found.append((line, height))
    return found


def ffprobe_video(url, origin_secret):
    """(codec, height, decoded frames) of the first seconds of an HLS playlist."""
    args = ["ffprobe", "-v", "error", "-headers", f"{ORIGIN_HEADER}: {origin_secret}\r\n",
            "-read_intervals", "%+2", "-count_frames", "-select_streams", "v:0",
            "-show_entries", "stream=codec_name,height,nb_read_frames", "-of", "json", url]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"ffprobe {url}: {out.stderr}"
    stream = json.loads(out.stdout)["streams"][0]
    return stream["codec_name"], stream["height"], int(stream.get("nb_read_frames", 0))


def chat_across_replicas(chat_urls, path, token):
    """The official socket.io client: a viewer on one replica, a user on another."""
    out = subprocess.run(["node", str(ROOT / "tests" / "cluster" / "chat_client.mjs"),
                          json.dumps({"a": chat_urls[0], "b": chat_urls[-1], "path": path, "token": token})],
                         capture_output=True, text=True, timeout=60, cwd=ROOT / "tests" / "chat")
    assert out.returncode == 0, f"chat client failed: {out.stderr}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def mint_token(chat_binary, key_file, user, name):
    out = subprocess.run([str(chat_binary), "mint-token", "--key-file", str(key_file), "--user", user,
                          "--name", name, "--role", "viewer"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def wait_deleted(cluster, namespace, name, kinds_paths, timeout=120):
    """The room is gone: its children collected and, where the nodes can be asked, its
    containers stopped."""
    def what_is_left():
        left = []
        for kind, path in kinds_paths.items():
            code, listed = cluster.client.request(
                "GET", path.format(ns=namespace) + f"?labelSelector=roomcast.dev%2Froom%3D{name}")
            if code == 200:
                left += [f"{kind}/{o['metadata']['name']}" for o in listed["items"]]
        left += cluster.containers(namespace) or []
        return left

    wait_for("the room's children and containers to go", lambda: not what_is_left(), timeout=timeout)


def example_room(namespace, s3):
    """The chart's example room, recording to the given S3 store."""
    room = yaml.safe_load(EXAMPLE.read_text())
    room["metadata"]["namespace"] = namespace
    room["spec"]["recording"]["s3"].update(endpoint=s3["endpoint"], bucket=s3["bucket"])
    return room


def example_room_day(cluster, stores, namespace, room_name="lobby"):
    """Apply the chart's example room with its Secrets, then publish, play every rendition,
    chat across the two replicas, read LIVE with viewers in `kubectl get rooms`, replay the
    recording and delete the room. `stores`: `s3` (endpoint, bucket, accessKeyId,
    secretAccessKey), `redis_url`, `mongodb_uri`, `tls` ((cert PEM, key PEM)) as the pods reach
    them. Returns what a caller may check further (the recording)."""
    client = cluster.client
    NAMESPACE, ROOM = namespace, room_name
    # What the example room's header says to create first.
    for obj in (
        secret("lobby-key", {"stream-key": STREAM_KEY}),
        secret("s3-creds", {"AWS_ACCESS_KEY_ID": stores["s3"]["accessKeyId"],
                            "AWS_SECRET_ACCESS_KEY": stores["s3"]["secretAccessKey"]}),
        secret("live-tls", {"tls.crt": stores["tls"][0], "tls.key": stores["tls"][1]}, "kubernetes.io/tls"),
        secret("cdn-origin", {"origin-secret": ORIGIN_SECRET}),
        secret("lobby-redis-url", {"url": stores["redis_url"]}),
        secret("lobby-mongodb-uri", {"uri": stores["mongodb_uri"]}),
    ):
        create(client, NAMESPACE, obj)
    create(client, NAMESPACE, example_room(NAMESPACE, stores["s3"]))

    # The operator's children, the mini-kubelet's pods, ready through their own probes.
    def ready_pods():
        pods = client.ok("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector=roomcast.dev%2Froom%3D{ROOM}")["items"]
        ready = [p for p in pods if {c["type"]: c["status"] for c in p.get("status", {}).get("conditions", [])}
                 .get("Ready") == "True"]
        return len(ready) == 3 and ready
    pods = wait_for("the media pod and two chat pods to be ready", ready_pods, timeout=120)
    assert sorted(p["metadata"]["labels"]["app.kubernetes.io/component"] for p in pods) == ["chat", "chat", "media"]
    cluster.check_pods(NAMESPACE, pods)

    def idle():
        status = room(client, NAMESPACE, ROOM).get("status", {})
        return status.get("phase") == "Idle" or print("room status:", status.get("phase"), status.get("conditions"))
    wait_for("the room to be Idle (ready, nobody publishing)", idle, timeout=60, interval=2)

    # ffmpeg publishes to the media container through the room's RTMP Service.
    rtmp = cluster.reach(NAMESPACE, f"{ROOM}-rtmp", "rtmp")
    hls_host, hls_port = cluster.reach(NAMESPACE, f"{ROOM}-hls", "http")
    publisher = publish(*rtmp, STREAM_KEY, seconds=45)
    try:
        master_url = f"http://{hls_host}:{hls_port}/{NAMESPACE}/{ROOM}/hls/index.m3u8"

        def master():
            try:
                return http_get(master_url, ORIGIN_SECRET)[1].decode()
            except OSError:
                return None
        text = wait_for("the live master playlist", lambda: (m := master()) and "#EXT-X-STREAM-INF" in m and m,
                        timeout=60)
        # Every rendition the master lists decodes, at the height it claims.
        variants = renditions(text)
        assert len(variants) >= 2, text
        for uri, height in variants:
            url = master_url.rsplit("/", 1)[0] + "/" + uri
            wait_for(f"{uri} to have segments", lambda: "#EXTINF" in http_get(url, ORIGIN_SECRET)[1].decode(),
                     timeout=30)
            codec, decoded_height, frames = ffprobe_video(url, ORIGIN_SECRET)
            assert codec == "h264" and frames > 0, (uri, codec, frames)
            if height:
                assert decoded_height == height, (uri, decoded_height, height)
        # Without the CDN's origin secret the origin refuses.
        with pytest.raises(Exception, match="403|401"):
            http_get(master_url)

        # Two players (by user agent) and the workers' own reports: LIVE with viewers.
        for viewer in ("player-a", "player-b"):
            http_get(master_url, ORIGIN_SECRET, user_agent=viewer)

        def live_row():
            row = printer_row(client, NAMESPACE, ROOM)
            return row and row.get("Live") is True and (row.get("Viewers") or 0) >= 2 and row
        row = wait_for("LIVE with viewers in `kubectl get rooms`", live_row, timeout=45)
        status = room(client, NAMESPACE, ROOM)["status"]
        assert row["Ingest"] == status["ingestUrl"] and "rtmp://" in row["Ingest"], row
        assert row["Playback"] == status["playbackUrl"] and row["Playback"].startswith("https://live.example.com/"), row
        assert STREAM_KEY not in str(status)

        # Chat: the official client, a viewer on one replica and a user on the other.
        chat_urls = cluster.chat_urls(NAMESPACE, f"{ROOM}-chat", "http")
        assert len(chat_urls) == 2, chat_urls
        key_file = cluster.work / "chat-signing-key"
        key_file.write_text(read_secret(client, NAMESPACE, f"{ROOM}-keys", "chat-signing-key"))
        token = mint_token(binary("roomcast-chat"), key_file, "ada", "Ada")
        said = chat_across_replicas(chat_urls, f"/{NAMESPACE}/{ROOM}/chat/socket.io", token)
        assert said["ack"]["ok"] is True, said
        assert said["message"]["text"] == "hello from the box" and said["message"]["userId"] == "ada", said
        wait_for("both chat replicas in status", lambda: len(
            room(client, NAMESPACE, ROOM)["status"].get("chat", {}).get("replicas", [])) == 2, timeout=30)
    finally:
        publisher.terminate()
        publisher.wait(timeout=10)

    # The session lands in S3 (the in-process server's bucket) and replays through the origin.
    recordings_url = f"http://{hls_host}:{hls_port}/{NAMESPACE}/{ROOM}/recordings"

    def complete():
        listed = json_get(recordings_url, ORIGIN_SECRET)
        done = [r for r in listed["recordings"] if r.get("status") == "complete"]
        return done and done[0]
    recording = wait_for("the recording to complete", complete, timeout=90)
    objects = cluster.bucket_objects()
    if objects is not None:  # where the test can list the bucket itself
        session_keys = [k for k in objects if k.startswith(recording["prefix"])]
        assert any(k.endswith("/index.m3u8") for k in session_keys), objects
        assert any(re.search(r"\.(ts|m4s)$", k) for k in session_keys), objects
    vod_master = f"{recordings_url}/{recording['playlist']}"
    vod_text = http_get(vod_master, ORIGIN_SECRET)[1].decode()
    for uri, _ in renditions(vod_text):
        codec, _, frames = ffprobe_video(vod_master.rsplit("/", 1)[0] + "/" + uri, ORIGIN_SECRET)
        assert codec == "h264" and frames > 0

    # Deleting the room stops its containers and collects its children.
    assert cluster.containers(NAMESPACE) != [], "containers ran"
    client.ok("DELETE", f"{ROOMS.format(ns=NAMESPACE)}/{ROOM}")
    wait_deleted(cluster, NAMESPACE, ROOM, {**CHILD_PATHS, "Pod": "/api/v1/namespaces/{ns}/pods"})
    return recording


def url_of(host, port, path):
    return f"http://{host}:{port}{urllib.parse.quote(path)}"

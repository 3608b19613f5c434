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
import time
import urllib.error
import urllib.parse
import urllib.request

from box import ROOT, wait_for

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


def url_of(host, port, path):
    return f"http://{host}:{port}{urllib.parse.quote(path)}"

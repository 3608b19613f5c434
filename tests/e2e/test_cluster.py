"""End-to-end: the chart's CRD and RBAC, the operator and a room in a real cluster.

Runs only when ``ROOMCAST_E2E_KUBECONFIG`` names a kubeconfig (kind, k3d, a dev cluster);
otherwise every test is skipped with a notice (``pytest -rs`` prints it). No cluster can be
started on the CI machines, so CI shows the notice.

The operator runs out of cluster (``roomcast-operator run`` with the kubeconfig), because no
image registry is reachable from here; set ``ROOMCAST_E2E_IMAGE`` to also install the chart's
operator Deployment with that image instead. The test namespace is deleted at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
# The cluster-in-a-box helpers and scenario (tests/cluster), shared with this suite.
sys.path.insert(0, str(REPO / "tests" / "cluster"))
import box as cluster_box  # noqa: E402
import scenario  # noqa: E402
KUBECONFIG = os.environ.get("ROOMCAST_E2E_KUBECONFIG", "")
OPERATOR = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "roomcast-target")) / "debug" / "roomcast-operator"

pytestmark = pytest.mark.skipif(
    not KUBECONFIG,
    reason="end-to-end suite skipped: set ROOMCAST_E2E_KUBECONFIG to a kubeconfig of a real cluster to run it",
)


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", KUBECONFIG, *args],
        input=stdin, capture_output=True, text=True, timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def wait_for(what: str, probe, timeout: float = 90.0):
    return cluster_box.wait_for(what, probe, timeout=timeout, interval=1.0)


@pytest.fixture(scope="module")
def namespace():
    assert shutil.which("kubectl"), "kubectl is needed for the end-to-end suite"
    assert OPERATOR.exists(), f"build the operator first ({OPERATOR})"
    ns = f"roomcast-e2e-{uuid.uuid4().hex[:6]}"
    kubectl("apply", "--server-side", "-f", str(REPO / "charts/roomcast/crds/streamroom.yaml"))
    kubectl("wait", "--for=condition=Established", "crd/streamrooms.roomcast.dev", "--timeout=60s")
    kubectl("create", "namespace", ns)
    images = {"ROOMCAST_MEDIA_IMAGE": os.environ["ROOMCAST_E2E_IMAGE"],
              "ROOMCAST_CHAT_IMAGE": os.environ["ROOMCAST_E2E_IMAGE"]} if os.environ.get("ROOMCAST_E2E_IMAGE") else {}
    s3 = json.loads(os.environ.get("ROOMCAST_E2E_S3") or "{}")
    if s3.get("endpoint"):
        images["ROOMCAST_S3_ALLOWED_ENDPOINTS"] = s3["endpoint"]
    env = {**os.environ, **images, "KUBECONFIG": KUBECONFIG, "ROOMCAST_LOG_FORMAT": "pretty",
           "ROOMCAST_HTTP_ADDR": "127.0.0.1:0", "WATCH_NAMESPACE": ns,
           "ROOMCAST_INGEST_SERVICE_TYPE": "ClusterIP", "ROOMCAST_PLAYBACK_HOST": "live.e2e.example.com"}
    operator = subprocess.Popen([str(OPERATOR), "run"], env=env)
    try:
        yield ns
    finally:
        operator.terminate()
        operator.wait(timeout=30)
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


ROOM = """
apiVersion: roomcast.dev/v1alpha1
kind: StreamRoom
metadata: {name: lobby}
spec:
  chat: {replicas: 1}
"""


def children(ns: str) -> set[str]:
    out = kubectl("get", "secret,configmap,deployment,service,ingress,networkpolicy,pdb,role,rolebinding,serviceaccount",
                  "-n", ns, "-l", "roomcast.dev/room=lobby", "-o", "name")
    return set(out.split())


def test_room_gets_children_status_and_printer_columns(namespace):
    kubectl("apply", "-n", namespace, "-f", "-", stdin=ROOM)
    expected = {"deployment.apps/lobby-media", "deployment.apps/lobby-chat", "service/lobby-rtmp",
                "service/lobby-hls", "service/lobby-chat", "secret/lobby-keys", "configmap/lobby-config",
                "ingress.networking.k8s.io/lobby", "ingress.networking.k8s.io/lobby-chat",
                "networkpolicy.networking.k8s.io/lobby-media", "networkpolicy.networking.k8s.io/lobby-chat"}
    wait_for("children", lambda: expected <= children(namespace))
    room = wait_for("status", lambda: json.loads(kubectl("get", "room", "lobby", "-n", namespace, "-o", "json"))
                    .get("status", {}).get("phase") and json.loads(kubectl("get", "room", "lobby", "-n", namespace, "-o", "json")))
    assert room["status"]["observedGeneration"] == room["metadata"]["generation"]
    assert {c["type"] for c in room["status"]["conditions"]} == {"Ready", "IngestReady", "ChatReady", "RecordingReady"}
    header = kubectl("get", "rooms", "-n", namespace).splitlines()[0].split()
    assert header == ["NAME", "PHASE", "LIVE", "VIEWERS", "INGEST", "PLAYBACK", "AGE"]


def test_deleted_child_comes_back_and_spec_change_rolls_out(namespace):
    kubectl("delete", "service", "lobby-hls", "-n", namespace)
    wait_for("service to come back", lambda: "service/lobby-hls" in children(namespace))
    kubectl("patch", "room", "lobby", "-n", namespace, "--type=merge", "-p",
            json.dumps({"spec": {"transcode": {"segmentSeconds": 4}}}))
    wait_for("config rollout", lambda: "segmentSeconds: 4" in kubectl(
        "get", "configmap", "lobby-config", "-n", namespace, "-o", "jsonpath={.data.room\\.yaml}"))


def test_invalid_room_is_refused_at_apply_time(namespace):
    bad = yaml.safe_load(ROOM)
    bad["metadata"]["name"] = "bad"
    bad["spec"]["transcode"] = {"segmentSeconds": 4, "dvrWindowSeconds": 8}
    result = subprocess.run(["kubectl", "--kubeconfig", KUBECONFIG, "apply", "-n", namespace, "-f", "-"],
                            input=yaml.safe_dump(bad), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "at least 3 segments" in result.stderr


def test_deleting_the_room_removes_what_it_owned(namespace):
    kubectl("delete", "room", "lobby", "-n", namespace, "--wait=true")
    wait_for("garbage collection", lambda: not children(namespace) or None, timeout=120)


# The cluster-in-a-box scenario (tests/cluster/scenario.py), against this cluster: the same
# steps, reached through `kubectl proxy` and `kubectl port-forward` instead of the box's pod
# network. It needs the image in the cluster and stores the pods can reach.

SCENARIO_ENV = ("ROOMCAST_E2E_IMAGE", "ROOMCAST_E2E_S3", "ROOMCAST_E2E_REDIS_URL", "ROOMCAST_E2E_MONGODB_URI")


class PortForwards:
    """`kubectl port-forward` processes, each giving a local port."""

    def __init__(self):
        self.processes = []

    def open(self, namespace: str, target: str, port: int) -> tuple[str, int]:
        process = subprocess.Popen(["kubectl", "--kubeconfig", KUBECONFIG, "-n", namespace, "port-forward",
                                    target, f":{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.processes.append(process)
        line = process.stdout.readline()  # "Forwarding from 127.0.0.1:40123 -> 1935"
        assert "Forwarding from 127.0.0.1:" in line, f"port-forward {target}: {line}{process.stderr.read()}"
        return "127.0.0.1", int(line.split("127.0.0.1:")[1].split()[0])

    def close(self):
        for process in self.processes:
            process.terminate()


class RealCluster:
    """The scenario's view of a real cluster (see tests/cluster/scenario.py)."""

    def __init__(self, api_url: str, work: Path, forwards: PortForwards):
        self.client = cluster_box.Client(api_url)
        self.work, self.forwards = work, forwards

    def reach(self, namespace, service, port_name):
        svc = self.client.ok("GET", f"/api/v1/namespaces/{namespace}/services/{service}")
        port = next(p["port"] for p in svc["spec"]["ports"] if p.get("name") == port_name)
        return self.forwards.open(namespace, f"svc/{service}", port)

    def chat_urls(self, namespace, service, port_name):
        svc = self.client.ok("GET", f"/api/v1/namespaces/{namespace}/services/{service}")
        selector = ",".join(f"{k}={v}" for k, v in svc["spec"]["selector"].items())
        pods = json.loads(kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json"))["items"]
        target = next(p.get("targetPort", p["port"]) for p in svc["spec"]["ports"] if p.get("name") == port_name)
        urls = []
        for pod in pods:
            number = target if isinstance(target, int) else next(
                c["containerPort"] for c in pod["spec"]["containers"][0]["ports"] if c.get("name") == target)
            host, local = self.forwards.open(namespace, f"pod/{pod['metadata']['name']}", number)
            urls.append(f"http://{host}:{local}")
        return urls

    def containers(self, namespace):
        return None  # the nodes are not ours to ask; pods are checked through the API

    def bucket_objects(self):
        return None  # the recording is checked through the recordings API

    def check_pods(self, namespace, pods):
        for pod in pods:
            assert all(c["ready"] for c in pod["status"]["containerStatuses"]), pod["status"]


@pytest.mark.skipif(any(not os.environ.get(v) for v in SCENARIO_ENV),
                    reason="the example room's scenario needs " + ", ".join(SCENARIO_ENV)
                    + " (image the cluster can pull; S3 as JSON {endpoint, bucket, accessKeyId, secretAccessKey}; "
                      "Redis and MongoDB URLs the pods reach)")
def test_example_room_day(namespace, tmp_path):
    proxy = subprocess.Popen(["kubectl", "--kubeconfig", KUBECONFIG, "proxy", "--port=0"],
                             stdout=subprocess.PIPE, text=True)
    forwards = PortForwards()
    try:
        line = proxy.stdout.readline()  # "Starting to serve on 127.0.0.1:40123"
        api_url = "http://" + line.rsplit(" ", 1)[1].strip()
        tls = tmp_path / "tls"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", f"{tls}.key", "-out", f"{tls}.crt", "-days", "1",
                        "-subj", "/CN=live.example.com"], check=True, capture_output=True)
        stores = {"s3": json.loads(os.environ["ROOMCAST_E2E_S3"]), "redis_url": os.environ["ROOMCAST_E2E_REDIS_URL"],
                  "mongodb_uri": os.environ["ROOMCAST_E2E_MONGODB_URI"],
                  "tls": (Path(f"{tls}.crt").read_text(), Path(f"{tls}.key").read_text())}
        scenario.example_room_day(RealCluster(api_url, tmp_path, forwards), stores, namespace)
    finally:
        forwards.close()
        proxy.terminate()

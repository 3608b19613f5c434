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
import time
import uuid
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
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
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}")


@pytest.fixture(scope="module")
def namespace():
    assert shutil.which("kubectl"), "kubectl is needed for the end-to-end suite"
    assert OPERATOR.exists(), f"build the operator first ({OPERATOR})"
    ns = f"roomcast-e2e-{uuid.uuid4().hex[:6]}"
    kubectl("apply", "--server-side", "-f", str(REPO / "charts/roomcast/crds/streamroom.yaml"))
    kubectl("wait", "--for=condition=Established", "crd/streamrooms.roomcast.dev", "--timeout=60s")
    kubectl("create", "namespace", ns)
    env = {**os.environ, "KUBECONFIG": KUBECONFIG, "ROOMCAST_LOG_FORMAT": "pretty",
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

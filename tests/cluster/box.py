"""Helpers of the cluster-in-a-box suite: a small client for the API server stand-in
(`apiserver.py`), so tests speak plain HTTP to it exactly as kubectl or kube-rs would."""

import json
import os
import pathlib
import socket
import subprocess
import ssl
import time
import urllib.error
import urllib.request

import pytest
import yaml

from node import Process

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "streamroom.yaml"
OPERATOR_NAMESPACE = "roomcast-system"
POD_NAME = "roomcast-operator-0"


class Client:
    """Just enough of a Kubernetes client: JSON in, (code, JSON) out."""

    def __init__(self, url, cafile=None):
        self.url = url
        # Over TLS the server's certificate is checked against the cluster's CA, as kubectl does.
        self.tls = ssl.create_default_context(cafile=cafile) if cafile else None

    def request(self, method, path, body=None, content_type="application/json", accept="application/json"):
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else (
                yaml.safe_dump(body) if "yaml" in content_type else json.dumps(body)).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": content_type, "Accept": accept})
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.tls) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def ok(self, method, path, body=None, **kwargs):
        code, answer = self.request(method, path, body, **kwargs)
        assert code < 300, f"{method} {path}: {code} {answer}"
        return answer

    def apply(self, path, body, manager, force=True):
        query = f"?fieldManager={manager}" + ("&force=true" if force else "")
        return self.request("PATCH", path + query, body, content_type="application/apply-patch+yaml")

    def namespace(self, name, labels=None):
        return self.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                      "metadata": {"name": name, "labels": labels or {}}})

    def install_crd(self):
        return self.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                       yaml.safe_load(CRD.read_text()))


def in_ci():
    return os.environ.get("CI", "").strip().lower() not in ("", "false", "0")


def binary(name, env_override=None):
    """A workspace binary: `$<env_override>` when set, else `$CARGO_TARGET_DIR/debug/<name>`."""
    explicit = os.environ.get(env_override) if env_override else None
    if explicit:
        return pathlib.Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return pathlib.Path(target) / "debug" / name


def operator_bin():
    return binary("roomcast-operator", "ROOMCAST_OPERATOR_BIN")


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout=20.0, interval=0.1):
    """Poll `check` until it returns something truthy; fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


class Operator(Process):
    """The real operator process (`roomcast-operator run`), its environment and its log."""

    def __init__(self, binary, kubeconfig, log, pod_name=POD_NAME, **settings):
        """Cluster-wide with leader election and the default tenant selector, unless `settings`
        (environment variables) say otherwise."""
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": OPERATOR_NAMESPACE,
                    "POD_NAME": pod_name, "ROOMCAST_LEADER_ELECTION": "true",
                    "ROOMCAST_HTTP_ADDR": f"127.0.0.1:{free_port()}", "RUST_LOG": "info,kube=warn"}
        for unset in ("WATCH_NAMESPACE", "ROOMCAST_TENANT_NAMESPACE_SELECTOR"):
            self.env.pop(unset, None)
        self.env.update(settings)
        self.binary = binary
        super().__init__([str(binary), "run"], log, env=self.env)

    def ready(self):
        """What /readyz answers (None while the port is not open yet)."""
        try:
            with urllib.request.urlopen(f"http://{self.env['ROOMCAST_HTTP_ADDR']}/readyz", timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def render(self, room_file):
        """What the operator would apply for a room: the expected children."""
        out = subprocess.run([str(self.binary), "render", "-f", str(room_file)], env=self.env,
                             capture_output=True, text=True, check=True).stdout
        return {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(out) if d}

"""Shared pieces of the chart tests: the loaded chart and a renderer that returns objects.

Rendering goes through Helm 4's own library (PyPI ``helm-python-sdk``, ctypes over
``libhelm_c``), so values are coalesced, validated against ``values.schema.json`` and
templated exactly as ``helm install`` / ``helm template`` would. Nothing here re-implements
templates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_python.chart import Chart

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "charts" / "roomcast"
FULL_VALUES = CHART_DIR / "examples" / "values-full.yaml"

RELEASE = "roomcast"
NAMESPACE = "roomcast-system"
KUBERNETES_VERSION = "1.33"

# Values that exercise every branch of the templates; most tests run over all of them.
SCENARIOS = {
    "defaults": {},
    "full": yaml.safe_load(FULL_VALUES.read_text()),
    "one-namespace": {"watchNamespace": "shows"},
    "two-replicas": {"replicaCount": 2},
    "namespaced-with-secrets": {
        "watchNamespace": "shows",
        "recording": {"s3": {"bucket": "vods", "credentialsSecret": "s3-creds"}},
        "mongodb": {"uriSecret": "mongo"},
    },
    "existing-service-account": {"serviceAccount": {"create": False, "name": "ops"}},
    # The ingest gateway with its own certificate Secret, one replica (no PDB), NodePort.
    "ingest-gateway": {"ingestGateway": {"enabled": True, "host": "ingest.example.com", "replicas": 1,
                                         "service": {"type": "NodePort"}, "tls": {"secretName": "ingest-tls"}}},
    # A LoadBalancer that keeps kube-proxy's default policy, and a ClusterIP Service behind the
    # platform's own proxy (where externalTrafficPolicy is invalid), in a non-default cluster domain.
    "ingest-gateway-cluster-policy": {"ingestGateway": {"enabled": True, "host": "ingest.example.com",
                                                        "service": {"externalTrafficPolicy": "Cluster"},
                                                        "tls": {"secretName": "ingest-tls"}}},
    "ingest-gateway-cluster-ip": {"clusterDomain": "corp.example",
                                  "ingestGateway": {"enabled": True, "host": "ingest.example.com",
                                                    "service": {"type": "ClusterIP"},
                                                    "tls": {"secretName": "ingest-tls"}}},
}


@pytest.fixture(scope="session")
def chart() -> Chart:
    with Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def full_values() -> dict[str, Any]:
    return yaml.safe_load(FULL_VALUES.read_text())


def render_objects(chart: Chart, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Render the chart like `helm template roomcast -n roomcast-system` and return every
    Kubernetes object (NOTES.txt and empty documents dropped), in template order."""
    manifests = chart.render(values=values or {}, name=RELEASE, namespace=NAMESPACE)
    objects: list[dict[str, Any]] = []
    for path in sorted(manifests):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(manifests[path]):
            if doc:
                doc.setdefault("__template__", path)
                objects.append(doc)
    return objects


def render_notes(chart: Chart, values: dict[str, Any] | None = None) -> str:
    manifests = chart.render(values=values or {}, name=RELEASE, namespace=NAMESPACE)
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


def strip(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without the test's bookkeeping key."""
    return {k: v for k, v in obj.items() if k != "__template__"}


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected exactly one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def component(objects: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The objects of one component (`operator`, `ingest-gateway`)."""
    return [o for o in objects
            if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == name]


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(component(objects, "operator"), "Deployment")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return containers[0]


def env_of(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    env = operator_container(objects)["env"]
    names = [e["name"] for e in env]
    assert len(names) == len(set(names)), f"duplicate env vars: {names}"
    return {e["name"]: e for e in env}

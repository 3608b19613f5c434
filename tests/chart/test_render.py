"""The chart lints, renders with default and full values, every object it renders is valid
Kubernetes 1.33, and the CRD it ships is the generated one."""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from helm_python.chart import lint

from conftest import (
    CHART_DIR,
    FULL_VALUES,
    KUBERNETES_VERSION,
    NAMESPACE,
    REPO,
    SCENARIOS,
    by_kind,
    component,
    render_objects,
    strip,
)

# Objects of kinds Kubernetes itself does not define, so kubernetes-validate has no schema.
# Each is checked by hand below; any other unknown kind fails.
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("cert-manager.io/v1", "Certificate"),
}


def lint_problems(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Lint messages of severity warning (2) or error (3); info (1) is advice."""
    return [m for m in report["messages"] if m["severity"] >= 2] + [
        {"error": e} for e in report["errors"]
    ]


@pytest.mark.parametrize("values_file", [None, FULL_VALUES], ids=["defaults", "full"])
def test_lint_passes_strictly_for_kubernetes_1_33(values_file) -> None:
    values = yaml.safe_load(values_file.read_text()) if values_file else None
    report = lint(
        CHART_DIR, values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBERNETES_VERSION}.0"
    )
    assert report["total_charts_linted"] == 1
    assert lint_problems(report) == []


def test_lint_reports_values_the_schema_refuses() -> None:
    report = lint(CHART_DIR, {"replicaCount": 0}, strict=True, namespace=NAMESPACE)
    assert any("/replicaCount" in m["error"] for m in lint_problems(report)), report


def test_default_values_render_the_operator_and_its_access(chart) -> None:
    kinds = sorted(o["kind"] for o in render_objects(chart))
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "NetworkPolicy",
        "Service",
        "ServiceAccount",
    ]


def test_full_values_render_every_optional_object(chart, full_values) -> None:
    kinds = sorted(o["kind"] for o in render_objects(chart, full_values))
    # watchNamespace: Role/RoleBinding for rooms + own-namespace Role/RoleBinding (lease,
    # default Secrets); ServiceMonitor on. The ingest gateway: Deployment, Service, PDB,
    # ServiceAccount, Role/RoleBinding, Certificate, PodMonitor. A NetworkPolicy each.
    assert kinds == [
        "Certificate",
        "Deployment",
        "Deployment",
        "NetworkPolicy",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "PodMonitor",
        "Role",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "RoleBinding",
        "Service",
        "Service",
        "ServiceAccount",
        "ServiceAccount",
        "ServiceMonitor",
    ]


@pytest.mark.parametrize("values", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_every_rendered_object_is_valid_kubernetes_1_33(chart, values) -> None:
    objects = render_objects(chart, values)
    assert objects
    for obj in objects:
        kind = (obj["apiVersion"], obj["kind"])
        where = f"{obj['__template__']}: {obj['kind']}/{obj['metadata']['name']}"
        if kind in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(strip(obj), KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = ".".join(str(p) for p in err.path)
            pytest.fail(f"{where} is not valid Kubernetes {KUBERNETES_VERSION}: {path}: {err.message}")
        except kubernetes_validate.SchemaNotFoundError as err:
            pytest.fail(f"{where}: {err.message}")


def test_service_monitor_scrapes_the_metrics_service(chart, full_values) -> None:
    objects = render_objects(chart, full_values)
    (monitor,) = by_kind(objects, "ServiceMonitor")
    (service,) = by_kind(component(objects, "operator"), "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["interval"] == full_values["metrics"]["serviceMonitor"]["interval"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_service_monitor_is_off_by_default(chart) -> None:
    assert by_kind(render_objects(chart), "ServiceMonitor") == []


def test_chart_crd_is_the_generated_crd(chart) -> None:
    crds = chart.crds
    assert [c["name"] for c in crds] == ["crds/streamroom.yaml"]
    generated = (REPO / "crds" / "streamroom.yaml").read_text()
    assert crds[0]["data"] == generated, (
        "charts/roomcast/crds/streamroom.yaml differs from crds/streamroom.yaml: run "
        "`cargo run -p roomcast-crds --bin crdgen crds/streamroom.yaml "
        "charts/roomcast/crds/streamroom.yaml`"
    )


def test_chart_crd_is_valid_kubernetes_1_33(chart) -> None:
    (crd,) = [yaml.safe_load(c["data"]) for c in chart.crds]
    kubernetes_validate.validate(crd, KUBERNETES_VERSION, strict=True)
    assert crd["metadata"]["name"] == "streamrooms.roomcast.dev"
    assert crd["spec"]["names"]["kind"] == "StreamRoom"
    assert "room" in crd["spec"]["names"]["shortNames"]
    assert [v["name"] for v in crd["spec"]["versions"]] == ["v1alpha1"]


def test_example_room_is_the_full_fixture_and_fits_the_crd(chart) -> None:
    example = yaml.safe_load((CHART_DIR / "examples" / "room.yaml").read_text())
    fixture = yaml.safe_load((REPO / "tests" / "fixtures" / "rooms" / "full.yaml").read_text())
    assert example == fixture
    (crd,) = [yaml.safe_load(c["data"]) for c in chart.crds]
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    # Structural OpenAPI v3 is a JSON Schema subset; x-kubernetes-* keywords (CEL rules
    # included) are ignored here and checked by the crds crate's own tests.
    jsonschema.Draft4Validator(schema).validate(example)

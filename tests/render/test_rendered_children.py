"""Every object `roomcast-operator render` prints for the example rooms is a valid Kubernetes
1.33 object (strict: unknown fields fail), checked with the offline schemas of PyPI
``kubernetes-validate``. The builders are unit-tested in Rust; this proves the API server
would accept what they build.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
OPERATOR = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "roomcast-target")) / "debug" / "roomcast-operator"
ROOMS = sorted((REPO / "tests" / "fixtures" / "rooms").glob("*.yaml"))
CONFIGS = {
    "defaults": [],
    "platform": ["--playback-host", "live.example.com", "--ingress-class", "nginx",
                 "--redis-secret", "redis", "--s3-bucket", "vods",
                 "--s3-credentials-secret", "s3-creds", "--mongodb-secret", "mongo",
                 "--share-default-credentials", "--image-pull-secrets", "regcred,mirror",
                 "--ingest-service-type", "NodePort"],
    # Every NetworkPolicy knob: stores as IPv4 and IPv6 CIDRs, an empty selector ({}).
    "network": ["--redis-secret", "redis", "--share-default-credentials", "--mongodb-secret", "mongo",
                "--ingress-namespace-selector", "", "--monitoring-namespace-selector", "team=obs,tier=metrics",
                "--egress-api-server-cidrs", "172.18.0.2", "--egress-api-server-ports", "6443",
                "--egress-s3-cidrs", "52.95.0.0/16,2600:1f18::/32", "--egress-s3-ports", "443,9000",
                "--egress-mongodb-cidrs", "10.20.0.0/24", "--egress-redis-cidrs", "fd00::7"],
    # The shared ingest gateway on: rooms default to expose: gateway.
    "gateway": ["--ingest-gateway-url", "rtmps://ingest.example.com/live",
                "--ingest-gateway-pod-labels",
                "app.kubernetes.io/name=roomcast,app.kubernetes.io/component=ingest-gateway,app.kubernetes.io/instance=roomcast"],
}


def render(room: Path, flags: list[str]) -> list[dict]:
    assert OPERATOR.exists(), f"build the operator first: {OPERATOR}"
    out = subprocess.run([str(OPERATOR), "render", "-f", str(room), *flags],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("room", ROOMS, ids=lambda p: p.stem)
def test_rendered_children_validate_against_kubernetes_1_33(room: Path, config: str):
    objects = render(room, CONFIGS[config])
    assert len(objects) >= 10
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, "1.33", strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {'.'.join(map(str, e.path))}: {e.message}")


ROOM_HEADER = "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {name: lobby}\n"


def render_error(room: Path, flags: list[str] | None = None) -> str:
    """Render a room that must be refused; returns what render printed on stderr."""
    result = subprocess.run([str(OPERATOR), "render", "-f", str(room), *(flags or [])],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0, result.stdout
    return result.stderr


def test_render_refuses_an_invalid_room_with_the_field_named(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(ROOM_HEADER + "spec: {transcode: {segmentSeconds: 4, dvrWindowSeconds: 8}}\n")
    stderr = render_error(bad)
    assert "spec.transcode" in stderr and "at least 3 segments" in stderr, stderr


def test_render_refuses_a_dvr_window_that_cannot_fit_the_media_memory_limit(tmp_path: Path):
    room = tmp_path / "long-dvr.yaml"
    room.write_text(ROOM_HEADER + "spec: {transcode: {dvrWindowSeconds: 7200}}\n")
    stderr = render_error(room)
    assert "DVR 7200 s" in stderr and "media memory limit 2.0 GiB" in stderr, stderr
    assert "spec.transcode.dvrWindowSeconds" in stderr, stderr
    # The operator's default limit (Helm value workers.media.resources) is the one checked.
    raised = ["--media-resources", '{"limits": {"memory": "16Gi"}}']
    assert render(room, raised)


def test_render_refuses_a_room_that_needs_platform_credentials_the_platform_does_not_share(tmp_path: Path):
    room = tmp_path / "room.yaml"
    room.write_text(ROOM_HEADER + "spec: {}\n")
    stderr = render_error(room, ["--mongodb-secret", "mongo"])
    assert "needs MongoDB credentials" in stderr and "spec.mongodbSecretRef" in stderr, stderr
    # With its own Secret the room renders, and no copy of the platform's is made.
    room.write_text(ROOM_HEADER + "spec: {mongodbSecretRef: {name: own-mongo}}\n")
    names = [o["metadata"]["name"] for o in render(room, ["--mongodb-secret", "mongo"]) if o["kind"] == "Secret"]
    assert names == ["lobby-keys"], names


def test_render_refuses_a_default_s3_prefix_without_trailing_slash():
    stderr = render_error(REPO / "tests" / "fixtures" / "rooms" / "full.yaml", ["--s3-prefix", "rooms"])
    assert "ROOMCAST_S3_PREFIX" in stderr and "--s3-prefix" in stderr, stderr


def test_yaml_1_1_boolean_words_survive_kubectl_style_parsing(tmp_path: Path):
    """PyYAML, like kubectl, reads YAML 1.1: an unquoted `yes` would become True."""
    room = tmp_path / "room.yaml"
    room.write_text("apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {name: lobby}\n"
                    "spec:\n  recording:\n    enabled: true\n    s3:\n      bucket: vods\n      region: 'no'\n"
                    "      serviceAccountAnnotations: {team: 'yes', audit: 'off'}\n")
    objects = render(room, [])
    account = next(o for o in objects if o["kind"] == "ServiceAccount")
    annotations = account["metadata"]["annotations"]
    assert (annotations["team"], annotations["audit"]) == ("yes", "off")
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert yaml.safe_load(config["data"]["room.yaml"])["recording"]["region"] == "no"


@pytest.mark.parametrize(
    "spec, field",
    [
        ("transcod: {segmentSeconds: 2}", "spec.transcod\"; did you mean \"transcode\"?"),
        ("playback: {latncy: low}", "spec.playback.latncy"),
        ("transcode: {renditions: [{name: source, bitrat: 5}]}", "spec.transcode.renditions[0].bitrat"),
    ],
)
def test_render_refuses_unknown_fields_as_kubectl_strict_validation_does(tmp_path: Path, spec: str, field: str):
    """A typo must not be dropped silently: the room would run with defaults and say nothing."""
    bad = tmp_path / "typo.yaml"
    bad.write_text(f"apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {{name: lobby}}\nspec:\n  {spec}\n")
    result = subprocess.run([str(OPERATOR), "render", "-f", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"unknown field \"{field}" in result.stderr, result.stderr


def chart_objects(values: dict) -> list[dict]:
    """The Helm chart rendered like `helm template roomcast -n roomcast-system`."""
    from helm_python.chart import Chart

    with Chart.load(REPO / "charts" / "roomcast") as chart:
        manifests = chart.render(values=values, name="roomcast", namespace="roomcast-system")
    return [doc for path, text in manifests.items() if not path.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text) if doc]


@pytest.mark.parametrize("values", [{}, {"watchNamespace": "shows"}], ids=["cluster-wide", "one-namespace"])
def test_the_operator_holds_every_permission_it_grants_a_worker_role(values: dict):
    """Without `escalate`, Kubernetes lets the operator create the per-room worker Role only
    if the chart's rules already give the operator each (group, resource, verb) it grants."""
    (worker_role,) = [o for o in render(REPO / "tests" / "fixtures" / "rooms" / "full.yaml", [])
                      if o["kind"] == "Role"]
    operator_roles = [o for o in chart_objects(values) if o["kind"] == "ClusterRole"
                      or (o["kind"] == "Role" and o["metadata"]["namespace"] == values.get("watchNamespace"))]
    assert len(operator_roles) == 1
    held = {(group, resource, verb) for rule in operator_roles[0]["rules"] if not rule.get("resourceNames")
            for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]}
    granted = {(group, resource, verb) for rule in worker_role["rules"]
               for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]}
    assert granted and granted <= held, granted - held


GATEWAY = CONFIGS["gateway"]


def test_behind_the_gateway_the_rtmp_service_is_cluster_ip_and_admits_only_the_gateway(tmp_path: Path):
    room = tmp_path / "room.yaml"
    room.write_text(ROOM_HEADER.replace("{name: lobby}", "{name: lobby, namespace: shows}") + "spec: {}\n")
    objects = render(room, GATEWAY)
    rtmp = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "lobby-rtmp")
    assert rtmp["spec"]["type"] == "ClusterIP"
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "lobby-media")
    rtmp_rule = next(r for r in policy["spec"]["ingress"] if r["ports"] == [{"port": 1935, "protocol": "TCP"}])
    assert rtmp_rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "roomcast-system"}},
         "podSelector": {"matchLabels": {"app.kubernetes.io/component": "ingest-gateway",
                                         "app.kubernetes.io/instance": "roomcast",
                                         "app.kubernetes.io/name": "roomcast"}}},
        {"podSelector": {}},
    ]
    # expose: service keeps the platform's exposure and RTMP from anywhere.
    room.write_text(ROOM_HEADER + "spec: {ingest: {expose: service}}\n")
    objects = render(room, GATEWAY)
    rtmp = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "lobby-rtmp")
    assert rtmp["spec"]["type"] == "LoadBalancer"


@pytest.mark.parametrize("url", ["https://ingest.example.com/live", "rtmps://ingest.example.com",
                                 "rtmps://u:p@ingest.example.com/live", "rtmps://ingest.example.com/live?k=1",
                                 "rtmps://ingest.example.com:0/live", "rtmps://INGEST/live"])
def test_render_refuses_a_hostile_gateway_url_naming_the_flag(tmp_path: Path, url: str):
    room = tmp_path / "room.yaml"
    room.write_text(ROOM_HEADER + "spec: {}\n")
    stderr = render_error(room, ["--ingest-gateway-url", url])
    assert "ROOMCAST_INGEST_GATEWAY_URL" in stderr, stderr


def test_render_refuses_a_room_that_asks_for_a_gateway_the_platform_does_not_run(tmp_path: Path):
    room = tmp_path / "room.yaml"
    room.write_text(ROOM_HEADER + "spec: {ingest: {expose: gateway}}\n")
    stderr = render_error(room)
    assert "no ingest gateway" in stderr and "expose: service" in stderr, stderr
    for bad in ["Gateway", "loadbalancer", "''"]:
        room.write_text(ROOM_HEADER + f"spec: {{ingest: {{expose: {bad}}}}}\n")
        assert "expected `gateway` or `service`" in render_error(room, GATEWAY)


def test_the_chart_gateway_and_the_rooms_the_operator_builds_admit_each_other():
    """The two halves of the gateway's RTMP path are written in two places: the chart's gateway
    NetworkPolicy (egress to media pods) and the operator's room policy (ingress from the
    gateway's pods). Each must select what the other side really runs."""
    from helm_python.chart import Chart

    values = {"ingestGateway": {"enabled": True, "host": "ingest.example.com", "tls": {"secretName": "tls"}}}
    with Chart.load(REPO / "charts" / "roomcast") as chart:
        manifests = chart.render(values=values, name="roomcast", namespace="roomcast-system")
    released = [d for path, text in manifests.items() if path.endswith(".yaml") for d in yaml.safe_load_all(text) if d]
    gateway_policy = next(o for o in released if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "roomcast-ingest")
    gateway_pods = next(o for o in released if o["kind"] == "Deployment" and o["metadata"]["name"] == "roomcast-ingest")
    gateway_labels = gateway_pods["spec"]["template"]["metadata"]["labels"]
    env = {e["name"]: e.get("value") for o in released if o["kind"] == "Deployment"
           and o["metadata"]["name"] == "roomcast-operator" for e in o["spec"]["template"]["spec"]["containers"][0]["env"]}

    room = render(REPO / "charts" / "roomcast" / "examples" / "room.yaml",
                  ["--ingest-gateway-url", env["ROOMCAST_INGEST_GATEWAY_URL"],
                   "--ingest-gateway-pod-labels", env["ROOMCAST_INGEST_GATEWAY_POD_LABELS"]])
    media = next(o for o in room if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-media"))
    media_labels = media["spec"]["template"]["metadata"]["labels"]
    (container,) = [c for c in media["spec"]["template"]["spec"]["containers"] if any(p["name"] == "rtmp" for p in c["ports"])]
    rtmp_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "rtmp")

    # The gateway may reach the media pod's RTMP port...
    (to_media,) = [r for r in gateway_policy["spec"]["egress"] if any("podSelector" in p for p in r["to"])
                   and r["to"][0]["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "media"]
    assert to_media["to"][0]["podSelector"]["matchLabels"].items() <= media_labels.items()
    assert to_media["ports"] == [{"protocol": "TCP", "port": rtmp_port}]
    # ...and the room's media policy admits the gateway's pods there.
    room_policy = next(o for o in room if o["kind"] == "NetworkPolicy" and o["metadata"]["name"].endswith("-media"))
    rtmp_rule = next(r for r in room_policy["spec"]["ingress"] if {"protocol": "TCP", "port": rtmp_port} in r["ports"])
    assert any(peer.get("podSelector", {}).get("matchLabels", {}).items() <= gateway_labels.items()
               and "podSelector" in peer for peer in rtmp_rule["from"]), rtmp_rule

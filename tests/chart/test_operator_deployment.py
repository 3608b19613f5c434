"""The operator Deployment: image and command, configuration handed over as environment
variables, leader election, probes, the metrics Service, labels, and the restricted Pod
Security Standard."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import (
    NAMESPACE,
    RELEASE,
    SCENARIOS,
    by_kind,
    component,
    env_of,
    one,
    operator_container,
    render_notes,
    render_objects,
)

# Every variable the operator reads (its clap flags' env fallbacks).
OPERATOR_ENV = {
    "ROOMCAST_INGEST_GATEWAY_URL",
    "ROOMCAST_INGEST_GATEWAY_ROUTES_CONFIGMAP",
    "ROOMCAST_INGEST_GATEWAY_ROUTING_KEY_SECRET",
    "ROOMCAST_INGEST_GATEWAY_POD_LABELS",
    "WATCH_NAMESPACE",
    "POD_NAMESPACE",
    "POD_NAME",
    "ROOMCAST_MEDIA_IMAGE",
    "ROOMCAST_CHAT_IMAGE",
    "ROOMCAST_IMAGE_PULL_POLICY",
    "ROOMCAST_INGRESS_CLASS",
    "ROOMCAST_PLAYBACK_HOST",
    "ROOMCAST_PLAYBACK_SCHEME",
    "ROOMCAST_CLUSTER_DOMAIN",
    "ROOMCAST_INGEST_SERVICE_TYPE",
    "ROOMCAST_INGEST_EXTERNAL_HOST",
    "ROOMCAST_S3_BUCKET",
    "ROOMCAST_S3_PREFIX",
    "ROOMCAST_S3_REGION",
    "ROOMCAST_S3_ENDPOINT",
    "ROOMCAST_S3_FORCE_PATH_STYLE",
    "ROOMCAST_S3_ALLOW_HTTP_ENDPOINT",
    "ROOMCAST_S3_CREDENTIALS_SECRET",
    "ROOMCAST_MONGODB_SECRET",
    "ROOMCAST_REDIS_SECRET",
    "ROOMCAST_SHARE_DEFAULT_CREDENTIALS",
    "ROOMCAST_IMAGE_PULL_SECRETS",
    "ROOMCAST_MEDIA_RESOURCES",
    "ROOMCAST_CHAT_RESOURCES",
    "ROOMCAST_CHAT_TRUSTED_PROXIES",
    "ROOMCAST_LEADER_ELECTION",
    "ROOMCAST_LOG_FORMAT",
    "RUST_LOG",
    "ROOMCAST_HTTP_ADDR",
    "ROOMCAST_LEASE_NAME",
    "ROOMCAST_S3_ALLOWED_ENDPOINTS",
    "ROOMCAST_TENANT_NAMESPACE_SELECTOR",
    "ROOMCAST_INGRESS_NAMESPACE_SELECTOR",
    "ROOMCAST_MONITORING_NAMESPACE_SELECTOR",
    *(f"ROOMCAST_EGRESS_{d}_{p}" for d in ("API_SERVER", "S3", "MONGODB", "REDIS") for p in ("CIDRS", "PORTS")),
}
# Set whatever the values say; the rest are omitted when their value is empty.
ALWAYS_SET = {
    "WATCH_NAMESPACE",
    "POD_NAMESPACE",
    "POD_NAME",
    "ROOMCAST_MEDIA_IMAGE",
    "ROOMCAST_CHAT_IMAGE",
    "ROOMCAST_IMAGE_PULL_POLICY",
    "ROOMCAST_PLAYBACK_SCHEME",
    "ROOMCAST_CLUSTER_DOMAIN",
    "ROOMCAST_INGEST_SERVICE_TYPE",
    "ROOMCAST_S3_FORCE_PATH_STYLE",
    "ROOMCAST_S3_ALLOW_HTTP_ENDPOINT",
    "ROOMCAST_SHARE_DEFAULT_CREDENTIALS",
    "ROOMCAST_MEDIA_RESOURCES",
    "ROOMCAST_CHAT_RESOURCES",
    "ROOMCAST_CHAT_TRUSTED_PROXIES",
    "ROOMCAST_LEADER_ELECTION",
    "ROOMCAST_LOG_FORMAT",
    "RUST_LOG",
    "ROOMCAST_HTTP_ADDR",
    "ROOMCAST_LEASE_NAME",
    "ROOMCAST_TENANT_NAMESPACE_SELECTOR",
    "ROOMCAST_INGRESS_NAMESPACE_SELECTOR",
    "ROOMCAST_MONITORING_NAMESPACE_SELECTOR",
    *(f"ROOMCAST_EGRESS_{d}_PORTS" for d in ("API_SERVER", "S3", "MONGODB", "REDIS")),
}

STANDARD_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
}


def value(env: dict[str, dict[str, Any]], name: str) -> str:
    return env[name]["value"]


def pod_spec(objects) -> dict[str, Any]:
    return one(component(objects, "operator"), "Deployment")["spec"]["template"]["spec"]


def test_default_image_command_and_args(chart) -> None:
    container = operator_container(render_objects(chart))
    app_version = chart.metadata["appVersion"]
    assert container["image"] == f"ghcr.io/roomcast/roomcast:{app_version}"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == ["roomcast-operator"]
    assert container["args"] == ["run"]


def test_chart_metadata(chart) -> None:
    meta = chart.metadata
    assert (meta["apiVersion"], meta["name"], meta["version"], meta["appVersion"]) == (
        "v2",
        "roomcast",
        "0.1.0",
        "0.1.0",
    )


def test_default_env_names_the_operator_config(chart) -> None:
    env = env_of(render_objects(chart))
    assert set(env) == ALWAYS_SET
    image = f"ghcr.io/roomcast/roomcast:{chart.metadata['appVersion']}"
    assert value(env, "ROOMCAST_MEDIA_IMAGE") == image
    assert value(env, "ROOMCAST_CHAT_IMAGE") == image
    assert value(env, "ROOMCAST_IMAGE_PULL_POLICY") == "IfNotPresent"
    assert value(env, "WATCH_NAMESPACE") == ""
    assert value(env, "ROOMCAST_HTTP_ADDR") == "0.0.0.0:8080"
    assert value(env, "ROOMCAST_LEADER_ELECTION") == "false"
    assert value(env, "ROOMCAST_LOG_FORMAT") == "json"
    assert value(env, "RUST_LOG") == "info"
    assert value(env, "ROOMCAST_PLAYBACK_SCHEME") == "https"
    assert value(env, "ROOMCAST_CLUSTER_DOMAIN") == "cluster.local"
    assert value(env, "ROOMCAST_INGEST_SERVICE_TYPE") == "LoadBalancer"
    assert value(env, "ROOMCAST_S3_FORCE_PATH_STYLE") == "false"
    # The operator's own defaults, spelled out so `helm get values` shows the truth.
    assert value(env, "ROOMCAST_TENANT_NAMESPACE_SELECTOR") == "roomcast.dev/tenant=enabled"
    assert value(env, "ROOMCAST_INGRESS_NAMESPACE_SELECTOR") == "kubernetes.io/metadata.name=ingress-nginx"
    assert value(env, "ROOMCAST_MONITORING_NAMESPACE_SELECTOR") == "kubernetes.io/metadata.name=monitoring"
    assert value(env, "ROOMCAST_EGRESS_API_SERVER_PORTS") == "443,6443"
    assert value(env, "ROOMCAST_EGRESS_S3_PORTS") == "443"
    assert value(env, "ROOMCAST_EGRESS_MONGODB_PORTS") == "27017"
    assert value(env, "ROOMCAST_EGRESS_REDIS_PORTS") == "6379"
    assert value(env, "ROOMCAST_LEASE_NAME") == f"{RELEASE}-operator"
    # Platform credentials stay in the release namespace unless the platform opts in.
    assert value(env, "ROOMCAST_SHARE_DEFAULT_CREDENTIALS") == "false"
    defaults = chart.values["workers"]
    assert json.loads(value(env, "ROOMCAST_MEDIA_RESOURCES")) == defaults["media"]["resources"]
    assert json.loads(value(env, "ROOMCAST_CHAT_RESOURCES")) == defaults["chat"]["resources"]
    for name in ("POD_NAME", "POD_NAMESPACE"):
        assert "value" not in env[name]
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_full_values_reach_the_operator_as_env(chart, full_values) -> None:
    env = env_of(render_objects(chart, full_values))
    assert set(env) == OPERATOR_ENV
    v = full_values
    s3 = v["recording"]["s3"]
    expected = {
        "WATCH_NAMESPACE": v["watchNamespace"],
        "ROOMCAST_MEDIA_IMAGE": v["workers"]["media"]["image"],
        "ROOMCAST_CHAT_IMAGE": v["workers"]["chat"]["image"],
        "ROOMCAST_IMAGE_PULL_POLICY": v["image"]["pullPolicy"],
        "ROOMCAST_INGRESS_CLASS": v["ingress"]["className"],
        "ROOMCAST_PLAYBACK_HOST": v["playback"]["host"],
        "ROOMCAST_PLAYBACK_SCHEME": v["playback"]["scheme"],
        "ROOMCAST_CLUSTER_DOMAIN": v["clusterDomain"],
        "ROOMCAST_INGEST_SERVICE_TYPE": v["ingest"]["serviceType"],
        "ROOMCAST_INGEST_EXTERNAL_HOST": v["ingest"]["externalHost"],
        "ROOMCAST_S3_BUCKET": s3["bucket"],
        "ROOMCAST_S3_PREFIX": s3["prefix"],
        "ROOMCAST_S3_REGION": s3["region"],
        "ROOMCAST_S3_ENDPOINT": s3["endpoint"],
        "ROOMCAST_S3_FORCE_PATH_STYLE": "true",
        "ROOMCAST_S3_ALLOW_HTTP_ENDPOINT": "true",
        "ROOMCAST_S3_CREDENTIALS_SECRET": s3["credentialsSecret"],
        "ROOMCAST_MONGODB_SECRET": v["mongodb"]["uriSecret"],
        "ROOMCAST_REDIS_SECRET": v["redis"]["urlSecret"],
        "ROOMCAST_SHARE_DEFAULT_CREDENTIALS": "true",
        "ROOMCAST_IMAGE_PULL_SECRETS": ",".join(s["name"] for s in v["imagePullSecrets"]),
        "ROOMCAST_CHAT_TRUSTED_PROXIES": v["workers"]["chat"]["trustedProxies"],
        "ROOMCAST_LEADER_ELECTION": "true",
        "ROOMCAST_LOG_FORMAT": v["logFormat"],
        "RUST_LOG": v["logLevel"],
        "ROOMCAST_HTTP_ADDR": "0.0.0.0:8080",
        "ROOMCAST_LEASE_NAME": f"{v['fullnameOverride']}-operator",
        "ROOMCAST_S3_ALLOWED_ENDPOINTS": ",".join(s3["allowedEndpoints"]),
        "ROOMCAST_TENANT_NAMESPACE_SELECTOR": "roomcast.dev/tenant=enabled,team=streaming",
        "ROOMCAST_INGRESS_NAMESPACE_SELECTOR": "kubernetes.io/metadata.name=traefik",
        "ROOMCAST_MONITORING_NAMESPACE_SELECTOR": "",
        # The gateway's Service port is not 443, so the URL carries it.
        "ROOMCAST_INGEST_GATEWAY_URL": f"rtmps://{v['ingestGateway']['host']}:8443/live",
        "ROOMCAST_INGEST_GATEWAY_ROUTES_CONFIGMAP": f"{v['fullnameOverride']}-ingest-routes",
        "ROOMCAST_INGEST_GATEWAY_ROUTING_KEY_SECRET": f"{v['fullnameOverride']}-ingest-routing-key",
        "ROOMCAST_INGEST_GATEWAY_POD_LABELS": "app.kubernetes.io/component=ingest-gateway,"
                                              "app.kubernetes.io/instance=roomcast,app.kubernetes.io/name=roomcast",
    }
    for destination, env_name in (("apiServer", "API_SERVER"), ("s3", "S3"), ("mongodb", "MONGODB"), ("redis", "REDIS")):
        given = v["networkPolicy"]["egress"][destination]
        expected[f"ROOMCAST_EGRESS_{env_name}_CIDRS"] = ",".join(given["cidrs"])
        expected[f"ROOMCAST_EGRESS_{env_name}_PORTS"] = ",".join(map(str, given["ports"]))
    assert {name: value(env, name) for name in expected} == expected
    assert json.loads(value(env, "ROOMCAST_MEDIA_RESOURCES")) == v["workers"]["media"]["resources"]
    assert json.loads(value(env, "ROOMCAST_CHAT_RESOURCES")) == v["workers"]["chat"]["resources"]


@pytest.mark.parametrize("values", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_env_never_carries_an_empty_optional_value(chart, values) -> None:
    env = env_of(render_objects(chart, values))
    assert set(env) <= OPERATOR_ENV
    empty = {n for n, e in env.items() if "value" in e and e["value"] == ""}
    # An empty WATCH_NAMESPACE is meaningful (every namespace), and so are empty trusted
    # proxies (chat reads no forwarded-for header) and empty namespace selectors (every
    # namespace).
    assert empty <= {
        "WATCH_NAMESPACE",
        "ROOMCAST_CHAT_TRUSTED_PROXIES",
        "ROOMCAST_TENANT_NAMESPACE_SELECTOR",
        "ROOMCAST_INGRESS_NAMESPACE_SELECTOR",
        "ROOMCAST_MONITORING_NAMESPACE_SELECTOR",
    }


def test_unset_worker_resources_are_omitted_not_sent_as_empty_json(chart) -> None:
    # `null` is how Helm users delete a default map (`{}` would merge with it).
    env = env_of(render_objects(chart, {"workers": {"media": {"resources": None}, "chat": {"resources": None}}}))
    assert "ROOMCAST_MEDIA_RESOURCES" not in env
    assert "ROOMCAST_CHAT_RESOURCES" not in env


def test_image_tag_and_pull_secrets(chart) -> None:
    objects = render_objects(
        chart,
        {"image": {"repository": "localhost:5000/roomcast", "tag": "dev"}, "imagePullSecrets": [{"name": "pull"}]},
    )
    container = operator_container(objects)
    assert container["image"] == "localhost:5000/roomcast:dev"
    env = env_of(objects)
    assert value(env, "ROOMCAST_MEDIA_IMAGE") == value(env, "ROOMCAST_CHAT_IMAGE") == "localhost:5000/roomcast:dev"
    assert pod_spec(objects)["imagePullSecrets"] == [{"name": "pull"}]
    # The workers the operator creates get the same pull Secrets.
    assert value(env, "ROOMCAST_IMAGE_PULL_SECRETS") == "pull"
    two = env_of(render_objects(chart, {"imagePullSecrets": [{"name": "a"}, {"name": "b"}]}))
    assert value(two, "ROOMCAST_IMAGE_PULL_SECRETS") == "a,b"


@pytest.mark.parametrize("values", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_no_secret_is_a_plain_env_value(chart, values) -> None:
    # Credentials reach the operator as Secret names; their content is read from the API.
    env = env_of(render_objects(chart, values))
    for name, entry in env.items():
        # Endpoints are addresses, not credentials (a URL with userinfo is refused by the operator).
        endpoints = ("ROOMCAST_S3_ENDPOINT", "ROOMCAST_S3_ALLOWED_ENDPOINTS", "ROOMCAST_INGEST_GATEWAY_URL")
        assert "://" not in entry.get("value", "") or name in endpoints, (name, entry)
        assert "@" not in entry.get("value", ""), (name, entry)


def test_one_replica_without_leader_election_never_overlaps(chart) -> None:
    objects = render_objects(chart)
    deployment = one(component(objects, "operator"), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert value(env_of(objects), "ROOMCAST_LEADER_ELECTION") == "false"
    assert "--leader-election" not in operator_container(objects)["args"]


@pytest.mark.parametrize(
    ("values", "replicas"),
    [({"replicaCount": 2}, 2), ({"replicaCount": 3, "leaderElection": {"enabled": False}}, 3), ({"leaderElection": {"enabled": True}}, 1)],
    ids=["two-replicas", "three-replicas-even-if-disabled", "enabled-with-one-replica"],
)
def test_leader_election_is_on_with_more_than_one_replica(chart, values, replicas) -> None:
    objects = render_objects(chart, values)
    deployment = one(component(objects, "operator"), "Deployment")
    assert deployment["spec"]["replicas"] == replicas
    assert value(env_of(objects), "ROOMCAST_LEADER_ELECTION") == "true"
    assert operator_container(objects)["args"] == ["run", "--leader-election"]
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_probes_and_metrics_share_the_http_port(chart) -> None:
    objects = render_objects(chart)
    container = operator_container(objects)
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    service = one(component(objects, "operator"), "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
    pod_labels = one(component(objects, "operator"), "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_resources_and_scheduling_come_from_values(chart, full_values) -> None:
    objects = render_objects(chart, full_values)
    spec = pod_spec(objects)
    assert operator_container(objects)["resources"] == full_values["resources"]
    assert spec["nodeSelector"] == full_values["nodeSelector"]
    assert spec["tolerations"] == full_values["tolerations"]
    assert spec["affinity"] == full_values["affinity"]
    annotations = one(component(objects, "operator"), "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations == full_values["podAnnotations"]
    assert spec["imagePullSecrets"] == full_values["imagePullSecrets"]
    assert spec["serviceAccountName"] == full_values["serviceAccount"]["name"]
    sa = one(component(objects, "operator"), "ServiceAccount")
    assert sa["metadata"]["annotations"] == full_values["serviceAccount"]["annotations"]
    assert operator_container(objects)["image"] == (
        f"{full_values['image']['repository']}:{full_values['image']['tag']}"
    )


@pytest.mark.parametrize("values", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_pod_meets_the_restricted_pod_security_standard(chart, values) -> None:
    """The checks of the `restricted` Pod Security Standard (Kubernetes 1.33), plus a
    read-only root filesystem and a fixed non-root uid, which roomcast asks for on top. Every
    Deployment: the operator's and the ingest gateway's."""
    for deployment in by_kind(render_objects(chart, values), "Deployment"):
        restricted_pod(deployment["spec"]["template"]["spec"])


def restricted_pod(spec: dict[str, Any]) -> None:
    pod_sc = spec.get("securityContext", {})
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        assert spec.get(field) in (None, False), field
    allowed_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        assert kinds <= allowed_volumes, f"volume {volume['name']} uses {kinds}"
    assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    assert pod_sc.get("runAsNonRoot") is True
    assert pod_sc.get("runAsUser") == 10001
    containers = spec["containers"] + spec.get("initContainers", []) + spec.get("ephemeralContainers", [])
    for container in containers:
        sc = container["securityContext"]
        assert sc.get("privileged") in (None, False)
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert set(sc["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True
        assert sc.get("runAsUser", pod_sc.get("runAsUser")) == 10001
        assert sc.get("seccompProfile", pod_sc.get("seccompProfile"))["type"] == "RuntimeDefault"
        assert sc["readOnlyRootFilesystem"] is True
        assert "procMount" not in sc or sc["procMount"] == "Default"
        for port in container.get("ports", []):
            assert "hostPort" not in port


@pytest.mark.parametrize("values", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_every_object_carries_the_standard_labels(chart, values) -> None:
    objects = render_objects(chart, values)
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert STANDARD_LABELS <= set(labels), f"{obj['kind']} misses {STANDARD_LABELS - set(labels)}"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/component"] in ("operator", "ingest-gateway")
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == chart.metadata["appVersion"]
        assert labels["helm.sh/chart"] == f"roomcast-{chart.metadata['version']}"
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] in (NAMESPACE, values.get("watchNamespace"))
    for deployment in by_kind(objects, "Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        assert "app.kubernetes.io/version" not in selector, "a selector must survive upgrades"


def test_notes_say_which_namespaces_are_served_and_how_to_opt_in(chart) -> None:
    notes = render_notes(chart)
    assert "namespaces labelled roomcast.dev/tenant=enabled" in notes
    assert "kubectl label namespace default roomcast.dev/tenant=enabled" in notes
    one_namespace = render_notes(chart, {"watchNamespace": "shows"})
    assert "namespace shows only" in one_namespace
    assert "kubectl label" not in one_namespace
    assert "every namespace" in render_notes(chart, {"tenantNamespaceSelector": None})


def test_notes_tell_how_to_create_a_room_and_read_it(chart) -> None:
    notes = render_notes(chart)
    assert "kubectl apply" in notes
    assert "kind: StreamRoom" in notes
    assert "apiVersion: roomcast.dev/v1alpha1" in notes
    assert "examples/room.yaml" in notes
    assert "get rooms" in notes
    assert f"-n {NAMESPACE} rollout status deployment/{one(render_objects(chart), 'Deployment')['metadata']['name']}" in notes


def test_notes_follow_the_watched_namespace(chart) -> None:
    notes = render_notes(chart, {"watchNamespace": "shows", "playback": {"host": "live.example.org"}})
    assert "namespace: shows" in notes
    assert "kubectl -n shows get rooms" in notes
    assert "host: live.example.org" in notes
    assert "playback.host is empty" not in notes

"""The shared ingest gateway (`ingestGateway.*`): off by default; when on, it runs
`roomcast-ingest` exactly as its command line expects, behind one Service, with a PDB, a Role
that reads only the routes ConfigMap, a certificate from a Secret or cert-manager, and the
operator wired to it. Values that cannot work fail the install with the value to set."""

from __future__ import annotations

from typing import Any

import pytest
from helm_python.errors import HelmValuesError

from conftest import NAMESPACE, RELEASE, by_kind, component, env_of, one, render_notes, render_objects

ON: dict[str, Any] = {"enabled": True, "host": "ingest.example.com", "tls": {"secretName": "ingest-tls"}}


def gateway(chart, values: dict[str, Any] | None = None, **extra: Any) -> list[dict[str, Any]]:
    """Render with the gateway on (a host and a certificate Secret), plus `values` and `extra`."""
    return render_objects(chart, {"ingestGateway": {**ON, **(values or {})}, **extra})


def pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(component(objects, "ingest-gateway"), "Deployment")["spec"]["template"]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (only,) = pod(objects)["spec"]["containers"]
    return only


def test_off_by_default_and_rooms_keep_their_own_services(chart) -> None:
    objects = render_objects(chart)
    assert component(objects, "ingest-gateway") == []
    assert not any(name.startswith("ROOMCAST_INGEST_GATEWAY") for name in env_of(objects))


def test_the_gateway_runs_with_the_agreed_command_line(chart) -> None:
    objects = gateway(chart, {"drainSeconds": 45})
    c = container(objects)
    assert c["command"] == ["roomcast-ingest"]
    assert c["args"] == [
        "--rtmp-listen=0.0.0.0:1935",
        "--rtmps-listen=0.0.0.0:1936",
        "--tls-cert-file=/etc/roomcast/tls/tls.crt",
        "--tls-key-file=/etc/roomcast/tls/tls.key",
        "--routing-key-file=/etc/roomcast/routing/key",
        f"--routes-configmap={RELEASE}-ingest-routes",
        "--ops-listen=0.0.0.0:8080",
        "--drain-seconds=45",
        "--log-format=json",
    ]
    assert {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} in c["env"]
    assert pod(objects)["spec"]["terminationGracePeriodSeconds"] > 45
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"rtmp": 1935, "rtmps": 1936, "http": 8080}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert "--proxy-protocol" in container(gateway(chart, {"proxyProtocol": True}))["args"]


def test_it_mounts_only_its_certificate_and_the_routing_key(chart) -> None:
    spec = pod(gateway(chart))["spec"]
    secrets = {v["name"]: v["secret"] for v in spec["volumes"] if "secret" in v}
    assert secrets == {
        "tls": {"secretName": "ingest-tls"},
        "routing-key": {"secretName": f"{RELEASE}-ingest-routing-key", "items": [{"key": "key", "path": "key"}]},
    }
    mounts = {m["name"]: m for m in container(gateway(chart))["volumeMounts"]}
    assert mounts["tls"]["mountPath"] == "/etc/roomcast/tls" and mounts["tls"]["readOnly"] is True
    assert "subPath" not in mounts["tls"], "a subPath mount never sees a renewed certificate"
    assert mounts["routing-key"]["mountPath"] == "/etc/roomcast/routing"
    assert spec["serviceAccountName"] == f"{RELEASE}-ingest"


def test_one_service_for_every_room_with_rtmp_and_rtmps(chart) -> None:
    objects = gateway(chart, {"service": {"type": "LoadBalancer", "annotations": {"a": "b"},
                                   "loadBalancerSourceRanges": ["203.0.113.0/24"]}})
    service = one(component(objects, "ingest-gateway"), "Service")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["metadata"]["annotations"] == {"a": "b"}
    assert service["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert service["spec"]["ports"] == [
        {"name": "rtmp", "port": 1935, "targetPort": "rtmp", "protocol": "TCP"},
        {"name": "rtmps", "port": 443, "targetPort": "rtmps", "protocol": "TCP"},
    ]
    assert service["spec"]["selector"].items() <= pod(objects)["metadata"]["labels"].items()
    node_port = one(component(gateway(chart, {"service": {"type": "NodePort",
                                                    "loadBalancerSourceRanges": ["203.0.113.0/24"]}}),
                              "ingest-gateway"), "Service")
    assert node_port["spec"]["type"] == "NodePort"
    assert "loadBalancerSourceRanges" not in node_port["spec"]


def test_the_service_keeps_streamers_addresses_where_the_type_allows_it(chart) -> None:
    """Per-address limits must see streamers, not nodes: `Local` by default on LoadBalancer and
    NodePort, `Cluster` when asked, and nothing on ClusterIP, which the API server would refuse."""
    def service(values):
        return one(component(gateway(chart, {"service": values}), "ingest-gateway"), "Service")["spec"]
    assert service({"type": "LoadBalancer"})["externalTrafficPolicy"] == "Local"
    assert service({"type": "NodePort"})["externalTrafficPolicy"] == "Local"
    assert service({"type": "LoadBalancer", "externalTrafficPolicy": "Cluster"})["externalTrafficPolicy"] == "Cluster"
    assert "externalTrafficPolicy" not in service({"type": "ClusterIP"})
    assert "externalTrafficPolicy" not in service({"type": "ClusterIP", "externalTrafficPolicy": "Local"})


def test_the_operator_is_told_the_cluster_domain(chart) -> None:
    default = {name: e.get("value") for name, e in env_of(gateway(chart)).items()}
    assert default["ROOMCAST_CLUSTER_DOMAIN"] == "cluster.local"
    custom = {name: e.get("value") for name, e in env_of(render_objects(chart, {"clusterDomain": "corp.example"})).items()}
    assert custom["ROOMCAST_CLUSTER_DOMAIN"] == "corp.example"


@pytest.mark.parametrize("domain", ["", "cluster.local.", ".local", "Cluster.Local", "evil svc", "a..b",
                                    "cluster.local/x", "x" * 122])
def test_hostile_cluster_domains_are_refused_by_the_schema(chart, domain) -> None:
    with pytest.raises(HelmValuesError) as error:
        render_objects(chart, {"clusterDomain": domain})
    assert "/clusterDomain" in str(error.value)


def test_more_than_one_replica_gets_a_pdb_and_a_spread(chart) -> None:
    objects = gateway(chart, {"replicas": 3})
    pdb = one(component(objects, "ingest-gateway"), "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod(objects)["metadata"]["labels"].items()
    (spread,) = pod(objects)["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert by_kind(gateway(chart, {"replicas": 1}), "PodDisruptionBudget") == []


def test_the_operator_gets_the_gateway_url_and_the_names_it_shares_with_the_gateway(chart) -> None:
    objects = gateway(chart)
    env = {name: e.get("value") for name, e in env_of(objects).items()}
    assert env["ROOMCAST_INGEST_GATEWAY_URL"] == "rtmps://ingest.example.com/live"
    assert env["ROOMCAST_INGEST_GATEWAY_ROUTES_CONFIGMAP"] == f"{RELEASE}-ingest-routes"
    assert env["ROOMCAST_INGEST_GATEWAY_ROUTING_KEY_SECRET"] == f"{RELEASE}-ingest-routing-key"
    # The operator admits RTMP into rooms from exactly the pods the chart runs.
    wanted = dict(pair.split("=") for pair in env["ROOMCAST_INGEST_GATEWAY_POD_LABELS"].split(","))
    assert wanted.items() <= pod(objects)["metadata"]["labels"].items()
    assert wanted["app.kubernetes.io/component"] == "ingest-gateway"
    odd_port = {name: e.get("value") for name, e in env_of(gateway(chart, {"service": {"ports": {"rtmps": 8443}}})).items()}
    assert odd_port["ROOMCAST_INGEST_GATEWAY_URL"] == "rtmps://ingest.example.com:8443/live"


def test_cert_manager_issues_the_certificate_for_the_host(chart) -> None:
    objects = gateway(chart, {"tls": {"secretName": "", "certManager": {"issuerRef": {"name": "letsencrypt",
                                                                                 "kind": "ClusterIssuer"}}}})
    certificate = one(objects, "Certificate")
    assert certificate["spec"] == {
        "secretName": f"{RELEASE}-ingest-tls",
        "dnsNames": ["ingest.example.com"],
        "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"},
    }
    assert certificate["metadata"]["namespace"] == NAMESPACE
    tls = next(v for v in pod(objects)["spec"]["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == certificate["spec"]["secretName"]
    assert by_kind(gateway(chart), "Certificate") == [], "a Secret of one's own needs no Certificate"


def test_the_pod_monitor_scrapes_the_gateway_pods(chart) -> None:
    objects = gateway(chart, metrics={"serviceMonitor": {"enabled": True}})
    monitor = one(objects, "PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod(objects)["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in {p["name"] for p in container(objects)["ports"]}
    assert endpoint["path"] == "/metrics"
    public = one(component(objects, "ingest-gateway"), "Service")
    assert 8080 not in {p["port"] for p in public["spec"]["ports"]}, "metrics stay off the public address"


TEMPLATE_FAILURES = {
    "no host": ({"enabled": True, "tls": {"secretName": "ingest-tls"}}, "ingestGateway.host"),
    "no certificate": ({"enabled": True, "host": "ingest.example.com"}, "ingestGateway.tls.secretName"),
    "empty issuer": ({"enabled": True, "host": "ingest.example.com",
                      "tls": {"certManager": {"issuerRef": {"kind": "ClusterIssuer"}}}}, "certManager.issuerRef"),
}


@pytest.mark.parametrize(("values", "expected"), TEMPLATE_FAILURES.values(), ids=TEMPLATE_FAILURES.keys())
def test_a_gateway_that_cannot_serve_rtmps_fails_the_install_naming_the_value(chart, values, expected) -> None:
    with pytest.raises(Exception) as error:
        render_objects(chart, {"ingestGateway": values})
    assert expected in str(error.value)


SCHEMA_FAILURES = {
    "service type": ({"service": {"type": "ExternalName"}}, "/ingestGateway/service/type"),
    "host with a scheme": ({"host": "rtmps://ingest.example.com"}, "/ingestGateway/host"),
    "host upper case": ({"host": "Ingest.Example.com"}, "/ingestGateway/host"),
    "no replicas": ({"replicas": 0}, "/ingestGateway/replicas"),
    "port zero": ({"service": {"ports": {"rtmps": 0}}}, "/ingestGateway/service/ports/rtmps"),
    "port too high": ({"service": {"ports": {"rtmp": 70000}}}, "/ingestGateway/service/ports/rtmp"),
    "source range not a CIDR": ({"service": {"loadBalancerSourceRanges": ["everyone"]}},
                                "/ingestGateway/service/loadBalancerSourceRanges/0"),
    "unknown issuer key": ({"tls": {"certManager": {"issuerRef": {"name": "x", "namespace": "y"}}}},
                           "/ingestGateway/tls/certManager/issuerRef"),
    "issuer name with a path": ({"tls": {"certManager": {"issuerRef": {"name": "../x"}}}},
                                "/ingestGateway/tls/certManager/issuerRef/name"),
    "empty issuer group": ({"tls": {"certManager": {"issuerRef": {"name": "x", "group": ""}}}},
                           "/ingestGateway/tls/certManager/issuerRef/group"),
    "issuer kind": ({"tls": {"certManager": {"issuerRef": {"name": "x", "kind": "Vault"}}}},
                    "/ingestGateway/tls/certManager/issuerRef/kind"),
    "proxy protocol as text": ({"proxyProtocol": "v2"}, "/ingestGateway/proxyProtocol"),
    "traffic policy typo": ({"service": {"externalTrafficPolicy": "local"}},
                            "/ingestGateway/service/externalTrafficPolicy"),
    "traffic policy off": ({"service": {"externalTrafficPolicy": ""}}, "/ingestGateway/service/externalTrafficPolicy"),
    "negative drain": ({"drainSeconds": -1}, "/ingestGateway/drainSeconds"),
    "secret name with a path": ({"tls": {"secretName": "../kube-system/x"}}, "/ingestGateway/tls/secretName"),
    "unknown key": ({"replica": 2}, "'replica'"),
}


@pytest.mark.parametrize(("values", "expected"), SCHEMA_FAILURES.values(), ids=SCHEMA_FAILURES.keys())
def test_hostile_gateway_values_are_refused_by_the_schema(chart, values, expected) -> None:
    with pytest.raises(HelmValuesError) as error:
        render_objects(chart, {"ingestGateway": {**ON, **values}})
    assert expected in str(error.value)


def test_notes_tell_where_streamers_publish_and_what_to_point_the_host_at(chart) -> None:
    notes = render_notes(chart, {"ingestGateway": ON})
    assert "rtmps://ingest.example.com/live" in notes
    assert f"get service {RELEASE}-ingest" in notes
    assert "ingest gateway" not in render_notes(chart).lower()

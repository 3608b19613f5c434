"""NetworkPolicies of the release's own pods (`networkPolicy.releasePods`): the operator and
the ingest gateway are closed both ways, like the rooms' pods. What they admit is derived from
the same values the rooms' policies use, so one setting (monitoring namespaces, the API
server's CIDRs, the namespaces the operator serves) narrows all of them at once."""

from __future__ import annotations

from typing import Any

import pytest
from helm_python.errors import HelmValuesError

from conftest import by_kind, component, env_of, one, render_objects

GATEWAY = {"enabled": True, "host": "ingest.example.com", "tls": {"secretName": "ingest-tls"}}
METADATA_V4 = {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16", "100.100.100.200/32"]}
METADATA_V6 = {"cidr": "::/0", "except": ["fe80::/10", "fd00:ec2::254/128"]}
DNS = {
    "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}


def policy(objects: list[dict[str, Any]], which: str) -> dict[str, Any]:
    return one(component(objects, which), "NetworkPolicy")


def pod_labels(objects: list[dict[str, Any]], which: str) -> dict[str, str]:
    return one(component(objects, which), "Deployment")["spec"]["template"]["metadata"]["labels"]


def container_ports(objects: list[dict[str, Any]], which: str) -> dict[str, int]:
    (container,) = one(component(objects, which), "Deployment")["spec"]["template"]["spec"]["containers"]
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return selector["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("which", ["operator", "ingest-gateway"])
def test_each_release_pod_is_closed_both_ways_and_selected_by_its_policy(chart, which) -> None:
    objects = render_objects(chart, {"ingestGateway": GATEWAY})
    spec = policy(objects, which)["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert selects(spec["podSelector"], pod_labels(objects, which))
    # Never both: each policy selects only its own pods.
    other = "operator" if which == "ingest-gateway" else "ingest-gateway"
    assert not selects(spec["podSelector"], pod_labels(objects, other))


def test_the_operator_is_scraped_from_monitoring_and_reaches_only_dns_and_the_api_server(chart) -> None:
    objects = render_objects(chart)
    spec = policy(objects, "operator")["spec"]
    assert spec["ingress"] == [{
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "ports": [{"protocol": "TCP", "port": container_ports(objects, "operator")["http"]}],
    }]
    assert spec["egress"] == [DNS, {
        "to": [{"ipBlock": METADATA_V4}, {"ipBlock": METADATA_V6}],
        "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}],
    }]
    assert component(objects, "ingest-gateway") == [], "no gateway policy without the gateway"


def test_the_api_server_cidrs_and_ports_narrow_the_egress(chart) -> None:
    values = {"networkPolicy": {"egress": {"apiServer": {"cidrs": ["172.18.0.2/32", "fd00::1/128"], "ports": [6443]}}}}
    (_, api_server) = policy(render_objects(chart, values), "operator")["spec"]["egress"]
    assert api_server == {"to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}, {"ipBlock": {"cidr": "fd00::1/128"}}],
                          "ports": [{"protocol": "TCP", "port": 6443}]}


def test_the_gateway_admits_streamers_from_anywhere_and_metrics_from_monitoring(chart) -> None:
    objects = render_objects(chart, {"ingestGateway": GATEWAY})
    streamers, metrics = policy(objects, "ingest-gateway")["spec"]["ingress"]
    ports = container_ports(objects, "ingest-gateway")
    assert "from" not in streamers, "RTMP and RTMPS from any address"
    assert streamers["ports"] == [{"protocol": "TCP", "port": ports["rtmp"]}, {"protocol": "TCP", "port": ports["rtmps"]}]
    assert metrics["ports"] == [{"protocol": "TCP", "port": ports["http"]}]
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


@pytest.mark.parametrize(
    "values, namespaces",
    [
        # Default: the namespaces that opted in (Helm merges a given selector into it).
        ({}, {"matchLabels": {"roomcast.dev/tenant": "enabled"}}),
        ({"tenantNamespaceSelector": {"team": "video"}}, {"matchLabels": {"roomcast.dev/tenant": "enabled", "team": "video"}}),
        ({"watchNamespace": "shows"}, {"matchLabels": {"kubernetes.io/metadata.name": "shows"}}),
        # Every namespace is served: every namespace is reached, but still only media pods.
        ({"tenantNamespaceSelector": None}, {}),
    ],
    ids=["opted-in", "custom-selector", "one-namespace", "every-namespace"],
)
def test_the_gateway_reaches_media_pods_only_where_the_operator_serves_rooms(chart, values, namespaces) -> None:
    objects = render_objects(chart, {"ingestGateway": GATEWAY, **values})
    dns, api_server, media = policy(objects, "ingest-gateway")["spec"]["egress"]
    assert dns == DNS and api_server["ports"] == [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]
    (peer,) = media["to"]
    assert peer["namespaceSelector"] == namespaces
    # The same namespaces the operator serves rooms in.
    if not values.get("watchNamespace"):
        served = env_of(objects)["ROOMCAST_TENANT_NAMESPACE_SELECTOR"]["value"]
        assert served == ",".join(f"{k}={v}" for k, v in sorted(namespaces.get("matchLabels", {}).items()))
    assert peer["podSelector"] == {"matchLabels": {"app.kubernetes.io/managed-by": "roomcast-operator",
                                                   "app.kubernetes.io/component": "media"}}
    assert media["ports"] == [{"protocol": "TCP", "port": 1935}]


def test_a_null_monitoring_selector_admits_every_namespace(chart) -> None:
    objects = render_objects(chart, {"ingestGateway": GATEWAY, "networkPolicy": {"monitoringNamespaceSelector": None}})
    for which in ("operator", "ingest-gateway"):
        metrics = policy(objects, which)["spec"]["ingress"][-1]
        assert metrics["from"] == [{"namespaceSelector": {}}]


def test_release_pods_policies_can_be_turned_off_only_explicitly(chart) -> None:
    objects = render_objects(chart, {"ingestGateway": GATEWAY, "networkPolicy": {"releasePods": False}})
    assert by_kind(objects, "NetworkPolicy") == []
    # null drops the default in Helm: the pods stay closed rather than silently open.
    objects = render_objects(chart, {"ingestGateway": GATEWAY, "networkPolicy": {"releasePods": None}})
    assert len(by_kind(objects, "NetworkPolicy")) == 2


@pytest.mark.parametrize("value", ["yes", 1, {"enabled": True}])
def test_a_release_pods_value_that_is_not_a_boolean_is_refused(chart, value) -> None:
    with pytest.raises(HelmValuesError, match="releasePods"):
        render_objects(chart, {"networkPolicy": {"releasePods": value}})

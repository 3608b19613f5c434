"""values.schema.json accepts the defaults and the full example, and refuses bad values at
install time with a message that names the offending key (Helm 4 prints it as a JSON
pointer, e.g. `at '/ingest/serviceType': value must be one of ...`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helm_python.errors import HelmValuesError

from conftest import CHART_DIR, render_objects


def test_schema_is_draft_07_and_refuses_unknown_top_level_keys(chart) -> None:
    schema = chart.schema
    assert schema == json.loads((CHART_DIR / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False


def test_defaults_and_full_example_pass_the_schema(chart, full_values) -> None:
    chart.validate_schema(chart.merge_values({}))
    chart.validate_schema(chart.merge_values(full_values))


# (values, text the error must contain: the key's path, and what is wrong where useful)
BAD_VALUES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "ingest.serviceType: Foo": (
        {"ingest": {"serviceType": "Foo"}},
        ["/ingest/serviceType", "LoadBalancer", "NodePort", "ClusterIP"],
    ),
    "replicaCount: 0": ({"replicaCount": 0}, ["/replicaCount", "minimum"]),
    "replicaCount: two": ({"replicaCount": "two"}, ["/replicaCount", "want integer"]),
    "unknown top-level key": ({"replicaCont": 2}, ["additional properties 'replicaCont'"]),
    "unknown nested key": ({"image": {"tags": "1.0"}}, ["/image", "'tags'"]),
    "logFormat: xml": ({"logFormat": "xml"}, ["/logFormat", "json", "pretty"]),
    "image.pullPolicy: Sometimes": ({"image": {"pullPolicy": "Sometimes"}}, ["/image/pullPolicy"]),
    "image.tag as a number": ({"image": {"tag": 1.0}}, ["/image/tag", "want string"]),
    "playback.host upper case": ({"playback": {"host": "Live.Example.com"}}, ["/playback/host"]),
    "playback.host with a scheme": ({"playback": {"host": "https://live.example.com"}}, ["/playback/host"]),
    "playback.scheme: ftp": ({"playback": {"scheme": "ftp"}}, ["/playback/scheme"]),
    "ingest.externalHost with a port": ({"ingest": {"externalHost": "ingest:1935"}}, ["/ingest/externalHost"]),
    "ingress.className with spaces": ({"ingress": {"className": "my class"}}, ["/ingress/className"]),
    "watchNamespace not a label": ({"watchNamespace": "Shows_1"}, ["/watchNamespace"]),
    "recording.s3.forcePathStyle: yes": (
        {"recording": {"s3": {"forcePathStyle": "yes"}}},
        ["/recording/s3/forcePathStyle", "want boolean"],
    ),
    "recording.s3.endpoint without scheme": (
        {"recording": {"s3": {"endpoint": "s3.example.com"}}},
        ["/recording/s3/endpoint"],
    ),
    "recording.s3.prefix without trailing slash": ({"recording": {"s3": {"prefix": "rooms"}}}, ["/recording/s3/prefix"]),
    "recording.s3.prefix with a leading slash": ({"recording": {"s3": {"prefix": "/rooms/"}}}, ["/recording/s3/prefix"]),
    "recording.s3.prefix with an empty segment": ({"recording": {"s3": {"prefix": "a//"}}}, ["/recording/s3/prefix"]),
    "recording.s3.prefix with a dot-dot segment": ({"recording": {"s3": {"prefix": "../x/"}}}, ["/recording/s3/prefix"]),
    "recording.s3.allowHttpEndpoint: yes": (
        {"recording": {"s3": {"allowHttpEndpoint": "yes"}}},
        ["/recording/s3/allowHttpEndpoint", "want boolean"],
    ),
    "recording.s3.bucket upper case": ({"recording": {"s3": {"bucket": "VODS"}}}, ["/recording/s3/bucket"]),
    "mongodb.uriSecret not a name": ({"mongodb": {"uriSecret": "Mongo URI"}}, ["/mongodb/uriSecret"]),
    "redis.urlSecret not a name": ({"redis": {"urlSecret": "redis://:pw@redis:6379"}}, ["/redis/urlSecret"]),
    # The URL itself (password included) no longer goes into values.
    "redis.url is gone": ({"redis": {"url": "redis://redis:6379"}}, ["/redis", "'url'"]),
    "recording.shareDefaultCredentials: yes": (
        {"recording": {"shareDefaultCredentials": "yes"}},
        ["/recording/shareDefaultCredentials", "want boolean"],
    ),
    "imagePullSecrets name with a slash": ({"imagePullSecrets": [{"name": "a/b"}]}, ["/imagePullSecrets/0/name"]),
    "workers.media.resources bad quantity": (
        {"workers": {"media": {"resources": {"requests": {"cpu": "lots"}}}}},
        ["/workers/media/resources/requests/cpu"],
    ),
    "workers.chat.resources unknown field": (
        {"workers": {"chat": {"resources": {"request": {"cpu": "1"}}}}},
        ["/workers/chat/resources", "'request'"],
    ),
    "workers.chat.image with spaces": ({"workers": {"chat": {"image": "a b"}}}, ["/workers/chat/image"]),
    "leaderElection.enabled: on": ({"leaderElection": {"enabled": "on"}}, ["/leaderElection/enabled"]),
    "tolerations not a list": ({"tolerations": {"key": "x"}}, ["/tolerations", "want array"]),
    "podAnnotations values not strings": ({"podAnnotations": {"a": 1}}, ["/podAnnotations/a"]),
    "recording.s3.allowedEndpoints with credentials": (
        {"recording": {"s3": {"allowedEndpoints": ["http://minio@10.0.0.5:9000"]}}},
        ["/recording/s3/allowedEndpoints/0"],
    ),
    "recording.s3.allowedEndpoints with a path": (
        {"recording": {"s3": {"allowedEndpoints": ["http://minio:9000/bucket"]}}},
        ["/recording/s3/allowedEndpoints/0"],
    ),
    "recording.s3.allowedEndpoints two in one entry": (
        {"recording": {"s3": {"allowedEndpoints": ["http://a:9000,http://b:9000"]}}},
        ["/recording/s3/allowedEndpoints/0"],
    ),
    "recording.s3.allowedEndpoints other scheme": (
        {"recording": {"s3": {"allowedEndpoints": ["ftp://minio"]}}},
        ["/recording/s3/allowedEndpoints/0"],
    ),
    "tenantNamespaceSelector as a string": (
        {"tenantNamespaceSelector": "roomcast.dev/tenant=enabled"},
        ["/tenantNamespaceSelector"],
    ),
    "tenantNamespaceSelector value with a comma": (
        {"tenantNamespaceSelector": {"team": "a,b=c"}},
        ["/tenantNamespaceSelector/team"],
    ),
    "networkPolicy.ingressNamespaceSelector key with a space": (
        {"networkPolicy": {"ingressNamespaceSelector": {"bad key": "x"}}},
        ["/networkPolicy/ingressNamespaceSelector"],
    ),
    "networkPolicy.egress.s3.cidrs a host name": (
        {"networkPolicy": {"egress": {"s3": {"cidrs": ["s3.amazonaws.com"]}}}},
        ["/networkPolicy/egress/s3/cidrs/0"],
    ),
    "networkPolicy.egress.redis.ports 0": (
        {"networkPolicy": {"egress": {"redis": {"ports": [0]}}}},
        ["/networkPolicy/egress/redis/ports/0", "minimum"],
    ),
    "networkPolicy.egress.mongodb.ports 70000": (
        {"networkPolicy": {"egress": {"mongodb": {"ports": [70000]}}}},
        ["/networkPolicy/egress/mongodb/ports/0", "maximum"],
    ),
    "networkPolicy.egress.apiServer.ports empty": (
        {"networkPolicy": {"egress": {"apiServer": {"ports": []}}}},
        ["/networkPolicy/egress/apiServer/ports"],
    ),
    "networkPolicy.egress unknown store": (
        {"networkPolicy": {"egress": {"postgres": {"cidrs": []}}}},
        ["/networkPolicy/egress", "'postgres'"],
    ),
}


@pytest.mark.parametrize(("values", "expected"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_values_are_refused_naming_the_key(chart, values, expected) -> None:
    with pytest.raises(HelmValuesError) as schema_error:
        chart.validate_schema(chart.merge_values(values))
    for text in expected:
        assert text in str(schema_error.value)

    # `helm install` / `helm template` refuse them the same way, before any template runs.
    with pytest.raises(HelmValuesError) as render_error:
        render_objects(chart, values)
    assert "values don't meet the specifications of the schema" in str(render_error.value)
    for text in expected:
        assert text in str(render_error.value)


@pytest.mark.parametrize(
    "values",
    [
        {"playback": {"host": "live.example.com"}},
        {"ingest": {"externalHost": "203.0.113.7"}},
        {"ingest": {"serviceType": "NodePort"}},
        {"ingest": {"serviceType": "ClusterIP"}},
        {"recording": {"s3": {"endpoint": "http://minio.storage.svc:9000"}}},
        {"redis": {"urlSecret": "roomcast-redis"}, "recording": {"shareDefaultCredentials": True}},
        {"workers": {"media": {"resources": {"requests": {"cpu": 2, "memory": "1.5Gi"}}}}},
        {"replicaCount": 3},
        {"logLevel": "warn,roomcast_operator=trace"},
        {"recording": {"s3": {"allowedEndpoints": ["http://minio.minio.svc:9000", "https://[fd00::1]:9443"]}}},
        {"tenantNamespaceSelector": None},
        {"networkPolicy": {"ingressNamespaceSelector": {"app.kubernetes.io/name": "traefik", "tier": "edge"}}},
        {"networkPolicy": {"egress": {"s3": {"cidrs": ["52.95.0.0/16", "2600:1f18::/32", "10.0.0.5"], "ports": [443, 9000]}}}},
    ],
)
def test_good_values_pass(chart, values) -> None:
    chart.validate_schema(chart.merge_values(values))
    assert render_objects(chart, values)

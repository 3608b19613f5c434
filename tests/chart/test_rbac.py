"""Least-privilege RBAC: exactly the rules the operator needs, no wildcards, cluster-wide or
one namespace as `watchNamespace` says, and the Lease only in the operator's own namespace."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import NAMESPACE, RELEASE, SCENARIOS, by_kind, one, render_objects

# get: before applying, the metadata of a child the cache does not prove is the room's own is
# read, so a name held by anything else is a ChildConflict instead of a takeover.
CHILDREN = {"get", "list", "watch", "create", "patch", "delete"}

# (apiGroup, resource, resourceNames) -> verbs: exactly what the operator calls wherever rooms
# live (see roomcast.roomRules in _helpers.tpl for the call behind each verb).
ROOM_RULES: dict[tuple[str, str, tuple[str, ...]], set[str]] = {
    ("roomcast.dev", "streamrooms", ()): {"list", "watch"},
    # get/patch are also what the per-room worker Role grants; Kubernetes only lets the
    # operator create that Role because it holds the verbs itself.
    ("roomcast.dev", "streamrooms/status", ()): {"get", "patch"},
    # blockOwnerDeletion on every child needs this where OwnerReferencesPermissionEnforcement runs.
    ("roomcast.dev", "streamrooms/finalizers", ()): {"update"},
    ("", "secrets", ()): CHILDREN,
    ("", "configmaps", ()): CHILDREN,
    ("", "services", ()): CHILDREN,
    ("", "serviceaccounts", ()): CHILDREN,
    ("apps", "deployments", ()): CHILDREN,
    ("networking.k8s.io", "ingresses", ()): CHILDREN,
    ("networking.k8s.io", "networkpolicies", ()): CHILDREN,
    ("policy", "poddisruptionbudgets", ()): CHILDREN,
    ("rbac.authorization.k8s.io", "roles", ()): CHILDREN,
    ("rbac.authorization.k8s.io", "rolebindings", ()): CHILDREN,
    ("events.k8s.io", "events", ()): {"create", "patch"},
}
# Cluster-wide, the operator watches namespace labels to serve only those that opted in.
NAMESPACE_RULES = {("", "namespaces", ()): {"list", "watch"}}
LEASE = f"{RELEASE}-operator"
LEASE_RULES = {
    ("coordination.k8s.io", "leases", ()): {"create"},
    ("coordination.k8s.io", "leases", (LEASE,)): {"get", "patch"},
}

ROLE_KINDS = ("Role", "ClusterRole")


def flatten(rules: list[dict[str, Any]]) -> dict[tuple[str, str, tuple[str, ...]], set[str]]:
    """Rules as (apiGroup, resource, resourceNames) -> verbs; fails on duplicate grants."""
    flat: dict[tuple[str, str, tuple[str, ...]], set[str]] = {}
    for rule in rules:
        assert set(rule) <= {"apiGroups", "resources", "resourceNames", "verbs"}, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                key = (group, resource, tuple(rule.get("resourceNames", ())))
                assert key not in flat, f"{key} granted twice"
                flat[key] = set(rule["verbs"])
    return flat


def rules_of(obj: dict[str, Any]) -> dict[tuple[str, str, tuple[str, ...]], set[str]]:
    return flatten(obj["rules"])


def role_named(objects, kind: str, namespace: str | None) -> list[dict[str, Any]]:
    return [o for o in by_kind(objects, kind) if o["metadata"].get("namespace") == namespace]


@pytest.mark.parametrize("values", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_rbac_has_no_wildcards_and_no_escalation_verbs(chart, values) -> None:
    objects = render_objects(chart, values)
    roles = [o for o in objects if o["kind"] in ROLE_KINDS]
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), f"{role['metadata']['name']}: wildcard in {field}"
            assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"])
            if "update" in rule["verbs"]:
                assert rule["resources"] == ["streamrooms/finalizers"], rule
            assert "nonResourceURLs" not in rule
            assert not any(r.startswith("pods") for r in rule["resources"]), "the operator never touches pods"


def test_cluster_wide_by_default_with_namespace_opt_in(chart) -> None:
    objects = render_objects(chart)
    cluster_role = one(objects, "ClusterRole")
    assert rules_of(cluster_role) == {**ROOM_RULES, **NAMESPACE_RULES}
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": cluster_role["metadata"]["name"],
    }
    service_account = one(objects, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": service_account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    # One replica, no leader election: no Lease access, no namespaced Roles at all.
    assert by_kind(objects, "Role") == []
    assert by_kind(objects, "RoleBinding") == []


def test_cluster_wide_serving_every_namespace_needs_no_namespace_watch(chart) -> None:
    objects = render_objects(chart, {"tenantNamespaceSelector": None})
    assert rules_of(one(objects, "ClusterRole")) == ROOM_RULES


def test_watch_namespace_gives_a_role_there_and_nothing_cluster_wide(chart) -> None:
    objects = render_objects(chart, {"watchNamespace": "shows"})
    assert by_kind(objects, "ClusterRole") == []
    assert by_kind(objects, "ClusterRoleBinding") == []
    (role,) = role_named(objects, "Role", "shows")
    assert rules_of(role) == ROOM_RULES
    (binding,) = role_named(objects, "RoleBinding", "shows")
    assert binding["roleRef"]["kind"] == "Role"
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    service_account = one(objects, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": service_account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    # No default Secrets and no leader election: nothing needed in the release namespace.
    assert role_named(objects, "Role", NAMESPACE) == []


def test_watch_namespace_reads_only_the_named_default_secrets_at_home(chart) -> None:
    objects = render_objects(
        chart,
        {
            "watchNamespace": "shows",
            "recording": {"s3": {"bucket": "vods", "credentialsSecret": "s3-creds"}},
            "mongodb": {"uriSecret": "mongo"},
        },
    )
    (home,) = role_named(objects, "Role", NAMESPACE)
    (secrets_rule,) = home["rules"]
    assert secrets_rule == {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["s3-creds", "mongo"],
        "verbs": ["get"],
    }
    (binding,) = role_named(objects, "RoleBinding", NAMESPACE)
    assert binding["roleRef"]["name"] == home["metadata"]["name"]


@pytest.mark.parametrize(
    "values",
    [{"replicaCount": 2}, {"leaderElection": {"enabled": True}}],
    ids=["two-replicas", "enabled"],
)
def test_leader_election_gets_leases_in_its_own_namespace_only(chart, values) -> None:
    objects = render_objects(chart, values)
    (home,) = role_named(objects, "Role", NAMESPACE)
    assert rules_of(home) == LEASE_RULES
    (binding,) = role_named(objects, "RoleBinding", NAMESPACE)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": home["metadata"]["name"],
    }
    for cluster_role in by_kind(objects, "ClusterRole"):
        assert not any(group == "coordination.k8s.io" for group, _, _ in rules_of(cluster_role))
    # The name the operator uses is the name the Role allows.
    env = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "ROOMCAST_LEASE_NAME", "value": LEASE} in env


def test_full_values_rbac(chart, full_values) -> None:
    objects = render_objects(chart, full_values)
    (rooms,) = role_named(objects, "Role", full_values["watchNamespace"])
    assert rules_of(rooms) == ROOM_RULES
    prefix = full_values["fullnameOverride"]
    (home,) = [r for r in role_named(objects, "Role", NAMESPACE) if r["metadata"]["name"] == f"{prefix}-operator-self"]
    lease = f"{prefix}-operator"
    assert rules_of(home) == {
        ("coordination.k8s.io", "leases", ()): {"create"},
        ("coordination.k8s.io", "leases", (lease,)): {"get", "patch"},
        # The ingest gateway's routing key (created once) and routes table (applied by name).
        ("", "secrets", ("s3-creds", "roomcast-mongodb", f"{prefix}-ingest-routing-key")): {"get"},
        ("", "secrets", ()): {"create"},
        ("", "configmaps", ()): {"create"},
        ("", "configmaps", (f"{prefix}-ingest-routes",)): {"patch"},
    }
    subjects = {s["name"] for b in by_kind(objects, "RoleBinding") for s in b["subjects"]}
    assert subjects == {full_values["serviceAccount"]["name"], f"{prefix}-ingest"}


GATEWAY_ON = {"ingestGateway": {"enabled": True, "host": "ingest.example.com",
                                "tls": {"secretName": "ingest-tls"}}}


@pytest.mark.parametrize("values", [GATEWAY_ON, {**GATEWAY_ON, "watchNamespace": "shows"}],
                         ids=["cluster-wide", "one-namespace"])
def test_the_gateway_reads_only_its_routes_config_map(chart, values) -> None:
    objects = render_objects(chart, values)
    (role,) = [r for r in by_kind(objects, "Role") if r["metadata"]["name"] == f"{RELEASE}-ingest"]
    assert role["metadata"]["namespace"] == NAMESPACE
    assert rules_of(role) == {("", "configmaps", (f"{RELEASE}-ingest-routes",)): {"get", "list", "watch"}}
    (binding,) = [b for b in by_kind(objects, "RoleBinding") if b["metadata"]["name"] == f"{RELEASE}-ingest"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"{RELEASE}-ingest", "namespace": NAMESPACE}]
    assert binding["roleRef"]["name"] == f"{RELEASE}-ingest"
    # Nothing cluster-wide for the gateway, and no Secret access through the API at all.
    for obj in by_kind(objects, "ClusterRoleBinding"):
        assert all(s["name"] != f"{RELEASE}-ingest" for s in obj["subjects"])
    if values.get("watchNamespace"):
        # The operator's own-namespace Role gains exactly the gateway's objects.
        (home,) = [r for r in by_kind(objects, "Role") if r["metadata"]["name"] == f"{RELEASE}-operator-self"]
        assert rules_of(home)[("", "configmaps", (f"{RELEASE}-ingest-routes",))] == {"patch"}
        assert rules_of(home)[("", "secrets", (f"{RELEASE}-ingest-routing-key",))] == {"get"}


def test_existing_service_account_is_bound_not_created(chart) -> None:
    objects = render_objects(chart, {"serviceAccount": {"create": False, "name": "ops"}})
    assert by_kind(objects, "ServiceAccount") == []
    assert one(objects, "ClusterRoleBinding")["subjects"][0]["name"] == "ops"
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops"

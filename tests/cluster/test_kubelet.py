"""The mini-kubelet's own rules, without containers: how it writes volumes, expands `$(VAR)`,
reads quantities, and which pod specs it refuses with the reason a real kubelet gives. The
pods themselves run in test_pods.py."""

import base64
import os
import pathlib

import pytest

from kubelet import MiniKubelet, PodFailed, PodNetwork, PodRunner, expand, quantity, write_atomically


def test_volumes_are_published_atomically_with_mode_and_group(tmp_path):
    target = tmp_path / "vol"
    write_atomically(target, {"key": b"one", "dir/nested": b"n"}, 0o440, 10001)
    assert (target / "key").read_bytes() == b"one"
    assert os.readlink(target / "key") == "..data/key", "entries go through ..data, as the kubelet's"
    first = os.readlink(target / "..data")
    stat = (target / "key").stat()
    assert (stat.st_mode & 0o777, stat.st_gid) == (0o440, 10001)
    write_atomically(target, {"key": b"two"}, 0o440, 10001)
    assert (target / "key").read_bytes() == b"two"
    assert os.readlink(target / "..data") != first and not (target / first).exists(), "the old generation goes"
    assert not (target / "dir").exists(), "a key that left the source leaves the volume"


def test_variable_expansion_follows_the_kubelet():
    env = {"A": "x", "B": "y"}
    assert expand("$(A)-$(B)", env) == "x-y"
    assert expand("$$(A)", env) == "$(A)", "$$ escapes"
    assert expand("$(MISSING) $(A", env) == "$(MISSING) $(A", "unknown or unclosed references stay"


@pytest.mark.parametrize("text,value", [("64Mi", 64 * 2**20), ("2Gi", 2 * 2**30), ("500m", 0.5), ("2", 2), ("1k", 1000)])
def test_quantities(text, value):
    assert quantity(text) == value


@pytest.mark.parametrize("text", ["", "Mi", "12Q", "-1Gi", "0x10", "1 Gi"])
def test_hostile_quantities_fail_the_pod(text):
    with pytest.raises(PodFailed, match="CreateContainerConfigError"):
        quantity(text)


def pod(client, spec, namespace="ns"):
    """A pod runner that is never started: its rules are plain functions of the spec and the API."""
    kubelet = MiniKubelet(client, network=PodNetwork(), workdir=pathlib.Path(client.workdir), api_host="10.0.0.1",
                          api_port=6443, ca_file="/dev/null")
    runner = PodRunner(kubelet, {"metadata": {"name": "p", "namespace": namespace, "uid": "u1"},
                                 "spec": {"containers": [{"name": "c", "image": "img"}], **spec}})
    runner.ip = "10.0.0.2"
    return runner


@pytest.fixture
def client(client, tmp_path):
    client.workdir = tmp_path
    return client


def test_env_resolves_refs_in_order_and_refuses_what_it_cannot(client):
    client.namespace("ns")
    client.ok("POST", "/api/v1/namespaces/ns/secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                                                         "data": {"k": base64.b64encode(b"secret").decode()}})
    runner = pod(client, {})
    container = {"env": [{"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                         {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                         {"name": "BOTH", "value": "$(NAME)/$(S)"},
                         {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}}}]}
    env = runner.env(container)
    assert (env["NAME"], env["S"], env["BOTH"]) == ("p", "secret", "p/secret")
    assert "OPT" not in env and env["KUBERNETES_SERVICE_HOST"] == "10.0.0.1"
    for bad in ({"name": "X", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}},
                {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['x']"}}},
                {"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}):
        with pytest.raises(PodFailed, match="CreateContainerConfigError"):
            runner.env({"env": [bad]})


def test_volume_items_and_missing_sources(client):
    client.namespace("ns")
    client.ok("POST", "/api/v1/namespaces/ns/configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                            "metadata": {"name": "cm"}, "data": {"a": "1", "b": "2"}})
    runner = pod(client, {})
    assert runner.volume_files({"name": "v", "configMap": {"name": "cm"}}) == {"a": b"1", "b": b"2"}
    picked = runner.volume_files({"name": "v", "configMap": {"name": "cm", "items": [{"key": "b", "path": "x/y"}]}})
    assert picked == {"x/y": b"2"}
    with pytest.raises(PodFailed, match="key 'zz' not found"):
        runner.volume_files({"name": "v", "configMap": {"name": "cm", "items": [{"key": "zz", "path": "z"}]}})
    with pytest.raises(PodFailed, match="secret 'nope' not found"):
        runner.volume_files({"name": "v", "secret": {"secretName": "nope"}})
    assert runner.volume_files({"name": "v", "secret": {"secretName": "nope", "optional": True}}) == {}


@pytest.mark.parametrize("container_sc,pod_sc,why", [
    ({"privileged": True}, {"runAsUser": 10001}, "privileged"),
    ({"seccompProfile": {"type": "Localhost", "localhostProfile": "x.json"}}, {"runAsUser": 10001}, "seccomp"),
    ({"runAsNonRoot": True, "runAsUser": 0}, {}, "runAsNonRoot"),
])
def test_security_contexts_it_cannot_honour_fail_the_pod(client, monkeypatch, container_sc, pod_sc, why):
    runner = pod(client, {"securityContext": pod_sc})
    monkeypatch.setattr(runner.kubelet, "image_user", lambda image: "0:0")
    with pytest.raises(PodFailed, match=why):
        runner.security({"image": "img", "securityContext": container_sc})


def test_security_context_becomes_podman_flags(client, monkeypatch):
    runner = pod(client, {"securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 2000,
                                              "supplementalGroups": [3000]}})
    monkeypatch.setattr(runner.kubelet, "image_user", lambda image: "10001:10001")
    flags = runner.security({"image": "img", "securityContext": {
        "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}})
    assert flags == ["--user", "10001:10001", "--group-add", "2000", "--group-add", "3000",
                     "--read-only", "--read-only-tmpfs=false", "--security-opt", "no-new-privileges",
                     "--cap-drop=ALL", "--cap-add=NET_BIND_SERVICE"]


def test_unsupported_volumes_and_mounts_fail_the_pod(client):
    client.namespace("ns")
    for spec, container, why in (
        ({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, {}, "hostPath is not supported"),
        ({"volumes": []}, {"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}, "names no volume"),
    ):
        runner = pod(client, {**spec, "automountServiceAccountToken": False})
        with pytest.raises(PodFailed, match=why):
            runner.materialise(container)

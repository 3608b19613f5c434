"""The cluster in a box end to end: the real operator, the API server stand-in over TLS, and
the pods the operator builds run as containers of the image `scripts/image.sh` built, by the
mini-kubelet (`kubelet.py`) on a pod network of its own.

One test walks a platform team's day: apply the example room, publish with ffmpeg to the media
container, play every rendition through the origin, chat across two chat replicas, watch
status reach LIVE with viewers in `kubectl get rooms`, find the session recorded in S3 and
replay it, then delete the room and see its containers stop and its children go.

Needs root (network namespaces), podman, the image, and the workspace binaries; without them it
skips with a notice, and fails under CI=true. README.md, "Cluster in a box", says what this
proves and what only a real cluster can."""

import os

import pytest

import node
import scenario
from apiserver import ApiServer
from box import Client, Operator, binary, in_ci, operator_bin
from kubelet import MiniKubelet, PodNetwork, endpoints, podman, process_facts


IMAGE = os.environ.get("ROOMCAST_IMAGE", "localhost/roomcast:0.1.0")
NAMESPACE = "shows"
ROOM = "lobby"
S3_SERVER = binary("examples/s3-test-server", "ROOMCAST_S3_TEST_SERVER_BIN")


def missing():
    """Why this machine cannot run the box, or None."""
    if os.geteuid() != 0:
        return "root (network namespaces for pods)"
    tools = node.missing_tools()
    if tools:
        return f"{', '.join(tools)} (scripts/install-deps.sh)"
    for path in (operator_bin(), binary("roomcast-chat"), S3_SERVER):
        if not path.exists():
            return f"{path} (cargo build --workspace --bins --examples --tests)"
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        return f"the image {IMAGE} (bash scripts/image.sh)"
    return None


class Box:
    """Everything the scenario needs from this cluster (see `scenario`)."""

    def __init__(self, client, kubelet):
        self.client, self.kubelet = client, kubelet

    def reach(self, namespace, service, port_name):
        found = endpoints(self.client, namespace, service, port_name)
        assert found, f"no ready pod behind {service}:{port_name}"
        return found[0]

    def chat_urls(self, namespace, service, port_name):
        return [f"http://{host}:{port}" for host, port in endpoints(self.client, namespace, service, port_name)]

    def containers(self, namespace):
        return [c for c in self.kubelet.running_containers() if c.endswith(f"_{namespace}")]

    def bucket_objects(self):
        return [p.relative_to(self.s3.bucket_dir).as_posix() for p in self.s3.bucket_dir.rglob("*") if p.is_file()]

    def check_pods(self, namespace, pods):
        """The pod's restrictions, as the kernel applied them to the running workers."""
        containers = self.containers(namespace)
        assert len(containers) == len(pods), containers
        for container in containers:
            facts = process_facts(container)
            assert (facts["uid"], facts["gid"]) == ("10001", "10001"), (container, facts)
            assert "10001" in facts["groups"], (container, facts)  # fsGroup
            assert facts["cap_effective"] == 0 and facts["cap_bounding"] == 0, (container, facts)
            assert facts["no_new_privs"] == "1" and facts["seccomp"] == "2", (container, facts)
            assert facts["root_read_only"], (container, facts)
            if "_media_" in container:
                assert facts["memory_max"] == str(2 * 2**30), (container, facts)  # the example's 2Gi limit


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    why = missing()
    if why:
        if in_ci():
            pytest.fail(f"cluster-in-a-box pods need {why}")
        pytest.skip(f"cluster-in-a-box pods need {why}")
    work = tmp_path_factory.mktemp("box")
    network = PodNetwork().up()
    started = []
    try:
        ca, cert, key = node.certificate_authority(work / "pki", [network.node_ip, "127.0.0.1"])
        api = ApiServer(host=network.node_ip, tls=(str(cert), str(key)), verbose=bool(os.environ.get("ROOMCAST_BOX_LOG"))).start()
        started.append(api)
        client = Client(api.url, cafile=str(ca))
        redis, mongo = node.redis(network.node_ip, work), node.mongodb(network.node_ip, work)
        s3 = node.s3(network.node_ip, work, S3_SERVER)
        started += [redis, mongo, s3]
        kubeconfig = work / "kubeconfig"
        kubeconfig.write_text(api.kubeconfig(ca_file=ca))
        client.install_crd()
        client.namespace("roomcast-system")
        client.namespace(NAMESPACE, {"roomcast.dev/tenant": "enabled"})
        operator = Operator(operator_bin(), kubeconfig, work / "operator.log", ROOMCAST_LEADER_ELECTION="false",
                            ROOMCAST_MEDIA_IMAGE=IMAGE, ROOMCAST_CHAT_IMAGE=IMAGE, ROOMCAST_IMAGE_PULL_POLICY="Never",
                            ROOMCAST_INGEST_SERVICE_TYPE="ClusterIP", ROOMCAST_LOG_FORMAT="pretty",
                            ROOMCAST_S3_ALLOWED_ENDPOINTS=s3.settings["endpoint"])
        started.append(operator)
        kubelet = MiniKubelet(client, network, work / "node", api_host=network.node_ip, api_port=api.port,
                              ca_file=ca, log=lambda line: print(line, flush=True)).start()
        started.append(kubelet)
        cluster = Box(client, kubelet)
        cluster.work, cluster.s3, cluster.operator = work, s3, operator
        cluster.redis_url, cluster.mongodb_uri = redis.url, mongo.uri
        yield cluster
    finally:
        for thing in reversed(started):
            thing.stop()
        network.down()
        if in_ci() or os.environ.get("ROOMCAST_BOX_LOG"):
            for log in sorted(work.rglob("*.log")):
                print(f"===== {log.relative_to(work)}\n{log.read_text(errors='replace')[-6000:]}")


def test_example_room_runs_in_pods(box):
    stores = {"s3": box.s3.settings, "redis_url": box.redis_url, "mongodb_uri": box.mongodb_uri,
              "tls": ((box.work / "pki" / "apiserver.crt").read_text(), (box.work / "pki" / "apiserver.key").read_text())}
    scenario.example_room_day(box, stores, NAMESPACE)

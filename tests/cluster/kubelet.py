"""A mini-kubelet for the cluster-in-a-box suite: the pods of the Deployments the operator
applied, run as real containers with podman from the image `scripts/image.sh` built.

    API stand-in ──list Deployments──► MiniKubelet.sync (the Deployment controller's job:
       ▲                                one Pod object per replica, owned by its Deployment)
       │ Pod / Deployment status          │
       └──────────── PodRunner thread ◄───┘ per pod: network namespace + IP on the node's
                     bridge, ConfigMap/Secret/emptyDir volumes and the service account token
                     materialised, env resolved, `podman run` with the pod's command, args,
                     security context and memory/CPU limits, readiness and liveness probes,
                     restarts with back-off, volumes refreshed as their sources change.

What it takes from the pod spec, and what it refuses, is listed in README.md ("Cluster in a
box", "Pods"). Everything the operator writes into a Deployment either is honoured here or
makes the pod fail with the reason a real kubelet would give (`CreateContainerConfigError`,
`ErrImageNeverPull`): nothing is silently ignored.
"""

import base64
import hashlib
import json
import os
import pathlib
import random
import re
import shutil
import string
import subprocess
import threading
import time
import urllib.error
import urllib.request

CONTAINERS_CONF = pathlib.Path(__file__).resolve().parents[2] / "image" / "containers.conf"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
NODE_NAME = "box"
# What a real kubelet uses when the spec says nothing (k8s.io/api/core/v1 defaults).
DEFAULT_PROBE = {"initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 1,
                 "successThreshold": 1, "failureThreshold": 3}
CRASH_BACKOFF_START, CRASH_BACKOFF_MAX = 10.0, 300.0
# Volume sources this kubelet materialises; any other makes the pod fail, named.
SUPPORTED_VOLUMES = ("configMap", "secret", "emptyDir")
# Capabilities podman grants by default; `drop: [ALL]` must remove every one of them.
QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
QUANTITY_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                  "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "m": 0.001}


class PodFailed(Exception):
    """The pod cannot start; `reason` is what a real kubelet reports."""

    def __init__(self, reason, message):
        super().__init__(f"{reason}: {message}")
        self.reason, self.message = reason, message


def quantity(value):
    """A Kubernetes quantity ("64Mi", "500m", "2") as a number."""
    match = QUANTITY.match(str(value))
    if not match or match.group(2) not in QUANTITY_UNITS:
        raise PodFailed("CreateContainerConfigError", f"bad quantity {value!r}")
    return float(match.group(1)) * QUANTITY_UNITS[match.group(2)]


def run(*args, check=True, timeout=60):
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
    return result


def podman(*args, check=True, timeout=120):
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {result.stderr.strip()}")
    return result


class PodNetwork:
    """The node's pod network: a bridge holding the node's address (`.1`) and, per pod, a
    network namespace joined to it by a veth pair, so every pod has its own IP and ports, as
    with a CNI plugin. No NAT and no route out: pods reach the node and each other only."""

    def __init__(self, prefix="10.213.0", bridge="rcbox0"):
        self.prefix, self.bridge = prefix, bridge
        self.node_ip = f"{prefix}.1"
        self.lock = threading.Lock()
        self.free = list(range(2, 250))

    def up(self):
        self.down()
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{self.node_ip}/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        return self

    def down(self):
        """Remove the bridge and every namespace of this network, including a crashed run's."""
        for name in run("ip", "netns", "list", check=False).stdout.split():
            if name.startswith(f"{self.bridge}-"):
                run("ip", "netns", "delete", name, check=False)
        run("ip", "link", "delete", self.bridge, check=False)

    def attach(self):
        """A new namespace with an address: (namespace path, pod IP)."""
        with self.lock:
            if not self.free:
                raise PodFailed("FailedCreatePodSandBox", "no pod address left")
            n = self.free.pop(0)
        netns, host_end, pod_end = f"{self.bridge}-{n}", f"{self.bridge}h{n}", f"{self.bridge}p{n}"
        ip = f"{self.prefix}.{n}"
        run("ip", "netns", "add", netns)
        run("ip", "link", "add", host_end, "type", "veth", "peer", "name", pod_end)
        run("ip", "link", "set", host_end, "master", self.bridge, "up")
        run("ip", "link", "set", pod_end, "netns", netns)
        run("ip", "-n", netns, "link", "set", pod_end, "name", "eth0")
        run("ip", "-n", netns, "addr", "add", f"{ip}/24", "dev", "eth0")
        run("ip", "-n", netns, "link", "set", "eth0", "up")
        run("ip", "-n", netns, "link", "set", "lo", "up")
        run("ip", "-n", netns, "route", "add", "default", "via", self.node_ip)
        return f"/run/netns/{netns}", ip

    def detach(self, netns_path, ip):
        run("ip", "netns", "delete", pathlib.Path(netns_path).name, check=False)
        with self.lock:
            self.free.append(int(ip.rsplit(".", 1)[1]))


def write_atomically(directory, files, mode, gid):
    """Publish `files` (relative path -> bytes) into `directory` the way the kubelet's
    AtomicWriter does: a timestamped directory, a `..data` symlink swapped to it in one
    rename, and one symlink per top-level entry through `..data`. A reader (the workers'
    `SecretFile`) never sees half a update; it sees the new file once the swap lands."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = directory / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{random.randrange(10**9)}"
    stamp.mkdir(mode=0o755)
    for rel, content in files.items():
        target = stamp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        os.chown(target, 0, gid if gid is not None else 0)
        os.chmod(target, mode)
    temporary = directory / "..data_tmp"
    if temporary.is_symlink():
        temporary.unlink()
    temporary.symlink_to(stamp.name)
    old = os.readlink(directory / "..data") if (directory / "..data").is_symlink() else None
    os.replace(temporary, directory / "..data")
    tops = {rel.split("/", 1)[0] for rel in files}
    for top in tops:
        link = directory / top
        if not link.is_symlink():
            link.symlink_to(f"..data/{top}")
    for entry in directory.iterdir():
        if not entry.name.startswith("..") and entry.name not in tops:
            entry.unlink()
    if old:
        shutil.rmtree(directory / old, ignore_errors=True)


class PodRunner(threading.Thread):
    """One pod: its sandbox (network namespace), volumes and container, supervised until
    `stop`. Single-container pods only: that is what the operator builds."""

    def __init__(self, kubelet, pod):
        super().__init__(daemon=True, name=f"pod-{pod['metadata']['name']}")
        self.kubelet, self.client = kubelet, kubelet.client
        self.pod = pod
        self.meta, self.spec = pod["metadata"], pod["spec"]
        self.name, self.namespace = self.meta["name"], self.meta["namespace"]
        self.dir = kubelet.workdir / "pods" / self.meta["uid"]
        self.stopping = threading.Event()
        self.container = f"k8s_{self.spec['containers'][0]['name']}_{self.name}_{self.namespace}"
        self.netns = self.ip = None
        self.ready = False
        self.restarts = 0
        self.state = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state = {}
        self.reported = None
        self.sources = {}
        self.refresh_errors = {}

    # -- the pod's inputs ------------------------------------------------------------------

    def get(self, path):
        code, obj = self.client.request("GET", path)
        return obj if code == 200 else None

    def volume_files(self, volume):
        """Relative path -> bytes of a ConfigMap or Secret volume, or None while its source is
        missing (the pod waits, as a real one does, unless the source is optional)."""
        if "configMap" in volume:
            source, kind = volume["configMap"], "configmaps"
            obj = self.get(f"/api/v1/namespaces/{self.namespace}/configmaps/{source['name']}")
            data = {k: v.encode() for k, v in ((obj or {}).get("data") or {}).items()}
            data.update({k: base64.b64decode(v) for k, v in ((obj or {}).get("binaryData") or {}).items()})
        else:
            source, kind = volume["secret"], "secrets"
            obj = self.get(f"/api/v1/namespaces/{self.namespace}/secrets/{source['secretName']}")
            data = {k: base64.b64decode(v) for k, v in ((obj or {}).get("data") or {}).items()}
        if obj is None:
            if source.get("optional"):
                return {}
            raise PodFailed("CreateContainerConfigError",
                            f"{kind[:-1]} {source.get('name') or source.get('secretName')!r} not found")
        items = source.get("items")
        if not items:
            return data
        picked = {}
        for item in items:
            if item["key"] not in data:
                if source.get("optional"):
                    continue
                raise PodFailed("CreateContainerConfigError",
                                f"key {item['key']!r} not found in {kind[:-1]} volume {volume['name']!r}")
            picked[item["path"]] = data[item["key"]]
        return picked

    def key_ref(self, ref, kind):
        path = {"secretKeyRef": f"/api/v1/namespaces/{self.namespace}/secrets/{ref['name']}",
                "configMapKeyRef": f"/api/v1/namespaces/{self.namespace}/configmaps/{ref['name']}"}[kind]
        obj = self.get(path)
        if obj is None or ref["key"] not in (obj.get("data") or {}):
            if ref.get("optional"):
                return None
            raise PodFailed("CreateContainerConfigError", f"{kind} {ref['name']}/{ref['key']} not found")
        value = obj["data"][ref["key"]]
        return base64.b64decode(value).decode() if kind == "secretKeyRef" else value

    def env(self, container):
        """The container's environment, resolved in order with `$(VAR)` expansion, plus the
        API server's address every pod gets."""
        env = {"KUBERNETES_SERVICE_HOST": self.kubelet.api_host,
               "KUBERNETES_SERVICE_PORT": str(self.kubelet.api_port)}
        fields = {"metadata.name": self.name, "metadata.namespace": self.namespace,
                  "metadata.uid": self.meta["uid"], "spec.nodeName": NODE_NAME,
                  "spec.serviceAccountName": self.spec.get("serviceAccountName", "default"),
                  "status.podIP": self.ip, "status.hostIP": self.kubelet.network.node_ip}
        for var in container.get("env") or []:
            if "value" in var:
                value = expand(var["value"], env)
            else:
                source = var.get("valueFrom") or {}
                if "fieldRef" in source:
                    path = source["fieldRef"]["fieldPath"]
                    if path not in fields:
                        raise PodFailed("CreateContainerConfigError", f"unsupported fieldRef {path!r}")
                    value = fields[path]
                elif "secretKeyRef" in source or "configMapKeyRef" in source:
                    kind = "secretKeyRef" if "secretKeyRef" in source else "configMapKeyRef"
                    value = self.key_ref(source[kind], kind)
                    if value is None:
                        continue
                else:
                    raise PodFailed("CreateContainerConfigError", f"unsupported env source for {var['name']}")
            env[var["name"]] = value
        if container.get("envFrom"):
            raise PodFailed("CreateContainerConfigError", "envFrom is not supported by the mini-kubelet")
        return env

    def security(self, container):
        """podman flags for the pod's and the container's security context."""
        pod_sc, sc = self.spec.get("securityContext") or {}, container.get("securityContext") or {}
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        image_user = self.kubelet.image_user(container["image"])
        if uid is None:
            uid = int(image_user.split(":")[0]) if image_user.split(":")[0].isdigit() else None
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) and (uid is None or uid == 0):
            # The kubelet refuses a non-numeric or root user when runAsNonRoot is set.
            raise PodFailed("CreateContainerConfigError", "container has runAsNonRoot and image will run as root")
        flags = []
        if uid is not None:
            flags += ["--user", f"{uid}:{gid if gid is not None else 0}"]
        for group in [pod_sc.get("fsGroup"), *(pod_sc.get("supplementalGroups") or [])]:
            if group is not None:
                flags += ["--group-add", str(group)]
        if sc.get("readOnlyRootFilesystem"):
            # podman would add writable tmpfs at /tmp, /run and /var/tmp; a pod gets none.
            flags += ["--read-only", "--read-only-tmpfs=false"]
        if sc.get("allowPrivilegeEscalation") is False:
            flags += ["--security-opt", "no-new-privileges"]
        if sc.get("privileged"):
            raise PodFailed("CreateContainerConfigError", "privileged containers are not run here")
        caps = sc.get("capabilities") or {}
        flags += [f"--cap-drop={c}" for c in caps.get("drop") or []]
        flags += [f"--cap-add={c}" for c in caps.get("add") or []]
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type", "RuntimeDefault")
        if seccomp == "Unconfined":
            flags += ["--security-opt", "seccomp=unconfined"]
        elif seccomp != "RuntimeDefault":
            raise PodFailed("CreateContainerConfigError", f"seccomp profile {seccomp} is not supported here")
        return flags

    def resources(self, container):
        limits = (container.get("resources") or {}).get("limits") or {}
        flags = []
        if "memory" in limits:
            flags += ["--memory", str(int(quantity(limits["memory"])))]
        if "cpu" in limits:
            flags += ["--cpus", f"{quantity(limits['cpu']):g}"]
        return flags

    def materialise(self, container):
        """Volumes on the node and their podman mounts."""
        fs_group = (self.spec.get("securityContext") or {}).get("fsGroup")
        mounts = {}
        for volume in self.spec.get("volumes") or []:
            kinds = [k for k in volume if k != "name"]
            if kinds[0] not in SUPPORTED_VOLUMES:
                raise PodFailed("CreateContainerConfigError", f"volume {volume['name']!r}: {kinds[0]} is not supported")
            host = self.dir / "volumes" / volume["name"]
            if "emptyDir" in volume:
                empty = volume["emptyDir"] or {}
                if empty.get("medium") == "Memory":
                    size = int(quantity(empty.get("sizeLimit", "64Mi")))
                    mounts[volume["name"]] = ("tmpfs", size)
                    continue
                host.mkdir(parents=True, exist_ok=True)
                # As the kubelet does: world-writable, group-owned by fsGroup with setgid.
                os.chown(host, 0, fs_group or 0)
                os.chmod(host, 0o2777 if fs_group is not None else 0o777)
                mounts[volume["name"]] = ("dir", host)
            else:
                source = volume.get("configMap") or volume.get("secret")
                self.sources[volume["name"]] = (volume, host, source.get("defaultMode", 0o644), fs_group)
                self.refresh_volume(volume["name"])
                mounts[volume["name"]] = ("dir", host)
        if self.spec.get("automountServiceAccountToken", True):
            host = self.dir / "volumes" / "kube-api-access"
            write_atomically(host, {"token": self.kubelet.token.encode(),
                                    "ca.crt": self.kubelet.ca_file.read_bytes(),
                                    "namespace": self.namespace.encode()}, 0o644, fs_group)
            mounts["kube-api-access"] = ("dir", host)
        flags = []
        declared = {m["name"] for m in container.get("volumeMounts") or []}
        for mount in [*(container.get("volumeMounts") or []),
                      *([{"name": "kube-api-access", "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True}]
                        if "kube-api-access" in mounts and "kube-api-access" not in declared else [])]:
            if mount["name"] not in mounts:
                raise PodFailed("CreateContainerConfigError", f"volumeMount {mount['name']!r} names no volume")
            if mount.get("subPath"):
                raise PodFailed("CreateContainerConfigError", "subPath mounts are not supported here")
            kind, what = mounts[mount["name"]]
            if kind == "tmpfs":
                flags += ["--mount", f"type=tmpfs,destination={mount['mountPath']},tmpfs-size={what},tmpfs-mode=1777"]
            else:
                flags += ["-v", f"{what}:{mount['mountPath']}:{'ro' if mount.get('readOnly') else 'rw'}"]
        return flags

    def refresh_volume(self, name):
        """Re-publish a ConfigMap or Secret volume when its source changed (a real kubelet does
        this on its sync period, within about a minute; here within a second or two)."""
        volume, host, mode, gid = self.sources[name]
        files = self.volume_files(volume)
        digest = hashlib.sha256(json.dumps({k: base64.b64encode(v).decode() for k, v in sorted(files.items())}).encode()).hexdigest()
        if (host / ".digest").exists() and (host / ".digest").read_text() == digest:
            return
        write_atomically(host, files, mode, gid)
        (host / ".digest").write_text(digest)

    # -- lifecycle ---------------------------------------------------------------------------

    def start_container(self):
        container = self.spec["containers"][0]
        image = container["image"]
        if container.get("imagePullPolicy") == "Always":
            raise PodFailed("ErrImagePull", f"imagePullPolicy Always: {image!r} would be pulled, and nothing is pulled here")
        if not self.kubelet.image_present(image):
            raise PodFailed("ErrImageNeverPull", f"image {image!r} is not present on the node and nothing is pulled here")
        env = self.env(container)
        flags = ["run", "-d", "--name", self.container, "--network", f"ns:{self.netns}",
                 "--hostname", self.name, "--stop-timeout", str(self.spec.get("terminationGracePeriodSeconds", 30)),
                 *self.security(container), *self.resources(container), *self.materialise(container)]
        for key, value in env.items():
            flags += ["-e", f"{key}={value}"]
        command = [expand(c, env) for c in container.get("command") or []]
        args = [expand(a, env) for a in container.get("args") or []]
        if command:
            flags += ["--entrypoint", json.dumps(command)]
        podman("rm", "-f", self.container, check=False)
        podman(*flags, image, *args)
        self.started_at = time.monotonic()
        self.state = {"running": {"startedAt": now()}}

    def container_state(self):
        result = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}}",
                        self.container, check=False)
        if result.returncode != 0:
            return "missing", None, False
        status, code, oom = result.stdout.split()
        return status, int(code), oom == "true"

    def run(self):
        try:
            self.netns, self.ip = self.kubelet.network.attach()
            self.report()
            self.start_container()
        except PodFailed as failure:
            self.state = {"waiting": {"reason": failure.reason, "message": failure.message}}
            self.report()
            self.kubelet.log(f"pod {self.namespace}/{self.name}: {failure}")
            self.stopping.wait()
            self.cleanup()
            return
        self.supervise()
        self.cleanup()

    def supervise(self):
        container = self.spec["containers"][0]
        probes = {kind: {**DEFAULT_PROBE, **container[kind]} for kind in ("readinessProbe", "livenessProbe", "startupProbe")
                  if kind in container}
        due = {kind: time.monotonic() + p["initialDelaySeconds"] for kind, p in probes.items()}
        failures = dict.fromkeys(probes, 0)
        successes = dict.fromkeys(probes, 0)
        started = "startupProbe" not in probes
        backoff = CRASH_BACKOFF_START
        restart_at = None
        next_refresh = time.monotonic() + 1
        while not self.stopping.wait(0.2):
            clock = time.monotonic()
            if clock >= next_refresh:
                next_refresh = clock + 1
                for name in self.sources:
                    try:
                        self.refresh_volume(name)
                    except PodFailed as failure:
                        # Once per volume: the pod keeps the last files, as a real kubelet does.
                        if self.refresh_errors.get(name) != str(failure):
                            self.refresh_errors[name] = str(failure)
                            self.kubelet.log(f"pod {self.name}: volume {name} not refreshed: {failure}")
            status, code, oom = self.container_state()
            if status != "running":
                if restart_at is None:
                    # restartPolicy Always: the container comes back after a doubling back-off.
                    self.kubelet.save_log(self)
                    self.last_state = {"terminated": {"exitCode": code, "reason": "OOMKilled" if oom else (
                        "Completed" if code == 0 else "Error")}}
                    self.state = {"waiting": {"reason": "CrashLoopBackOff"}}
                    self.ready = False
                    restart_at = clock + backoff
                    backoff = min(backoff * 2, CRASH_BACKOFF_MAX)
                    self.report()
                elif clock >= restart_at:
                    restart_at = None
                    self.restarts += 1
                    try:
                        self.start_container()
                    except PodFailed as failure:
                        self.state = {"waiting": {"reason": failure.reason, "message": failure.message}}
                    due = {kind: clock + p["initialDelaySeconds"] for kind, p in probes.items()}
                    failures = dict.fromkeys(probes, 0)
                    started = "startupProbe" not in probes
                    self.report()
                continue
            for kind, probe in probes.items():
                if clock < due[kind] or (kind != "startupProbe" and not started) or (kind == "startupProbe" and started):
                    continue
                due[kind] = clock + probe["periodSeconds"]
                if self.probe(container, probe):
                    successes[kind] += 1
                    failures[kind] = 0
                    if kind == "startupProbe":
                        started = True
                    if kind == "readinessProbe" and successes[kind] >= probe["successThreshold"]:
                        self.ready = True
                else:
                    successes[kind] = 0
                    failures[kind] += 1
                    if failures[kind] >= probe["failureThreshold"]:
                        if kind == "readinessProbe":
                            self.ready = False
                        else:
                            # Liveness (or startup) failed: the kubelet kills the container.
                            self.kubelet.log(f"pod {self.name}: {kind} failed {failures[kind]} times, restarting")
                            podman("kill", self.container, check=False)
                            failures[kind] = 0
            if "readinessProbe" not in probes:
                self.ready = started
            self.report()

    def probe(self, container, probe):
        timeout = probe["timeoutSeconds"]
        if "httpGet" in probe:
            get = probe["httpGet"]
            port = self.port_number(container, get["port"])
            url = f"{get.get('scheme', 'HTTP').lower()}://{get.get('host') or self.ip}:{port}{get.get('path', '/')}"
            request = urllib.request.Request(url, headers={h["name"]: h["value"] for h in get.get("httpHeaders") or []})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    return 200 <= response.status < 400
            except urllib.error.HTTPError as e:
                return 200 <= e.code < 400
            except OSError:
                return False
        if "tcpSocket" in probe:
            import socket
            try:
                with socket.create_connection((self.ip, self.port_number(container, probe["tcpSocket"]["port"])),
                                              timeout=timeout):
                    return True
            except OSError:
                return False
        if "exec" in probe:
            result = podman("exec", self.container, *probe["exec"]["command"], check=False, timeout=timeout + 5)
            return result.returncode == 0
        return False

    @staticmethod
    def port_number(container, port):
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for declared in container.get("ports") or []:
            if declared.get("name") == port:
                return declared["containerPort"]
        raise PodFailed("CreateContainerConfigError", f"probe names port {port!r}, which the container does not declare")

    def report(self):
        """Pod status through the status subresource, as the kubelet writes it."""
        container = self.spec["containers"][0]
        running = "running" in self.state
        ready = bool(self.ready and running)
        status = {
            "phase": "Running" if running else "Pending",
            "hostIP": self.kubelet.network.node_ip,
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}] if self.ip else [],
            "conditions": [{"type": t, "status": "True" if ok else "False"} for t, ok in (
                ("PodScheduled", True), ("Initialized", True), ("ContainersReady", ready), ("Ready", ready))],
            "containerStatuses": [{"name": container["name"], "image": container["image"], "ready": ready,
                                   "restartCount": self.restarts, "state": self.state,
                                   "lastState": self.last_state, "started": running}],
        }
        if status == self.reported:
            return
        code, answer = self.client.request(
            "PATCH", f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status",
            {"status": status}, content_type="application/merge-patch+json")
        if code < 300:
            self.reported = status
        self.kubelet.changed.set()

    def stop(self):
        self.stopping.set()

    def cleanup(self):
        grace = self.spec.get("terminationGracePeriodSeconds", 30)
        if self.container_state()[0] != "missing":
            podman("stop", "-t", str(grace), self.container, check=False, timeout=grace + 30)
            self.kubelet.save_log(self)
            podman("rm", "-f", self.container, check=False)
        if self.netns:
            self.kubelet.network.detach(self.netns, self.ip)
        shutil.rmtree(self.dir, ignore_errors=True)


def expand(text, env):
    """`$(VAR)` references as the kubelet expands them; `$$` escapes, unknown names stay."""
    def replace(match):
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", replace, text)


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def template_hash(template):
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def suffix():
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5))


class MiniKubelet:
    """Runs every Deployment's pods: the Deployment controller's part (Pod objects per
    replica, `Recreate` or rolling replacement on a template change, Deployment status) and
    the kubelet's part (`PodRunner`)."""

    def __init__(self, client, network, workdir, api_host, api_port, ca_file, token="box-service-account-token",
                 log=print):
        self.client, self.network = client, network
        self.workdir = pathlib.Path(workdir)
        self.api_host, self.api_port, self.ca_file, self.token = api_host, api_port, pathlib.Path(ca_file), token
        self.log = log
        self.runners = {}
        self.changed = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="mini-kubelet")
        self.images = {}
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=10)
        for runner in list(self.runners.values()):
            runner.stop()
        for runner in list(self.runners.values()):
            runner.join(timeout=60)

    def image_present(self, image):
        if image not in self.images:
            self.images[image] = podman("image", "exists", image, check=False).returncode == 0
        return self.images[image]

    def image_user(self, image):
        return podman("image", "inspect", "--format", "{{.Config.User}}", image, check=False).stdout.strip()

    def save_log(self, runner):
        logs = podman("logs", runner.container, check=False)
        with open(self.workdir / "logs" / f"{runner.namespace}_{runner.name}.log", "a") as out:
            out.write(logs.stdout + logs.stderr)

    def container_log(self, namespace, name):
        for runner in self.runners.values():
            if runner.namespace == namespace and runner.name == name:
                result = podman("logs", runner.container, check=False)
                return result.stdout + result.stderr
        path = self.workdir / "logs" / f"{namespace}_{name}.log"
        return path.read_text() if path.exists() else ""

    def pods(self, namespace, selector=None):
        """The running pods of a namespace matching a label selector (dict), from the API."""
        code, listed = self.client.request("GET", f"/api/v1/namespaces/{namespace}/pods")
        pods = listed["items"] if code == 200 else []
        return [p for p in pods if all(p["metadata"].get("labels", {}).get(k) == v for k, v in (selector or {}).items())]

    def _loop(self):
        while not self.stopping.is_set():
            try:
                self.sync()
            except Exception as e:  # keep the node alive; the test sees the symptom
                self.log(f"mini-kubelet sync failed: {e!r}")
            self.changed.wait(0.5)
            self.changed.clear()

    def sync(self):
        code, listed = self.client.request("GET", "/apis/apps/v1/deployments")
        deployments = listed["items"] if code == 200 else []
        code, listed = self.client.request("GET", "/api/v1/pods")
        api_pods = {p["metadata"]["uid"]: p for p in (listed["items"] if code == 200 else [])}
        # A pod whose object is gone (deleted, or collected with its Deployment) stops.
        for uid, runner in list(self.runners.items()):
            if uid not in api_pods:
                runner.stop()
                del self.runners[uid]
        for deployment in deployments:
            self.sync_deployment(deployment, [p for p in api_pods.values() if owned_by(p, deployment)])

    def sync_deployment(self, deployment, pods):
        meta, spec = deployment["metadata"], deployment["spec"]
        ns = meta["namespace"]
        want = spec.get("replicas", 1)
        current_hash = template_hash(spec["template"])
        current = [p for p in pods if p["metadata"].get("labels", {}).get("pod-template-hash") == current_hash]
        old = [p for p in pods if p not in current]
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        ready = [p for p in current if is_ready(self.runners.get(p["metadata"]["uid"]))]
        if old and (recreate or len(ready) >= want):
            for pod in old:
                self.delete_pod(pod)
            old = []
        if not (recreate and old):
            for _ in range(want - len(current)):
                current.append(self.create_pod(deployment, current_hash))
        for pod in current[want:]:
            self.delete_pod(pod)
        ready = [p for p in current[:want] if is_ready(self.runners.get(p["metadata"]["uid"]))]
        status = {"observedGeneration": meta.get("generation", 1), "replicas": len(current[:want]) + len(old),
                  "updatedReplicas": len(current[:want]), "readyReplicas": len(ready),
                  "availableReplicas": len(ready), "unavailableReplicas": max(want - len(ready), 0),
                  "conditions": [{"type": "Available", "status": "True" if len(ready) >= want else "False",
                                  "reason": "MinimumReplicasAvailable" if len(ready) >= want else "MinimumReplicasUnavailable"}]}
        if deployment.get("status") != status:
            self.client.request("PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/{meta['name']}/status",
                                {"status": status}, content_type="application/merge-patch+json")

    def create_pod(self, deployment, pod_hash):
        meta, template = deployment["metadata"], deployment["spec"]["template"]
        name = f"{meta['name']}-{pod_hash[:9]}-{suffix()}"
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": meta["namespace"],
                            "labels": {**(template["metadata"].get("labels") or {}), "pod-template-hash": pod_hash},
                            "annotations": template["metadata"].get("annotations") or {},
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"],
                                                 "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
               "spec": {**template["spec"], "nodeName": NODE_NAME}}
        created = self.client.ok("POST", f"/api/v1/namespaces/{meta['namespace']}/pods", pod)
        runner = PodRunner(self, created)
        self.runners[created["metadata"]["uid"]] = runner
        runner.start()
        return created

    def delete_pod(self, pod):
        meta = pod["metadata"]
        self.client.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}")
        runner = self.runners.pop(meta["uid"], None)
        if runner:
            runner.stop()

    def running_containers(self):
        """Names of the containers this node runs (podman's view, not the API's)."""
        out = podman("ps", "--format", "{{.Names}}", check=False).stdout.split()
        return sorted(n for n in out if n.startswith("k8s_"))


def owned_by(pod, deployment):
    return any(r.get("uid") == deployment["metadata"]["uid"] and r.get("controller")
               for r in pod["metadata"].get("ownerReferences") or [])


def is_ready(runner):
    return bool(runner and runner.ready and "running" in runner.state)


def endpoints(client, namespace, service, port_name):
    """[(pod IP, port)] behind a Service port, as the endpoints controller and kube-proxy
    resolve it: the Service's selector over the namespace's ready pods, its `targetPort` (a
    number, or a container port's name) on each."""
    svc = client.ok("GET", f"/api/v1/namespaces/{namespace}/services/{service}")
    port = next((p for p in svc["spec"]["ports"] if p.get("name") == port_name), None)
    assert port is not None, f"service {service} has no port {port_name!r}: {svc['spec']['ports']}"
    selector = svc["spec"].get("selector") or {}
    assert selector, f"service {service} selects no pods"
    target = port.get("targetPort", port["port"])
    found = []
    for pod in client.ok("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]:
        labels = pod["metadata"].get("labels") or {}
        conditions = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
        if any(labels.get(k) != v for k, v in selector.items()) or conditions.get("Ready") != "True":
            continue
        container = pod["spec"]["containers"][0]
        number = PodRunner.port_number(container, target)
        found.append((pod["status"]["podIP"], number))
    return found


def process_facts(container):
    """What the kernel says about a container's main process: ids, capabilities, seccomp,
    no_new_privs, whether `/` is read-only, and its memory limit. Read from /proc on the node,
    so a test checks what the runtime really applied, not what was asked."""
    pid = podman("inspect", "--format", "{{.State.Pid}}", container).stdout.strip()
    status = dict(line.split(":", 1) for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":" in line)
    status = {k: v.strip() for k, v in status.items()}
    root_options = next(line.split()[5] for line in pathlib.Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
                        if line.split()[4] == "/")
    memory_max = None
    for line in pathlib.Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        for candidate in (pathlib.Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.max",
                          pathlib.Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.limit_in_bytes"):
            if (hierarchy == "0" or "memory" in controllers.split(",")) and candidate.exists():
                memory_max = candidate.read_text().strip()
    return {"uid": status["Uid"].split()[0], "gid": status["Gid"].split()[0], "groups": status["Groups"].split(),
            "cap_effective": int(status["CapEff"], 16), "cap_bounding": int(status["CapBnd"], 16),
            "no_new_privs": status.get("NoNewPrivs"), "seccomp": status.get("Seccomp"),
            "root_read_only": "ro" in root_options.split(","), "memory_max": memory_max}

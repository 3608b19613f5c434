"""What the pods of the cluster-in-a-box reach on the node (the bridge address the mini-kubelet
gives them): a certificate authority and the API server's certificate, Redis, a
MongoDB-compatible server and an S3 server. Each is the real component the other suites use,
started on the pod network instead of loopback."""

import json
import pathlib
import re
import shutil
import socket
import subprocess
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def free_port(host):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def certificate_authority(directory, ips):
    """A CA and a server certificate for `ips` (and the names in-cluster clients use), as
    `kubeadm` would issue for an API server. Returns (ca.crt, server.crt, server.key)."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "apiserver.key", directory / "apiserver.csr", directory / "apiserver.crt"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca_crt), "-days", "2",
            "-subj", "/CN=cluster-in-a-box-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=kube-apiserver")
    names = ",".join([*(f"IP:{ip}" for ip in ips), "DNS:kubernetes", "DNS:kubernetes.default.svc"])
    extensions = directory / "apiserver.ext"
    extensions.write_text(f"subjectAltName={names}\nextendedKeyUsage=serverAuth\n"
                          "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(crt), "-days", "2", "-extfile", str(extensions))
    return ca_crt, crt, key


class Process:
    """A server process, stopped (and its output kept) at the end."""

    def __init__(self, args, log, **kwargs):
        self.log = pathlib.Path(log)
        self.process = subprocess.Popen(args, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, **kwargs)

    def output(self):
        return self.log.read_text(errors="replace")

    def wait_for_output(self, pattern, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output())
            if match:
                return match
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.process.args[0]} did not print {pattern!r}: {self.output()[-2000:]}")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def redis(host, directory):
    port = free_port(host)
    process = Process(["redis-server", "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no",
                       "--protected-mode", "no", "--dir", str(directory)], pathlib.Path(directory) / "redis.log")
    process.wait_for_output(r"Ready to accept connections")
    process.url = f"redis://{host}:{port}"
    return process


def mongodb(host, directory):
    process = Process(["secantusd-py", "--host", host, "--port", "0", "--storage-path", ":memory:"],
                      pathlib.Path(directory) / "mongodb.log", stdin=subprocess.DEVNULL)
    port = process.wait_for_output(r"listening on \S*?:(\d+)").group(1)
    process.uri = f"mongodb://{host}:{port}/roomcast"
    return process


def s3(host, directory, binary):
    """The recorder tests' S3 server (s3s + s3s-fs, signatures checked) as a process."""
    process = Process([str(binary), f"{host}:0"], pathlib.Path(directory) / "s3.log", stdin=subprocess.PIPE)
    line = process.wait_for_output(r"(\{.*\"endpoint\".*\})").group(1)
    process.settings = json.loads(line)
    process.bucket_dir = pathlib.Path(process.settings["dir"])
    return process


def missing_tools():
    return [tool for tool in ("podman", "ip", "openssl", "redis-server", "secantusd-py", "ffmpeg", "ffprobe", "node")
            if shutil.which(tool) is None]

"""The runtime image that scripts/image.sh builds: its package and plugin lists agree with the
Dockerfile and the media worker's pipelines, it holds only the listed plugins, its SBOM is true
to its packages and Cargo.lock, and `roomcast dev` runs in it under the pod's restrictions
(read-only root, uid 10001, no capabilities), serves a decodable 3-rung ladder of an ffmpeg
publish and records the session with a GStreamer poster (the image has no ffmpeg).

The image tests need podman and the image (`scripts/install-deps.sh image`, `scripts/image.sh`):
without them they skip on a developer's machine and fail under CI=true.
"""

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLUGIN_DIR = "/usr/lib/x86_64-linux-gnu/gstreamer-1.0"
# The pod's restrictions (charts/roomcast: readOnlyRootFilesystem, runAsUser 10001, drop ALL,
# no privilege escalation, an emptyDir at /tmp).
RESTRICTED = ["--read-only", "--user", "10001:10001", "--cap-drop=ALL",
              "--security-opt=no-new-privileges", "--tmpfs", "/tmp", "--network", "host"]
LADDER = """\
apiVersion: roomcast.dev/v1alpha1
kind: StreamRoom
metadata: {name: lobby, namespace: shows}
spec:
  transcode:
    segmentSeconds: 1
    renditions:
      - {name: source}
      - {name: 360p, height: 360, videoKbps: 800, audioKbps: 96}
      - {name: 240p, height: 240, videoKbps: 400, audioKbps: 64}
"""


def list_rows(path):
    rows = []
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            rows.append(line.split())
    return rows


def rust_str_array(path, name):
    """The string literals of `pub const NAME: &[&str] = &[...]` in a Rust source file."""
    text = (ROOT / path).read_text()
    body = re.search(rf"const {name}: &\[&str\] = &\[(.*?)\];", text, re.S)
    assert body, f"{name} not found in {path}"
    return re.findall(r'"([^"]+)"', body.group(1))


def dockerfile_runtime_packages():
    """Packages of the Dockerfile's runtime stage (its last `apt-get install`)."""
    text = (ROOT / "Dockerfile").read_text()
    runtime = text[text.rindex("\nFROM "):]
    install = re.search(r"--no-install-recommends(.*?)&&", runtime, re.S)
    assert install, "no apt-get install in the Dockerfile's runtime stage"
    return sorted(install.group(1).replace("\\", " ").split())


def test_dockerfile_installs_the_packages_the_local_build_installs():
    assert dockerfile_runtime_packages() == sorted(r[0] for r in list_rows("image/packages.txt"))


def test_kept_plugins_cover_every_element_the_media_worker_makes():
    kept = {element for row in list_rows("image/plugins.txt") for element in row[1:-1]}
    used = set(rust_str_array("workers/media/src/transcode/pipeline.rs", "REQUIRED_ELEMENTS"))
    used |= set(rust_str_array("workers/media/src/transcode/poster.rs", "POSTER_ELEMENTS"))
    assert sorted(used - kept) == [], "add these elements' plugins to image/plugins.txt"


def test_plugins_list_names_the_file_each_element_comes_from():
    """The mapping element -> plugin file in image/plugins.txt is GStreamer's, not a guess."""
    if shutil.which("gst-inspect-1.0") is None:
        pytest.skip("gst-inspect-1.0 (gstreamer1.0-tools) is missing")
    for row in list_rows("image/plugins.txt"):
        plugin, elements = row[0], row[1:-1]
        for element in elements:
            out = subprocess.run(["gst-inspect-1.0", element], capture_output=True, text=True)
            m = re.search(r"^\s*Filename\s+(\S+)", out.stdout, re.M)
            assert m, f"{element}: not installed here"
            assert os.path.basename(m.group(1)) == plugin, f"{element} lives in {m.group(1)}"


def in_ci():
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def need(ok, what):
    """Skip without `what` on a developer's machine; in CI every image tool is installed."""
    if not ok:
        (pytest.fail if in_ci() else pytest.skip)(f"{what} (scripts/install-deps.sh image, scripts/image.sh)")


@pytest.fixture(scope="module")
def image():
    need(shutil.which("podman") is not None, "podman is missing")
    os.environ["CONTAINERS_CONF"] = str(ROOT / "image/containers.conf")
    name = subprocess.run(["bash", str(ROOT / "scripts/image.sh"), "--name"],
                          capture_output=True, text=True, check=True).stdout.strip()
    exists = subprocess.run(["podman", "image", "exists", name]).returncode == 0
    need(exists, f"the image {name} is not built")
    return name


def run_in(image, *command):
    """Run `command` in a throwaway container with the pod's restrictions; its stdout."""
    out = subprocess.run(["podman", "run", "--rm", *RESTRICTED, image, *command],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{command}: {out.stderr}"
    return out.stdout


def test_image_holds_only_the_listed_plugins(image):
    present = run_in(image, "ls", PLUGIN_DIR).split()
    assert sorted(present) == sorted(r[0] for r in list_rows("image/plugins.txt"))


def test_every_binary_and_plugin_in_the_image_finds_its_libraries(image):
    out = run_in(image, "sh", "-c", f"ldd /usr/local/bin/* {PLUGIN_DIR}/*.so")
    assert "/usr/local/bin/roomcast:" in out
    assert "not found" not in out, [line for line in out.splitlines() if "not found" in line]


def test_image_has_no_ffmpeg_and_no_documentation(image):
    assert run_in(image, "sh", "-c", "command -v ffmpeg || true").strip() == ""
    # Man pages, translations and docs are left out, except the copyright files and ours.
    docs = run_in(image, "find", "/usr/share/man", "/usr/share/locale",
                  "/usr/share/doc", "-type", "f", "!", "-name", "copyright",
                  "!", "-path", "/usr/share/doc/roomcast/*")
    assert docs.split() == []


def test_image_runs_as_the_dockerfile_says(image):
    config = json.loads(subprocess.run(["podman", "image", "inspect", image], check=True,
                                       capture_output=True, text=True).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Cmd"] == ["roomcast-operator", "run"]
    assert "GST_REGISTRY=/tmp/gstreamer-1.0-registry.bin" in config["Env"]
    assert set(config["ExposedPorts"]) == {"8080/tcp", "1935/tcp", "1936/tcp", "9090/tcp"}


def test_every_server_binary_starts_in_the_image(image):
    """Each binary the chart or the operator runs answers `--help` under the pod's
    restrictions (its libraries load, its flags parse)."""
    for binary in ("roomcast-operator", "roomcast-media", "roomcast-chat", "roomcast-ingest"):
        out = run_in(image, binary, "--help")
        assert "Usage:" in out, f"{binary}: {out}"
    ingest = run_in(image, "roomcast-ingest", "--help")
    for flag in ("--rtmps-listen", "--tls-cert-file", "--routes-configmap", "--proxy-protocol",
                 "--drain-seconds", "--key-attempts-per-minute"):
        assert flag in ingest, flag


def cargo_lock_versions():
    text = (ROOT / "Cargo.lock").read_text()
    versions = {}
    for name, version in re.findall(r'\[\[package\]\]\nname = "([^"]+)"\nversion = "([^"]+)"', text):
        versions.setdefault(name, set()).add(version)
    return versions


def test_sbom_lists_the_debian_packages_and_the_crates_of_the_image(image):
    sbom = json.loads(run_in(image, "cat", "/usr/share/doc/roomcast/sbom.spdx.json"))
    assert sbom["spdxVersion"] == "SPDX-2.3"
    listed = {(p["name"], p["versionInfo"]) for p in sbom["packages"]}
    # Every installed Debian package, at its installed version, and nothing purged.
    dpkg = run_in(image, "dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n")
    installed = {tuple(line.split()[:2]) for line in dpkg.splitlines() if line.split()[2] == "ii"}
    debs = {(p["name"], p["versionInfo"]) for p in sbom["packages"]
            if p["SPDXID"].startswith("SPDXRef-deb-")}
    assert debs == installed
    assert any(name == "gstreamer1.0-plugins-base" for name, _ in debs)
    # Crates at Cargo.lock's versions, the patched path crates included.
    lock = cargo_lock_versions()
    for crate in ("tokio", "rml_rtmp", "gstreamer", "roomcast-media"):
        versions = {v for n, v in listed if n == crate}
        assert versions and versions <= lock[crate], f"{crate}: {versions} vs {lock[crate]}"
    ids = [p["SPDXID"] for p in sbom["packages"]]
    assert len(ids) == len(set(ids)), "SPDX ids must be unique"


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Container:
    """`roomcast dev` in the image with the pod's restrictions; the data dir is a host folder."""

    def __init__(self, image, workdir):
        self.name = f"roomcast-image-test-{os.getpid()}"
        self.http, self.rtmp = free_port(), free_port()
        (workdir / "rooms.yaml").write_text(LADDER)
        data = workdir / "data"
        data.mkdir()
        os.chown(data, 10001, 10001)
        self.data = data
        self.proc = subprocess.Popen(
            ["podman", "run", "--rm", "--name", self.name, *RESTRICTED,
             "-v", f"{workdir / 'rooms.yaml'}:/etc/roomcast/rooms.yaml:ro,Z",
             "-v", f"{data}:/data:Z", "-e", "RUST_LOG=info", image,
             "roomcast", "dev", "-f", "/etc/roomcast/rooms.yaml", "--data-dir", "/data",
             "--http-addr", f"127.0.0.1:{self.http}", "--rtmp-addr", f"127.0.0.1:{self.rtmp}",
             "--rtmps-addr", "127.0.0.1:0", "--speed-preset", "ultrafast"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.key = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if m := re.search(r"rtmp://127\.0\.0\.1:\d+/live\s+stream key (\S+)", line):
                self.key = m.group(1)

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.http}/healthz", timeout=2)
                if self.key:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("roomcast dev did not start in the image:\n" + "\n".join(self.lines))

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            subprocess.run(["podman", "rm", "-f", self.name], capture_output=True)
            self.proc.wait(timeout=30)


def fetch(url):
    return urllib.request.urlopen(url, timeout=5).read().decode()


def wait_for_segments(url, count, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if fetch(url).count("#EXTINF") >= count:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url}: fewer than {count} segments in {timeout} s")


def probe(url):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,height",
                          "-of", "json", url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["streams"]


def test_roomcast_dev_in_the_image_serves_the_ladder_and_records_a_poster(image):
    need(shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None,
         "ffmpeg/ffprobe are missing")
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="roomcast-image-"))
    container = Container(image, workdir)
    publisher = None
    try:
        container.wait_ready()
        started = list(container.lines)
        # No warning at start under a read-only root (Fontconfig, GStreamer, our own WARN).
        noisy = [line for line in started
                 if re.search(r"(?i:fontconfig)|\bWARN\b|\bERROR\b|WARNING|CRITICAL", line)]
        assert noisy == [], noisy
        publisher = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
             "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=15",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
             "-t", "8", "-c:v", "libx264", "-preset", "ultrafast", "-g", "15",
             "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv",
             f"rtmp://127.0.0.1:{container.rtmp}/live/{container.key}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        base = f"http://127.0.0.1:{container.http}/shows/lobby/hls"
        for rung, height in (("source", 360), ("360p", 360), ("240p", 240)):
            wait_for_segments(f"{base}/{rung}/index.m3u8", 2)
            streams = probe(f"{base}/{rung}/index.m3u8")
            video = [s for s in streams if s["codec_type"] == "video"]
            assert video and video[0]["height"] == height, (rung, streams)
            assert any(s["codec_type"] == "audio" for s in streams), (rung, streams)
        assert publisher.wait(timeout=60) == 0, publisher.stderr.read()
        # The session ends with the publish; its recording is finalised with a poster.
        deadline = time.monotonic() + 60
        posters = []
        while time.monotonic() < deadline and not posters:
            posters = list((container.data / "recordings").glob("shows/lobby/*/poster.jpg"))
            time.sleep(0.5)
        assert posters, "no poster.jpg:\n" + "\n".join(container.lines)
        jpeg = posters[0].read_bytes()
        assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    finally:
        if publisher and publisher.poll() is None:
            publisher.kill()
        container.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    assert container.proc.returncode == 0, "\n".join(container.lines)

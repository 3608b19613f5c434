#!/usr/bin/env python3
"""Trims the runtime root filesystem that scripts/image.sh made with mmdebstrap, in place:

1. deletes every GStreamer plugin that image/plugins.txt does not name;
2. purges (dpkg --purge) every package outside the base system (Priority required) and
   image/packages.txt that nothing kept needs, where "needed" is proven by ldd over what stays
   (the kept plugins, gst-plugin-scanner, and every ELF file of the kept packages); data-only
   packages stay when a kept library package depends on them, since ldd cannot see their use;
3. checks that ldd still resolves every kept plugin.

dpkg's status stays true to what the image holds (purged packages are gone from it), so the SBOM
built from it lists exactly the installed packages. Prints the sizes before and after as JSON
lines for scripts/image.sh's report.

    image_trim.py ROOTFS image/plugins.txt image/packages.txt
    image_trim.py --report REPORT.jsonl...     one line of sizes from those JSON lines
"""

import json
import os
import pathlib
import re
import subprocess
import sys

PLUGIN_DIR = "usr/lib/x86_64-linux-gnu/gstreamer-1.0"
SCANNER = "/usr/lib/x86_64-linux-gnu/gstreamer1.0/gstreamer-1.0/gst-plugin-scanner"
# Kept whatever ldd says: GStreamer itself (core elements, the plugin scanner).
ALWAYS_KEEP = {"libgstreamer1.0-0"}
# Still there after the purge: what a read-only root needs no more of (caches, logs, apt lists).
CLEAN = ["usr/share/info", "var/cache/apt", "var/cache/debconf/templates.dat-old", "var/lib/apt/lists", "var/log"]


def read_list(path):
    """Non-comment lines of a list file, split into columns."""
    rows = []
    for line in pathlib.Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            rows.append(line.split())
    return rows


def du(root):
    """Apparent size in bytes of every regular file under root (hard links once)."""
    seen, total = set(), 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def usr_path(path):
    """/lib/x -> /usr/lib/x: bookworm's merged /usr, as dpkg lists and ldd print both."""
    for top in ("/lib/", "/lib64/", "/bin/", "/sbin/"):
        if path.startswith(top):
            return "/usr" + path
    return path


def parse_status(root):
    """dpkg status of the rootfs: package -> its fields."""
    text = (root / "var/lib/dpkg/status").read_text()
    packages = {}
    for para in text.strip().split("\n\n"):
        fields, key = {}, None
        for line in para.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if "installed" in fields.get("Status", "").split():
            packages[fields["Package"]] = fields
    return packages


def depends_of(fields):
    """Package names of Depends and Pre-Depends (first of each alternative, no versions)."""
    names = []
    for key in ("Depends", "Pre-Depends"):
        for dep in fields.get(key, "").split(","):
            dep = dep.strip()
            if dep:
                names.append(re.split(r"[\s(:|]", dep, maxsplit=1)[0])
    return names


def files_of(root, package):
    for name in (f"{package}.list", f"{package}:amd64.list"):
        path = root / "var/lib/dpkg/info" / name
        if path.exists():
            return [line for line in path.read_text().splitlines() if line]
    return []


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def resolve(root, path):
    """realpath of `path` as the rootfs sees it: absolute link targets (Debian's alternatives,
    /lib -> usr/lib) point into root, not into the host."""
    for _ in range(40):
        host = root / path.lstrip("/")
        if not host.is_symlink():
            parent = os.path.dirname(path)
            if parent != "/" and parent:
                parent = resolve(root, parent)
            return os.path.normpath(os.path.join(parent, os.path.basename(path)))
        target = os.readlink(host)
        path = target if target.startswith("/") else os.path.join(os.path.dirname(path), target)
        path = os.path.normpath(path)
    raise SystemExit(f"image_trim: symlink loop at {path}")


LDD_CACHE = {}


def ldd(root, paths, cached=True):
    """Every library path (merged-/usr form, link and target) that ldd resolves for `paths`
    inside root; exits when one does not resolve. One chroot for all paths not yet seen."""
    todo = sorted(p for p in paths if not (cached and p in LDD_CACHE))
    if todo:
        script = 'for f in "$@"; do echo "==> $f"; ldd "$f" 2>&1; done'
        out = subprocess.run(
            ["chroot", str(root), "sh", "-c", script, "sh", *todo],
            capture_output=True, text=True, check=True,
        ).stdout
        current = None
        for line in out.splitlines():
            if line.startswith("==> "):
                current = line[4:]
                LDD_CACHE[current] = set()
            elif current:
                LDD_CACHE[current].add(line.strip())
    needed, missing = set(), []
    for path in paths:
        for line in LDD_CACHE[path]:
            if "not found" in line:
                missing.append(f"{path}: {line}")
            m = re.search(r"=>\s+(/\S+)", line) or re.match(r"(/\S+)\s+\(", line)
            if m:
                needed.add(usr_path(m.group(1)))
                needed.add(usr_path(resolve(root, m.group(1))))
    if missing:
        raise SystemExit("image_trim: unresolved libraries:\n  " + "\n  ".join(sorted(missing)))
    return needed


def print_report(paths):
    r = {}
    for path in paths:
        for line in pathlib.Path(path).read_text().splitlines():
            r.update(json.loads(line))

    def mb(key):
        return f"{r[key] / 1e6:.0f} MB" if key in r else "?"

    print(
        f"==> rootfs {mb('rootfs_bytes_installed')} installed, {mb('rootfs_bytes_trimmed')} "
        f"trimmed ({r.get('plugins_kept')} plugins kept, {len(r.get('packages_purged', []))} "
        f"packages purged); image {mb('image_bytes')}, OCI archive {mb('oci_archive_bytes')} "
        "(gzipped layers)"
    )


def main():
    if sys.argv[1] == "--report":
        return print_report(sys.argv[2:])
    root = pathlib.Path(sys.argv[1]).resolve()
    plugins = {row[0] for row in read_list(sys.argv[2])}
    top_level = {row[0] for row in read_list(sys.argv[3])}
    report = {"rootfs_bytes_installed": du(root)}

    plugin_dir = root / PLUGIN_DIR
    present = {p.name for p in plugin_dir.iterdir()}
    absent = sorted(plugins - present)
    if absent:
        raise SystemExit(f"image_trim: plugins.txt names plugins the packages lack: {absent}")
    for name in sorted(present - plugins):
        (plugin_dir / name).unlink()
    report["plugins_kept"] = len(plugins)
    report["plugins_deleted"] = len(present - plugins)
    report["rootfs_bytes_plugins_trimmed"] = du(root)

    status = parse_status(root)
    base = {
        name
        for name, f in status.items()
        if f.get("Priority") == "required" or f.get("Essential") == "yes"
    }
    keep = base | top_level | ALWAYS_KEEP
    owner = {}
    for package in status:
        for path in files_of(root, package):
            owner.setdefault(usr_path(path), set()).add(package)

    def elf_files(packages):
        return {
            path
            for package in packages
            for path in files_of(root, package)
            if (root / path.lstrip("/")).is_file()
            and not (root / path.lstrip("/")).is_symlink()
            and is_elf(root / path.lstrip("/"))
            # Deleted plugins are gone; the kept ones are listed below.
            and f"/{PLUGIN_DIR}/" not in usr_path(path)
        }

    roots = {f"/{PLUGIN_DIR}/{p}" for p in plugins} | {SCANNER}
    while True:
        needed = ldd(root, roots | elf_files(keep))
        grown = set(keep)
        for lib in needed:
            grown |= owner.get(lib, set())
        # Data packages (no ELF file) that a kept library package depends on: configuration
        # and tables that libraries read at run time, which ldd cannot see. Not followed from
        # the base system, which is whole already (following it would keep usrmerge and perl).
        for package in list(grown - base):
            for dep in depends_of(status[package]):
                if dep in status and not elf_files({dep}):
                    grown.add(dep)
        if grown == keep:
            break
        keep = grown

    purge = sorted(set(status) - keep)
    if purge:
        out = subprocess.run(
            ["chroot", str(root), "dpkg", "--purge", "--force-depends", *purge],
            capture_output=True, text=True,
        )
        if out.returncode != 0:
            raise SystemExit(f"image_trim: dpkg --purge failed:\n{out.stdout}{out.stderr}")
    for rel in CLEAN:
        subprocess.run(["rm", "-rf", str(root / rel)], check=True)
    # Everything kept still resolves after the purge.
    ldd(root, roots | elf_files(keep), cached=False)
    report["packages_kept"] = len(keep)
    report["packages_purged"] = purge
    report["rootfs_bytes_trimmed"] = du(root)
    print(json.dumps(report))


if __name__ == "__main__":
    main()

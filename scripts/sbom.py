#!/usr/bin/env python3
"""The image's SBOM (SPDX 2.3 JSON): the Debian packages of its root filesystem and the Rust
crates compiled into its binaries.

    sbom.py debian ROOTFS                       installed packages of ROOTFS as JSON (name,
                                                version, arch, source, Debian licence names)
    sbom.py spdx --debian FILE --name N --version V
                                                SPDX document: FILE's packages + the crates of
                                                `cargo metadata --locked` (run in the workspace)

Crates are those the workspace members reach through normal dependencies on
x86_64-unknown-linux-gnu: dev-dependencies and build scripts do not ship in the binaries.
"""

import argparse
import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys
import time

# Debian copyright (DEP-5) licence names -> SPDX identifiers, for the ones the image holds most.
# A name outside this table keeps the package's licenseDeclared at NOASSERTION; the Debian
# names are always in licenseComments.
SPDX_IDS = {
    "Apache-2.0": "Apache-2.0",
    "Artistic": "Artistic-1.0-Perl",
    "BSD-2-clause": "BSD-2-Clause",
    "BSD-3-clause": "BSD-3-Clause",
    "BSD-4-clause": "BSD-4-Clause",
    "Expat": "MIT",
    "MIT": "MIT",
    "GPL-1+": "GPL-1.0-or-later",
    "GPL-2": "GPL-2.0-only",
    "GPL-2+": "GPL-2.0-or-later",
    "GPL-3": "GPL-3.0-only",
    "GPL-3+": "GPL-3.0-or-later",
    "LGPL-2": "LGPL-2.0-only",
    "LGPL-2+": "LGPL-2.0-or-later",
    "LGPL-2.1": "LGPL-2.1-only",
    "LGPL-2.1+": "LGPL-2.1-or-later",
    "LGPL-3": "LGPL-3.0-only",
    "LGPL-3+": "LGPL-3.0-or-later",
    "MPL-2.0": "MPL-2.0",
    "ISC": "ISC",
    "Zlib": "Zlib",
    "zlib": "Zlib",
    "X11": "X11",
    "CC0-1.0": "CC0-1.0",
    "IJG": "IJG",
    "Apache-2": "Apache-2.0",
    "BSD-1-clause": "BSD-1-Clause",
    "FSFAP": "FSFAP",
    "GPL-3+ with Bison exception": "GPL-3.0-or-later WITH Bison-exception-2.2",
    "public-domain": None,
}
SPDX_IDS.update({name.lower(): spdx for name, spdx in list(SPDX_IDS.items())})
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"


def status_packages(root):
    text = (pathlib.Path(root) / "var/lib/dpkg/status").read_text()
    for para in text.strip().split("\n\n"):
        fields = {}
        for line in para.splitlines():
            if not line.startswith((" ", "\t")) and ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if "installed" in fields.get("Status", "").split():
            yield fields


def debian_licences(root, package):
    """Licence names of the package's DEP-5 copyright file, in order of first mention."""
    path = pathlib.Path(root) / "usr/share/doc" / package / "copyright"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    names = []
    for m in re.finditer(r"^License:[ \t]*(\S[^\n]*)$", text, re.MULTILINE):
        for name in re.split(r"\s+(?:or|and)\s+|\s*,\s*", m.group(1).strip()):
            name = name.strip()
            if name and name not in names:
                names.append(name)
    return names


def debian(root):
    packages = []
    for f in status_packages(root):
        packages.append(
            {
                "name": f["Package"],
                "version": f["Version"],
                "arch": f.get("Architecture", ""),
                "source": f.get("Source", f["Package"]).split(" ")[0],
                "licences": debian_licences(root, f["Package"]),
            }
        )
    return sorted(packages, key=lambda p: p["name"])


def crates():
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--locked", "--format-version", "1",
             "--filter-platform", "x86_64-unknown-linux-gnu"],
            check=True, capture_output=True, text=True,
        ).stdout
    )
    by_id = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    shipped, todo = set(), list(meta["workspace_members"])
    while todo:
        pid = todo.pop()
        if pid in shipped:
            continue
        shipped.add(pid)
        for dep in nodes[pid]["deps"]:
            if any(k["kind"] is None for k in dep["dep_kinds"]):
                todo.append(dep["pkg"])
    return sorted((by_id[pid] for pid in shipped), key=lambda p: (p["name"], p["version"]))


def spdx_id(kind, name, version):
    clean = re.sub(r"[^A-Za-z0-9.-]", "-", f"{name}-{version}")
    return f"SPDXRef-{kind}-{clean}"


def licence_expression(names):
    ids = [SPDX_IDS.get(n, SPDX_IDS.get(n.lower())) for n in names]
    if not names or any(i is None for i in ids):
        return "NOASSERTION"
    unique = list(dict.fromkeys(ids))
    return unique[0] if len(unique) == 1 else " AND ".join(unique)


def created():
    """The document's time: SOURCE_DATE_EPOCH, else the last commit's, so an unchanged tree
    gives the same bytes (scripts/image.sh skips rebuilding on unchanged inputs)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        out = subprocess.run(["git", "log", "-1", "--format=%ct"], capture_output=True, text=True)
        epoch = out.stdout.strip() or str(int(time.time()))
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def spdx(debian_file, name, version):
    debs = json.loads(pathlib.Path(debian_file).read_text())
    image_id = "SPDXRef-image"
    packages = [
        {
            "SPDXID": image_id,
            "name": name,
            "versionInfo": version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "Apache-2.0",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "CONTAINER",
        }
    ]
    for d in debs:
        packages.append(
            {
                "SPDXID": spdx_id("deb", d["name"], d["version"]),
                "name": d["name"],
                "versionInfo": d["version"],
                "supplier": "Organization: Debian",
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": licence_expression(d["licences"]),
                "licenseComments": "Debian copyright file: " + (", ".join(d["licences"]) or "none"),
                "copyrightText": "NOASSERTION",
                "sourceInfo": f"Debian source package {d['source']}",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": f"pkg:deb/debian/{d['name']}@{d['version']}"
                        f"?arch={d['arch']}&distro=debian-12",
                    }
                ],
            }
        )
    for c in crates():
        source = c.get("source")
        packages.append(
            {
                "SPDXID": spdx_id("crate", c["name"], c["version"]),
                "name": c["name"],
                "versionInfo": c["version"],
                "downloadLocation": (
                    f"https://crates.io/api/v1/crates/{c['name']}/{c['version']}/download"
                    if source == CRATES_IO
                    else "NOASSERTION"
                ),
                "filesAnalyzed": False,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": (c.get("license") or "NOASSERTION").replace("/", " OR "),
                "copyrightText": "NOASSERTION",
                # Path crates are the workspace and its patched copies in third_party/.
                "sourceInfo": source or "path: this repository",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": f"pkg:cargo/{c['name']}@{c['version']}",
                    }
                ],
            }
        )
    digest = hashlib.sha256(
        json.dumps([(p["name"], p["versionInfo"]) for p in packages]).encode()
    ).hexdigest()[:16]
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": f"https://roomcast.dev/spdx/{name}-{digest}",
        "creationInfo": {"created": created(), "creators": ["Tool: roomcast-scripts-sbom.py"]},
        "documentDescribes": [image_id],
        "packages": packages,
        "relationships": [
            {"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": p["SPDXID"]}
            for p in packages[1:]
        ],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    deb = sub.add_parser("debian")
    deb.add_argument("rootfs")
    doc = sub.add_parser("spdx")
    doc.add_argument("--debian", required=True)
    doc.add_argument("--name", required=True)
    doc.add_argument("--version", required=True)
    args = parser.parse_args()
    out = debian(args.rootfs) if args.command == "debian" else spdx(args.debian, args.name, args.version)
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

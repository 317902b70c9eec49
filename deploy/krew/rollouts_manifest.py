"""The krew plugin manifest of `kubectl rollouts`, written from the release archives.

    python deploy/krew/rollouts_manifest.py --version 0.1.0 \\
        --homepage https://example.org/rollouts \\
        --uri-base https://example.org/rollouts/releases/download/v0.1.0 \\
        dist/kubectl-rollouts_linux_amd64.tar.gz dist/kubectl-rollouts_darwin_arm64.tar.gz \\
        > rollouts.yaml
    kubectl krew install --manifest=rollouts.yaml --archive=dist/kubectl-rollouts_linux_amd64.tar.gz

Each archive is named ``kubectl-rollouts_OS_ARCH.tar.gz`` and holds the executables
``kubectl-rollouts`` and ``kubectl_complete-rollouts`` (kubectl's shell completion of the
plugin) at its top, and may hold more (``make krew``'s holds ``wheels/``, which the launcher
installs from); the manifest gets the sha256 of each archive as krew requires, so it is
written for the exact files published.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import tarfile
from pathlib import Path
from typing import Any

import yaml

NAME = "rollouts"
BIN = "kubectl-rollouts"
COMPLETION = "kubectl_complete-rollouts"
ARCHIVE = re.compile(r"^kubectl-rollouts_(linux|darwin|windows)_(amd64|arm64)\.tar\.gz$")


def platform(archive: Path, uri_base: str) -> dict[str, Any]:
    m = ARCHIVE.match(archive.name)
    if not m:
        raise ValueError(f"{archive.name}: expected kubectl-rollouts_OS_ARCH.tar.gz")
    with tarfile.open(archive) as tar:
        members = {t.name.removeprefix("./"): t for t in tar.getmembers()}
    for exe in (BIN, COMPLETION):
        t = members.get(exe)
        if t is None or not t.isfile() or not t.mode & 0o111:
            raise ValueError(f"{archive.name}: no executable {exe} at the top of the archive")
    # krew installs only what `files` names: the two executables, and the archive's top-level
    # directories (make krew's wheels/, which the launcher installs from on its first run)
    dirs = sorted({n.split("/", 1)[0] for n, t in members.items()
                   if ("/" in n.strip("/") or t.isdir()) and n.split("/", 1)[0] not in ("", ".")})
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    return {
        "selector": {"matchLabels": {"os": m.group(1), "arch": m.group(2)}},
        "uri": f"{uri_base.rstrip('/')}/{archive.name}",
        "sha256": digest,
        "files": [{"from": f, "to": "."} for f in (BIN, COMPLETION, *dirs)],
        "bin": BIN,
    }


def manifest(version: str, homepage: str, uri_base: str, archives: list[Path]) -> dict[str, Any]:
    if not re.match(r"^\d+\.\d+\.\d+", version.removeprefix("v")):
        raise ValueError(f"version {version!r}: expected semantic versioning, e.g. 0.1.0")
    if not archives:
        raise ValueError("no archive given")
    return {
        "apiVersion": "krew.googlecontainertools.github.com/v1alpha2",
        "kind": "Plugin",
        "metadata": {"name": NAME},
        "spec": {
            "version": "v" + version.removeprefix("v"),
            "homepage": homepage,
            "shortDescription": "Progressive delivery: canary and blue-green rollouts",
            "description": (
                "Watch and judge rollouts.dev Rollouts: `kubectl rollouts get rollout NAME -w`\n"
                "shows the revisions, ReplicaSets, pods and AnalysisRuns with the judge's\n"
                "verdict; promote, abort, retry, pause, resume, undo, restart and set image\n"
                "act with your own credentials.\n"),
            "caveats": (
                "This plugin needs python3 >= 3.11 with its venv module on the host. Its first\n"
                "run installs the wheels it carries into a virtualenv of its own,\n"
                "${XDG_DATA_HOME:-~/.local/share}/kubectl-rollouts/<version> (about 370 MB),\n"
                "offline with CPython 3.11 on the archive's platform; another Python version\n"
                "fetches its compiled dependencies from the package index. ROLLOUTS_PYTHON\n"
                "chooses the interpreter.\n"
                "The rollouts controller must run in the cluster (see the project's Helm chart).\n"
                f"Shell completion of `kubectl rollouts` (kubectl 1.26+): put {COMPLETION},\n"
                "installed next to the plugin, on your PATH.\n"),
            "platforms": [platform(a, uri_base) for a in archives],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (description, caveats) as literal blocks, as krew-index writes them."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _str)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--version", required=True)
    ap.add_argument("--homepage", required=True)
    ap.add_argument("--uri-base", required=True, help="URL the archives are published under")
    ap.add_argument("archives", nargs="+", type=Path)
    a = ap.parse_args(argv)
    try:
        doc = manifest(a.version, a.homepage, a.uri_base, a.archives)
    except (OSError, ValueError, tarfile.TarError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.dump(doc, Dumper=_Dumper, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

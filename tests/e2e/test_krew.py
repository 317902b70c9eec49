"""The krew plugin archive of `make krew` (issue 15), installed the way krew installs it.

What a user checks: `kubectl krew install --manifest=rollouts.yaml --archive=...` accepts
the archive (its sha256 is the manifest's), installs the files the manifest names, links
the `bin` into krew's bin directory, and `kubectl rollouts version` then runs; kubectl's
completion executable answers too. The archive is not self-contained: its first run
installs the wheels it carries into a virtualenv with the host's python3 (the manifest's
caveats say so); here offline, which proves the archive carries every wheel it needs.

No kubectl or krew binary runs here: krew's steps are done by hand as its installer does
them (check the sha256, unpack, move each `files` entry into the install directory, link
`bin`). Building the archive reuses the image's builder stage (`make setup` builds it), so
it takes seconds; the first run's install takes some more.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import tarfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
VERSION = next(line.split('"')[1] for line in (REPO / "pyproject.toml").read_text().splitlines()
               if line.startswith("version = "))
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]


def test_the_krew_archive_installs_as_krew_does_and_runs(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    r = subprocess.run(["bash", str(REPO / "deploy/krew/build.sh"), "--out", str(out)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    manifest = yaml.safe_load((out / "rollouts.yaml").read_text())
    assert manifest["kind"] == "Plugin" and manifest["metadata"]["name"] == "rollouts"
    assert manifest["spec"]["version"] == f"v{VERSION}"
    assert "python3 >= 3.11" in manifest["spec"]["caveats"]  # honest: not self-contained
    (plat,) = manifest["spec"]["platforms"]
    assert plat["selector"] == {"matchLabels": {"os": "linux", "arch": ARCH}}
    archive = out / plat["uri"].rsplit("/", 1)[1]
    assert archive.name == f"kubectl-rollouts_linux_{ARCH}.tar.gz"

    # krew: the archive's sha256 must be the manifest's, or nothing is installed
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == plat["sha256"]
    download = tmp_path / "download"
    with tarfile.open(archive) as t:
        t.extractall(download, filter="data")
    install = tmp_path / "krew" / "store" / "rollouts" / manifest["spec"]["version"]
    install.mkdir(parents=True)
    for f in plat["files"]:  # each `from` a path in the archive, moved under its own name
        assert f["to"] == "."
        (download / f["from"]).rename(install / Path(f["from"]).name)
    krew_bin = tmp_path / "krew" / "bin"
    krew_bin.mkdir()
    (krew_bin / "kubectl-rollouts").symlink_to(install / plat["bin"])
    assert {p.name for p in install.iterdir()} == {
        "kubectl-rollouts", "kubectl_complete-rollouts", "wheels"}

    # a user's environment: no pip settings of this machine; offline (PIP_NO_INDEX), so the
    # install must come from the wheels in the archive
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    env.update(HOME=str(tmp_path / "home"), PIP_NO_INDEX="1",
               PATH=f"{krew_bin}:{env.get('PATH', '/usr/bin:/bin')}")
    env.pop("XDG_DATA_HOME", None)
    r = subprocess.run(["kubectl-rollouts", "version"], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == f"rollouts {VERSION}"
    assert "first run: installing" in r.stderr
    assert (tmp_path / "home/.local/share/kubectl-rollouts" / VERSION / ".complete").is_file()

    # the second run starts at once from the virtualenv
    t0 = time.monotonic()
    r = subprocess.run(["kubectl-rollouts", "version"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"rollouts {VERSION}", r.stderr
    assert "first run" not in r.stderr and time.monotonic() - t0 < 20

    # kubectl's completion of the plugin, installed next to it as the caveats say
    r = subprocess.run([str(install / "kubectl_complete-rollouts"), ""], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert any(line.startswith("promote\t") for line in r.stdout.splitlines()), r.stdout


def test_a_host_python_older_than_3_11_is_refused_with_a_message(tmp_path: Path) -> None:
    launcher = tmp_path / "kubectl-rollouts"
    launcher.write_text((REPO / "deploy/krew/kubectl-rollouts").read_text()
                        .replace("@VERSION@", VERSION))
    launcher.chmod(0o755)
    old = tmp_path / "python3"  # a stand-in interpreter that reports 3.10
    old.write_text("#!/bin/sh\n[ \"$1\" = -V ] && { echo 'Python 3.10.12'; exit 0; }\nexit 1\n")
    old.chmod(0o755)
    env = {"HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "ROLLOUTS_PYTHON": str(old)}
    r = subprocess.run([str(launcher), "version"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1
    assert "Python 3.10.12 is too old: rollouts needs Python 3.11 or newer" in r.stderr
    assert not (tmp_path / "home/.local/share/kubectl-rollouts" / VERSION).exists()

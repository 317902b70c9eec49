"""deploy/krew/rollouts_manifest.py writes a krew plugin manifest from the release
archives: krew's required fields, the sha256 of each archive, both executables (the plugin
and kubectl's completion of it) installed; a wrong archive is refused."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

KREW = Path(__file__).resolve().parents[2] / "deploy" / "krew"


def module() -> Any:
    spec = importlib.util.spec_from_file_location("rollouts_manifest", KREW / "rollouts_manifest.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def archive(path: Path, members: dict[str, int]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, mode in members.items():
            data = (KREW / "kubectl_complete-rollouts").read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return path


def test_manifest_from_archives(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = {"kubectl-rollouts": 0o755, "kubectl_complete-rollouts": 0o755, "LICENSE": 0o644}
    linux = archive(tmp_path / "kubectl-rollouts_linux_amd64.tar.gz", good)
    mac = archive(tmp_path / "kubectl-rollouts_darwin_arm64.tar.gz", good)
    assert module().main(["--version", "0.1.0", "--homepage", "https://example.org/r",
                          "--uri-base", "https://example.org/r/v0.1.0/", str(linux), str(mac)]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    assert doc["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert doc["kind"] == "Plugin" and doc["metadata"]["name"] == "rollouts"
    spec = doc["spec"]
    assert spec["version"] == "v0.1.0" and spec["homepage"] and spec["shortDescription"]
    linux_p, mac_p = spec["platforms"]
    assert linux_p["selector"] == {"matchLabels": {"os": "linux", "arch": "amd64"}}
    assert mac_p["selector"] == {"matchLabels": {"os": "darwin", "arch": "arm64"}}
    assert linux_p["uri"] == "https://example.org/r/v0.1.0/kubectl-rollouts_linux_amd64.tar.gz"
    assert linux_p["sha256"] == hashlib.sha256(linux.read_bytes()).hexdigest()
    # krew runs `kubectl rollouts` as the bin; the completion executable is installed with it
    assert linux_p["bin"] == "kubectl-rollouts"
    assert {f["from"] for f in linux_p["files"]} == {"kubectl-rollouts", "kubectl_complete-rollouts"}


@pytest.mark.parametrize("name, members, error", [
    ("kubectl-rollouts_linux_amd64.tar.gz", {"kubectl-rollouts": 0o755}, "no executable kubectl_complete"),
    ("kubectl-rollouts_linux_amd64.tar.gz",
     {"kubectl-rollouts": 0o644, "kubectl_complete-rollouts": 0o755}, "no executable kubectl-rollouts"),
    ("rollouts-linux.tar.gz", {"kubectl-rollouts": 0o755}, "expected kubectl-rollouts_OS_ARCH"),
])
def test_a_wrong_archive_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
                                    members: dict[str, int], error: str) -> None:
    a = archive(tmp_path / name, members)
    assert module().main(["--version", "0.1.0", "--homepage", "h", "--uri-base", "u", str(a)]) == 1
    captured = capsys.readouterr()
    assert error in captured.err and captured.out == ""

"""The controller's container image and the Python packages (issue 15).

What a user checks: `python -m build` makes a wheel and an sdist that install the
`rollouts` command; the image built from the Dockerfile (an OCI archive, see
docs/install.md) runs as a numeric non-root user on a read-only root filesystem, answers
`rollouts version`, and, started with a kubeconfig, is the controller: `/healthz` and
`/readyz` answer and it rolls a Rollout out on the test bed.

Where it runs: podman (Debian's, runc as the runtime, host network) on this machine; the
container talks to the test bed's API server on 127.0.0.1. `make setup` builds the archive
(testbed/setup.d/70-image.sh runs `make image`'s deploy/image/build.sh: minutes once, then
seconds), so a missing archive is a failure that says how to build it, never a skip.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import sys
import tarfile
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rollouts.kube.apply import apply
from rollouts.kube.client import Kube
from tests.e2e.judgekit import free_port
from tests.e2e.kit import (
    REPO,
    canary_weight,
    eventually,
    phase_is,
    rollout,
    services,
    set_image,
    virtual_service,
)

CACHE = Path(os.environ.get("TESTBED_CACHE", Path.home() / ".cache" / "rollouts-testbed"))
VERSION = next(line.split('"')[1] for line in (REPO / "pyproject.toml").read_text().splitlines()
               if line.startswith("version = "))
ARCHIVE = Path(os.environ.get("IMAGE_ARCHIVE",
                              CACHE / "image" / f"rollouts-controller-{VERSION}.oci.tar"))
IMAGE = f"localhost/rollouts-controller:{VERSION}"
STORE = CACHE / "podman-store"
# this machine's container (cgroups v1 + v2 hybrid, no CAP_SYS_RESOURCE): runc, not crun,
# and limits no higher than ours
PODMAN = ["podman", "--root", str(STORE / "root"), "--runroot", str(STORE / "run"),
          "--storage-driver", "overlay", "--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]


def _podman(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image() -> str:
    """The archive of `make image`, loaded into a podman store of the test cache (again only
    when the archive changed; the layers podman has already, the base's, are skipped)."""
    if not ARCHIVE.is_file():
        pytest.fail(f"no image archive at {ARCHIVE}: `make setup` builds it "
                    "(testbed/setup.d/70-image.sh), or run `make image`")
    if shutil.which("podman") is None or shutil.which("runc") is None:
        pytest.fail("podman and runc are missing: testbed/setup.d/70-image.sh installs them")
    st = ARCHIVE.stat()
    stamp = STORE / "loaded"
    want = f"{ARCHIVE} {st.st_size} {st.st_mtime_ns}"
    if not (stamp.is_file() and stamp.read_text() == want
            and _podman("image", "exists", IMAGE).returncode == 0):
        r = _podman("load", "-q", "-i", str(ARCHIVE), timeout=600)
        assert r.returncode == 0, r.stderr
        # the image this one replaced, untagged now, and its own layers go
        _podman("image", "prune", "-f", timeout=120)
        stamp.write_text(want)
    return IMAGE


def test_the_image_runs_as_a_numeric_non_root_user_with_the_rollouts_entrypoint(image: str) -> None:
    r = _podman("image", "inspect", image)
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)[0]["Config"]
    assert cfg["User"] == "65532:65532"
    assert cfg["Entrypoint"] == ["rollouts"]
    # on a read-only root filesystem with no writable /tmp either
    r = _podman("run", "--rm", "--read-only", "--read-only-tmpfs=false", *LIMITS,
                "--network", "none", image, "version", timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"rollouts {VERSION}"
    r = _podman("run", "--rm", "--read-only", *LIMITS, "--network", "none",
                "--entrypoint", "id", image, timeout=120)
    assert r.stdout.strip().startswith("uid=65532(rollouts) gid=65532(rollouts)"), r.stdout


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"rollouts-e2e-{uuid.uuid4().hex[:8]}"
    yield name
    _podman("rm", "-f", "-t", "5", name, timeout=60)


async def test_the_controller_started_from_the_image_serves_and_rolls_out(
        image: str, container_name: str, rkube: Kube, namespace: str,
        controller_kubeconfig: str) -> None:
    ns = namespace
    port, mport = free_port(), free_port()
    r = _podman("run", "-d", "--name", container_name, "--network", "host",
                "--read-only", "--read-only-tmpfs=false", *LIMITS,
                "-v", f"{controller_kubeconfig}:/etc/rollouts/kubeconfig:ro",
                image, "controller", "--kubeconfig=/etc/rollouts/kubeconfig",
                f"--namespace={ns}", f"--listen=127.0.0.1:{port}",
                f"--metrics-listen=127.0.0.1:{mport}", "--resync-seconds=5", timeout=120)
    assert r.returncode == 0, r.stderr

    def logs() -> str:
        out = _podman("logs", container_name, timeout=30)
        return out.stdout + out.stderr

    async def healthy() -> bool:
        try:
            # HTTPS with the certificate it made at start (none mounted): pin that one
            pem = await asyncio.to_thread(ssl.get_server_certificate, ("127.0.0.1", port),
                                          timeout=2)
            verify = ssl.create_default_context(cadata=pem)
            verify.check_hostname = False
            async with httpx.AsyncClient(verify=verify, timeout=3) as c:
                ok = (await c.get(f"https://127.0.0.1:{port}/healthz")).text == "ok"
            async with httpx.AsyncClient(timeout=3) as c:
                ready = (await c.get(f"http://127.0.0.1:{mport}/readyz")).status_code == 200
            return ok and ready
        except (httpx.HTTPError, OSError):
            return False

    try:
        await eventually(healthy, 90, "the container's /healthz and /readyz")
        # and it is the controller: a Rollout is rolled out and a canary step taken
        for obj in [*services(), virtual_service()]:
            await apply(rkube, obj, ns)
        await apply(rkube, rollout([{"setWeight": 30}, {"pause": {}}], replicas=2), ns)
        await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy Healthy")
        await set_image(rkube, ns, "demo:2")

        async def weight_30() -> bool:
            return await canary_weight(rkube, ns) == 30
        await eventually(weight_30, 60, "canary weight 30 set by the containerized controller")
    except AssertionError as e:
        raise AssertionError(f"{e}\ncontainer log:\n{logs()[-3000:]}") from e
    assert _podman("inspect", "-f", "{{.State.Running}}", container_name).stdout.strip() == "true"


def test_python_build_makes_a_wheel_and_an_sdist(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    r = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    wheel = next(out.glob(f"rollouts-{VERSION}-py3-none-any.whl"))
    sdist = next(out.glob(f"rollouts-{VERSION}.tar.gz"))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = z.read(f"rollouts-{VERSION}.dist-info/entry_points.txt").decode()
    assert "rollouts/cli/main.py" in names and "analysis/__init__.py" in names
    assert any(n.startswith("rollouts/_crds/") and n.endswith(".yaml") for n in names)
    assert "rollouts = rollouts.cli.main:app" in entry_points
    assert "kubectl-rollouts = rollouts.cli.main:app" in entry_points
    with tarfile.open(sdist) as t:
        members = {m.split("/", 1)[1] for m in t.getnames() if "/" in m}
    assert {"pyproject.toml", "rollouts/cli/main.py", "README.md"} <= members

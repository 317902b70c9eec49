"""End-to-end fixtures: one real test bed per session, a fresh namespace per test.

Set ROLLOUTS_TESTBED_DIR to the run directory of a bed started with ``make testbed`` to
reuse it while developing (it is then left running).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client, config

from testbed.cluster import TestBed, leftover_processes


@pytest.fixture(scope="session")
def testbed() -> Iterator[TestBed]:
    reuse = os.environ.get("ROLLOUTS_TESTBED_DIR")
    if reuse:
        yield TestBed.attach(Path(reuse))
        return
    bed = TestBed()
    bed.start()
    try:
        yield bed
    finally:
        bed.stop()
        left = leftover_processes(bed.workdir)
        assert not left, f"test-bed processes still running after stop: {left}"
        if os.environ.get("ROLLOUTS_KEEP_TESTBED_LOGS") is None:
            shutil.rmtree(bed.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
async def kube(testbed: TestBed) -> AsyncIterator[client.ApiClient]:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=testbed.kubeconfig, client_configuration=cfg)
    async with client.ApiClient(cfg) as api:
        yield api


@pytest.fixture
async def namespace(kube: client.ApiClient, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    base = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:5]}"
    core = client.CoreV1Api(kube)
    await core.create_namespace({"metadata": {"name": name, "labels": {"e2e": "true"}}})
    try:
        yield name
    finally:
        await core.delete_namespace(name, propagation_policy="Background")


# --- the controller under test ------------------------------------------------------

import collections.abc  # noqa: E402

import yaml  # noqa: E402

from rollouts.kube.apply import apply_files, wait_established  # noqa: E402
from rollouts.kube.client import Kube  # noqa: E402
from tests.e2e.kit import REPO, ControllerProcess, DemoRun  # noqa: E402


@pytest.fixture(scope="session")
async def rkube(kube: client.ApiClient) -> Kube:
    return Kube(kube)


@pytest.fixture(scope="session")
async def installed(rkube: Kube) -> None:
    """crds/ and the controller's RBAC from deploy/, exactly as a user applies them."""
    crds = await apply_files(rkube, sorted((REPO / "crds").glob("*.yaml")))
    # the Deployment needs an image, which the test bed cannot run
    await apply_files(rkube, sorted((REPO / "deploy").glob("*.yaml")), skip_kinds=("Deployment",))
    await wait_established(rkube, crds)


@pytest.fixture(scope="session")
async def controller_kubeconfig(testbed: TestBed, rkube: Kube, installed: None) -> str:
    """A kubeconfig holding a token of deploy/'s ServiceAccount: the shipped RBAC, not admin."""
    tr = await rkube.create(
        "/api/v1/namespaces/rollouts-system/serviceaccounts/rollouts-controller/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
         "spec": {"expirationSeconds": 86400}})
    cfg = yaml.safe_load(Path(testbed.kubeconfig).read_text())  # noqa: ASYNC240
    cfg["users"] = [{"name": "admin", "user": {"token": tr["status"]["token"]}}]
    path = Path(testbed.workdir) / "controller.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.fixture(scope="session")
def stopping_controllers(testbed: TestBed) -> Iterator[list[ControllerProcess]]:
    """Controllers sent SIGTERM at the end of their test, reaped here at the end of the
    session (before the test bed's own teardown checks for leftover processes): a test
    does not wait for its controller's graceful shutdown (~1 s each, 15 s when one hangs).
    Each test's controller watches only that test's namespace, so a controller still
    shutting down cannot act on the next test's objects."""
    dying: list[ControllerProcess] = []
    yield dying
    slow = [c for c in dying if not c.reap(15)]
    if slow:
        print(f"\n[e2e] {len(slow)} controller(s) ignored SIGTERM for 15 s and were killed: "
              + ", ".join(str(c.log) for c in slow), file=sys.stderr)


@pytest.fixture
async def start_controller(
    controller_kubeconfig: str, testbed: TestBed, namespace: str,
    stopping_controllers: list[ControllerProcess],
) -> collections.abc.AsyncIterator[collections.abc.Callable[..., ControllerProcess]]:
    started: list[ControllerProcess] = []

    def start(*extra: str) -> ControllerProcess:
        c = ControllerProcess(controller_kubeconfig, namespace, Path(testbed.workdir) / "logs",
                              *extra).start()
        started.append(c)
        return c

    yield start
    for c in started:
        try:
            c.terminate()
        except Exception:  # one stuck process must not leave the others running
            c.kill()
    stopping_controllers.extend(started)
    # the ones already gone need no reaping at the end
    stopping_controllers[:] = [c for c in stopping_controllers if c.proc and c.proc.poll() is None]


# --- `make demo`'s story, in the background ---------------------------------------------

_DEMO_SELECTED = pytest.StashKey[bool]()


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[_DEMO_SELECTED] = any(item.path.name == "test_demo.py" for item in items)


@pytest.fixture(scope="session", autouse=True)
def demo_run(request: pytest.FixtureRequest) -> Iterator[DemoRun | None]:
    """When test_demo.py is selected, the demo starts with the first end-to-end test (see
    DemoRun); otherwise nothing starts and no test bed is asked for here."""
    if not request.config.stash.get(_DEMO_SELECTED, False):
        yield None
        return
    bed: TestBed = request.getfixturevalue("testbed")
    run = DemoRun(Path(bed.workdir), f"demo-{uuid.uuid4().hex[:5]}").start()
    try:
        yield run
    finally:
        run.stop()

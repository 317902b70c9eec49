"""End-to-end fixtures: one real test bed per session, a fresh namespace per test.

Set ROLLOUTS_TESTBED_DIR to the run directory of a bed started with ``make testbed`` to
reuse it while developing (it is then left running).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
import warnings
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
async def controller_kubeconfig(testbed: TestBed, rkube: Kube, installed: None) -> AsyncIterator[str]:
    """A kubeconfig holding a token of deploy/'s ServiceAccount: the shipped RBAC, not admin."""
    tr = await rkube.create(
        "/api/v1/namespaces/rollouts-system/serviceaccounts/rollouts-controller/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
         "spec": {"expirationSeconds": 86400}})
    cfg = yaml.safe_load(Path(testbed.kubeconfig).read_text())  # noqa: ASYNC240
    cfg["users"] = [{"name": "admin", "user": {"token": tr["status"]["token"]}}]
    # one file per pytest process: shards (ROLLOUTS_E2E_SHARD) share the run directory
    path = Path(testbed.workdir) / f"controller-{os.getpid()}.kubeconfig"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(cfg))
    tmp.rename(path)  # a controller never reads half a file
    yield str(path)
    path.unlink(missing_ok=True)


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
    if slow:  # in the warnings summary: a shutdown that hangs is worth a look
        warnings.warn(f"{len(slow)} controller(s) ignored SIGTERM for 15 s and were killed: "
                      + ", ".join(str(c.log) for c in slow), stacklevel=1)


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


# --- shards: n pytest processes on one test bed -----------------------------------------

# Seconds per file measured on 2 cores under load (only to balance the shards; a file not
# listed counts as DEFAULT_FILE_SECONDS).
FILE_SECONDS = {
    "test_judge_per_pod.py": 245, "test_analysis.py": 225, "test_resilience.py": 156,
    "test_cli.py": 108, "test_semantics.py": 105, "test_lint_server.py": 79,
    "test_canary.py": 45, "test_simulator.py": 65, "test_http_api.py": 47,
    "test_alerting.py": 47, "test_failures.py": 40, "test_judge_params.py": 37,
    "test_istio_routes.py": 31, "test_invalid.py": 17, "test_http_tls.py": 13,
    "test_web_provider_tls.py": 7, "test_testbed.py": 2, "test_rbac.py": 1, "test_demo.py": 5,
    "test_routers.py": 125, "test_dashboard.py": 85, "test_scale.py": 90, "test_cli_tree.py": 70,
    "test_provider_influx_graphite.py": 60, "test_provider_saas.py": 35, "test_helm.py": 25,
    "test_notify_services.py": 25, "test_image.py": 30, "test_krew.py": 45, "test_startup.py": 15,
}
DEFAULT_FILE_SECONDS = 60
# shard 1 also runs the unit tests (testbed/run_tests.py): about this long beside the e2e
# files on 2 cores (measured at a2616ab: shard 1 took 15 min, shard 2 10 min, unbalanced)
UNIT_SECONDS = 300


def _edits_alert_routes(name: str) -> bool:
    """TestBed.route_alerts reads, modifies and writes one file of the bed: the files that
    call it go to the same shard, so that two processes never race on it."""
    path = Path(__file__).parent / name
    return path.exists() and "route_alerts(" in path.read_text(errors="replace")


def shard_files(files: list[str], n: int) -> list[list[str]]:
    """Whole files over n shards, the longest first onto the least loaded shard."""
    groups: dict[str, list[str]] = {}
    for f in sorted(set(files)):
        groups.setdefault("route_alerts" if _edits_alert_routes(f) else f, []).append(f)
    load = [0.0] * n
    load[0] = UNIT_SECONDS if n > 1 else 0.0
    out: list[list[str]] = [[] for _ in range(n)]
    cost = {k: sum(FILE_SECONDS.get(f, DEFAULT_FILE_SECONDS) for f in g) for k, g in groups.items()}
    for key in sorted(groups, key=lambda k: (-cost[k], k)):
        i = load.index(min(load))
        out[i] += groups[key]
        load[i] += cost[key]
    return out


def _shard(items: list[pytest.Item], config: pytest.Config) -> None:
    """ROLLOUTS_E2E_SHARD=i/n keeps the end-to-end files of shard i (1-based) of n: run n
    pytest processes with the same ROLLOUTS_TESTBED_DIR, one per shard, to share one bed.
    Each test has its own namespace and each process its own controller kubeconfig."""
    spec = os.environ.get("ROLLOUTS_E2E_SHARD")
    if not spec:
        return
    m = re.fullmatch(r"(\d+)/(\d+)", spec)
    if not m or not 1 <= int(m[1]) <= int(m[2]):
        raise pytest.UsageError(f"ROLLOUTS_E2E_SHARD={spec!r}: expected i/n with 1 <= i <= n")
    here = Path(__file__).parent
    e2e = [it for it in items if it.path.parent == here]
    mine = set(shard_files([it.path.name for it in e2e], int(m[2]))[int(m[1]) - 1])
    drop = [it for it in e2e if it.path.name not in mine]
    if drop:
        config.hook.pytest_deselected(items=drop)
        gone = {id(it) for it in drop}
        items[:] = [it for it in items if id(it) not in gone]


# --- `make demo`'s story, in the background ---------------------------------------------

_DEMO_SELECTED = pytest.StashKey[bool]()


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _shard(items, config)
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

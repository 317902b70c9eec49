"""Helpers for end-to-end tests: manifests, a controller process, polling."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlparse

from rollouts.api.constants import POD_TEMPLATE_HASH_LABEL
from rollouts.kube.apply import apply
from rollouts.kube.client import (
    DESTINATION_RULES,
    EVENTS,
    JSON,
    REPLICASETS,
    SERVICES,
    VIRTUAL_SERVICES,
    Kube,
    Resource,
)
from rollouts.kube.signals import ROLLOUTS

REPO = Path(__file__).resolve().parents[2]
VS = VIRTUAL_SERVICES
DR = DESTINATION_RULES
HASH = POD_TEMPLATE_HASH_LABEL
# Re-exported for the tests, which name resources the way a user reads them.
__all__ = ["DR", "EVENTS", "HASH", "REPLICASETS", "ROLLOUTS", "SERVICES", "VS"]

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], timeout: float, what: str,
                     interval: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


class ControllerProcess:
    """The controller as a real process (so tests can SIGKILL it), with its own log."""

    def __init__(self, kubeconfig: str, namespace: str, logdir: Path, *extra: str) -> None:
        self.argv = [sys.executable, "-m", "rollouts.cli.main", "controller",
                     f"--kubeconfig={kubeconfig}", f"--namespace={namespace}",
                     "--listen=127.0.0.1:0", "--resync-seconds=600", *extra]
        logdir.mkdir(parents=True, exist_ok=True)
        self.log = logdir / f"controller-{time.time_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ControllerProcess:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                         cwd=REPO, start_new_session=True,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        self.terminate()
        self.reap(15)

    def terminate(self) -> None:
        """SIGTERM without waiting: the graceful shutdown overlaps the next test (see reap)."""
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def reap(self, grace: float) -> bool:
        """Waits up to ``grace`` seconds for the exit, then SIGKILLs; True if it exited."""
        if not self.proc or self.proc.poll() is not None:
            return True
        try:
            self.proc.wait(grace)
            return True
        except subprocess.TimeoutExpired:
            self.kill()
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def services(app: str = "demo") -> list[JSON]:
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{app}-{role}"},
         "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]}}
        for role in ("stable", "canary")
    ]


def virtual_service(app: str = "demo", subsets: bool = False) -> JSON:
    if subsets:
        dests = [{"destination": {"host": app, "subset": "stable"}, "weight": 100},
                 {"destination": {"host": app, "subset": "canary"}, "weight": 0}]
    else:
        dests = [{"destination": {"host": f"{app}-stable"}, "weight": 100},
                 {"destination": {"host": f"{app}-canary"}, "weight": 0}]
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": app},
            "spec": {"hosts": [app], "http": [{"name": "primary", "route": dests}]}}


def destination_rule(app: str = "demo") -> JSON:
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": app},
            "spec": {"host": app, "subsets": [{"name": "stable", "labels": {"app": app}},
                                              {"name": "canary", "labels": {"app": app}}]}}


def rollout(steps: list[JSON], app: str = "demo", replicas: int = 5, image: str = "demo:1",
            subsets: bool = False, **canary_extra: Any) -> JSON:
    istio: JSON = {"virtualService": {"name": app, "routes": ["primary"]}}
    canary: JSON = {"steps": steps, "trafficRouting": {"istio": istio}, **canary_extra}
    if subsets:
        istio["destinationRule"] = {"name": app, "canarySubsetName": "canary",
                                    "stableSubsetName": "stable"}
    else:
        canary.update(canaryService=f"{app}-canary", stableService=f"{app}-stable")
    return {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": app},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}},
                         "spec": {"containers": [{"name": "app", "image": image}]}},
            "strategy": {"canary": canary},
        },
    }


async def get_rollout(kube: Kube, ns: str, name: str = "demo") -> JSON:
    return await kube.get(ROLLOUTS.path(ns, name))


async def canary_weight(kube: Kube, ns: str, name: str = "demo") -> int:
    vs = await kube.get(VS.path(ns, name))
    for d in vs["spec"]["http"][0]["route"]:
        dst = d["destination"]
        if dst.get("subset") == "canary" or dst["host"].endswith("-canary"):
            return int(d.get("weight", 0))
    raise AssertionError("no canary destination")


async def set_image(kube: Kube, ns: str, image: str, name: str = "demo") -> None:
    ro = await get_rollout(kube, ns, name)
    tmpl = copy.deepcopy(ro["spec"]["template"])
    tmpl["spec"]["containers"][0]["image"] = image
    await kube.merge_patch(ROLLOUTS.path(ns, name), {"spec": {"template": tmpl}})


async def replica_sets(kube: Kube, ns: str) -> dict[str, JSON]:
    data = await kube.get_list(REPLICASETS.path(ns))
    return {rs["metadata"]["labels"][HASH]: rs for rs in data["items"]
            if HASH in (rs["metadata"].get("labels") or {})}


async def phase_is(kube: Kube, ns: str, phase: str, name: str = "demo") -> JSON | None:
    ro = await get_rollout(kube, ns, name)
    st = ro.get("status") or {}
    gen_ok = st.get("observedGeneration") == ro["metadata"]["generation"]
    return ro if gen_ok and st.get("phase") == phase else None


class WeightRecorder:
    """Watches the VirtualService and the ReplicaSets: every weight a user could have seen,
    with the canary's available pods at the moment the weight changed."""

    def __init__(self, kube: Kube, ns: str, name: str = "demo") -> None:
        self.kube, self.ns, self.name = kube, ns, name
        self.samples: list[tuple[float, int]] = []
        self.available_at_change: list[tuple[int, dict[str, int]]] = []
        self._available: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def _weight(vs: JSON) -> int:
        for d in vs["spec"]["http"][0]["route"]:
            dst = d["destination"]
            if dst.get("subset") == "canary" or dst["host"].endswith("-canary"):
                return int(d.get("weight", 0))
        raise AssertionError("no canary destination")

    async def _watch(self, res: Resource, on: Callable[[JSON], None]) -> None:
        while True:
            data = await self.kube.get_list(res.path(self.ns))
            for o in data["items"]:
                on(o)
            try:
                async for ev in self.kube.watch(res.path(self.ns), data["metadata"]["resourceVersion"], 60):
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        on(ev["object"])
            except Exception:
                pass

    def _on_vs(self, vs: JSON) -> None:
        if vs["metadata"]["name"] != self.name:
            return
        w = self._weight(vs)
        if not self.samples or self.samples[-1][1] != w:
            self.samples.append((time.monotonic(), w))
            self.available_at_change.append((w, dict(self._available)))

    def _on_rs(self, rs: JSON) -> None:
        h = (rs["metadata"].get("labels") or {}).get(HASH)
        if h:
            self._available[h] = int((rs.get("status") or {}).get("availableReplicas") or 0)

    async def _run(self) -> None:
        await asyncio.gather(self._watch(VS, self._on_vs), self._watch(REPLICASETS, self._on_rs))

    def available_when(self, h: str) -> list[tuple[int, int]]:
        """(weight, available pods of ReplicaSet h) at each weight change."""
        return [(w, avail.get(h, 0)) for w, avail in self.available_at_change]

    def start(self) -> WeightRecorder:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            # never wait forever for the watch to notice (a test must fail, not hang)
            _, pending = await asyncio.wait({self._task}, timeout=10)
            assert not pending, "the weight recorder's watch ignored cancellation"

    def sequence(self) -> list[int]:
        return [w for _, w in self.samples]

    def first_time(self, weight: int) -> float:
        return next(t for t, w in self.samples if w == weight)


class DemoRun:
    """`python -m rollouts.demo --non-interactive` on the test bed, started at the beginning
    of the session (conftest.py) so that its ~2 minutes of judged steps overlap the other
    tests instead of adding to them; test_demo.py waits for it and checks its output. It
    works in a namespace of its own with a controller and a simulator scoped to it."""

    TIMEOUT = 600.0

    def __init__(self, workdir: Path, namespace: str) -> None:
        self.argv = [sys.executable, "-m", "rollouts.demo", "--non-interactive",
                     f"--testbed-dir={workdir}", f"--namespace={namespace}"]
        self.out = workdir / "logs" / f"demo-run-{namespace}.out"
        self.err = workdir / "logs" / f"demo-run-{namespace}.err"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> DemoRun:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=err, cwd=REPO,
                                         start_new_session=True)
        self.started = time.monotonic()
        return self

    async def result(self) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) once it has ended, at most TIMEOUT s after its start."""
        assert self.proc is not None
        while self.proc.poll() is None:
            if time.monotonic() - self.started > self.TIMEOUT:
                self.stop()
                raise AssertionError(f"the demo did not end within {self.TIMEOUT:.0f} s")
            await asyncio.sleep(0.5)
        return (self.proc.returncode, self.out.read_text(errors="replace"),
                self.err.read_text(errors="replace"))

    def stop(self) -> None:
        """SIGINT, so that the demo stops its controller and simulator itself (they run in
        sessions of their own); SIGKILL only if it does not end."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


async def event_where(kube: Kube, ns: str, name: str, pred: Callable[[JSON], bool],
                      timeout: float = 15.0) -> JSON:
    """The first Event of object ``name`` matching ``pred``. The controller emits a
    decision's Events right after writing its status, so a test that has just seen the
    status waits for them instead of racing them."""
    async def find() -> JSON | None:
        data = await kube.get_list(f"/api/v1/namespaces/{ns}/events",
                                   fieldSelector=f"involvedObject.name={name}")
        return next((e for e in data["items"] if pred(e)), None)

    return await eventually(find, timeout, f"an Event of {name}")


# --- shared by the strategy tests (blue-green, experiments, step semantics) ----------------

RUNS = "/apis/rollouts.dev/v1alpha1/namespaces/{ns}/analysisruns"


async def deploy(kube: Kube, ns: str, ro: JSON, *objs: JSON, what: str = "first deploy Healthy",
                 timeout: float = 60) -> JSON:
    """Apply ``objs`` (Services, routes, templates), then the Rollout ``ro``; wait until it is
    Healthy; the Rollout then."""
    for obj in [*objs, ro]:
        await apply(kube, obj, ns)
    name = str(ro["metadata"]["name"])
    got = await eventually(lambda: phase_is(kube, ns, "Healthy", name), timeout, what)
    assert got is not None
    return got


async def events_of(kube: Kube, ns: str, name: str = "demo") -> list[JSON]:
    """The Events of object ``name`` as `kubectl get events` lists them (by time, then name)."""
    items = (await kube.get_list(EVENTS.path(ns), fieldSelector=f"involvedObject.name={name}"))["items"]
    return sorted(items, key=lambda e: (e.get("firstTimestamp") or "", e["metadata"]["name"]))


async def analysis_runs(kube: Kube, ns: str) -> list[JSON]:
    """The namespace's AnalysisRuns, oldest first."""
    data = await kube.get_list(RUNS.format(ns=ns))
    return sorted(data["items"], key=lambda r: r["metadata"]["creationTimestamp"])


class HealthServer:
    """A health endpoint of the test's own for Argo's web metric provider (127.0.0.1, a
    free port): GET /health?hash=H -> {"ok": answer}, ``answer`` a number or a function
    of the pod-template hash asked about; the first ``errors`` requests get a 500.
    Serve it with ``serving``."""

    def __init__(self, answer: float | Callable[[str], float] = 1) -> None:
        self.answer = answer
        self.errors = 0
        self.asked: list[str] = []
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                h = parse_qs(urlparse(self.path).query).get("hash", [""])[0]
                health.asked.append(h)
                if health.errors > 0:
                    health.errors -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                answer = health.answer
                body = json.dumps({"ok": answer(h) if callable(answer) else answer}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


H = TypeVar("H", bound=HealthServer)


@contextlib.contextmanager
def serving(server: H) -> Iterator[H]:
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def health_template(url: str, name: str = "health") -> JSON:
    """An AnalysisTemplate asking ``url`` about its ``hash`` arg: 1 succeeds, 0 fails."""
    return {"apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": name},
            "spec": {"args": [{"name": "hash"}],
                     "metrics": [{"name": "health", "successCondition": "result == 1",
                                  "failureCondition": "result == 0",
                                  "provider": {"web": {"url": url + "?hash={{args.hash}}",
                                                       "jsonPath": "{$.ok}"}}}]}}

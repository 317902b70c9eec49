"""N rollouts on the local test bed, one controller process watching all namespaces.

Each rollout: 2 replicas, Services ``<app>-stable``/``<app>-canary``, VirtualService
``<app>``, steps (setWeight 20, pause {}). Phases, timed from this process with one
monotonic clock (watch events are stamped when they arrive here):

1. create: Services and VirtualServices, then all Rollouts; until every Rollout is
   Healthy (observedGeneration 1);
2. idle: one resync period with nothing to do (steady-state CPU and API calls);
3. change: every pod template patched at once; until every VirtualService carries weight
   20 for the canary and every Rollout is Paused at step 1.

The controller's RSS (VmRSS, VmHWM) and CPU (utime + stime) come from /proc/PID; API
request counts from the apiserver's ``apiserver_request_total``; reconcile counts and
queue waits from the controller's own /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from rollouts.kube.apply import apply
from rollouts.kube.client import (
    JSON,
    NAMESPACES,
    REPLICASETS,
    VIRTUAL_SERVICES,
    Kube,
    KubeError,
    Resource,
    make_api_client,
)
from testbed.cluster import TestBed, free_port

REPO = Path(__file__).resolve().parent.parent
ROLLOUTS = Resource("rollouts.dev", "v1alpha1", "rollouts")
HASH = "rollouts-pod-template-hash"
STEPS: list[JSON] = [{"setWeight": 20}, {"pause": {}}]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[bench-controller] {msg}", file=sys.stderr, flush=True)


# --- /proc -----------------------------------------------------------------------------


def proc_mem_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0])
    return out


def proc_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def machine_busy_s() -> float:
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(f[:8])
    return (total - f[3] - f[4]) / CLK_TCK  # minus idle and iowait


# --- manifests -------------------------------------------------------------------------


def services(app: str) -> list[JSON]:
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{app}-{role}"},
             "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]}}
            for role in ("stable", "canary")]


def virtual_service(app: str) -> JSON:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": app},
            "spec": {"hosts": [app], "http": [{"name": "primary", "route": [
                {"destination": {"host": f"{app}-stable"}, "weight": 100},
                {"destination": {"host": f"{app}-canary"}, "weight": 0}]}]}}


def container(image: str) -> JSON:
    return {"name": "app", "image": image}


def rollout(app: str, image: str = "bench:1", replicas: int = 2) -> JSON:
    return {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": app},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}},
                         "spec": {"containers": [container(image)]}},
            "strategy": {"canary": {
                "canaryService": f"{app}-canary", "stableService": f"{app}-stable",
                "trafficRouting": {"istio": {"virtualService": {"name": app,
                                                                "routes": ["primary"]}}},
                "steps": STEPS}},
        },
    }


def vs_canary_weight(vs: JSON) -> int | None:
    try:
        for d in vs["spec"]["http"][0]["route"]:
            if d["destination"]["host"].endswith("-canary"):
                return int(d.get("weight", 0))
    except (KeyError, IndexError, TypeError):
        return None
    return None


# --- HTTP scrapes ------------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _get_text(url: str, token: str | None = None, timeout: float = 20) -> str:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
        return str(r.read().decode())


def parse_samples(text: str, prefix: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        m = _SAMPLE.match(line)
        if m:
            labels = dict(_LABEL.findall(m.group(2) or ""))
            with contextlib.suppress(ValueError):
                out.append((m.group(1), labels, float(m.group(3))))
    return out


def apiserver_requests(bed: TestBed) -> Counter[tuple[str, str]]:
    """apiserver_request_total by (resource[/subresource], verb), all clients together."""
    assert bed.state
    text = _get_text(bed.state.apiserver_url + "/metrics", bed.state.admin_token)
    c: Counter[tuple[str, str]] = Counter()
    for _, lb, v in parse_samples(text, "apiserver_request_total{"):
        res = lb.get("resource", "")
        if lb.get("subresource"):
            res += "/" + lb["subresource"]
        c[(res, lb.get("verb", ""))] += int(v)
    return c


@dataclass
class CtlMetrics:
    reconciles: float = 0.0
    errors: float = 0.0
    reconcile_time_sum: float = 0.0
    queue_wait_sum: float = 0.0
    queue_wait_count: float = 0.0
    depth: float = 0.0

    def minus(self, o: CtlMetrics) -> CtlMetrics:
        return CtlMetrics(self.reconciles - o.reconciles, self.errors - o.errors,
                          self.reconcile_time_sum - o.reconcile_time_sum,
                          self.queue_wait_sum - o.queue_wait_sum,
                          self.queue_wait_count - o.queue_wait_count, self.depth)


def controller_metrics(port: int) -> CtlMetrics:
    m = CtlMetrics()
    try:
        text = _get_text(f"http://127.0.0.1:{port}/metrics", timeout=30)
    except OSError:
        return CtlMetrics(float("nan"), float("nan"))
    for name, lb, v in parse_samples(text, "controller_runtime_") + parse_samples(text, "workqueue_"):
        if lb.get("controller", "rollout") != "rollout" and name.startswith("controller_runtime"):
            continue
        if name == "controller_runtime_reconcile_total":
            m.reconciles += v
        elif name == "controller_runtime_reconcile_errors_total":
            m.errors += v
        elif name == "controller_runtime_reconcile_time_seconds_sum":
            m.reconcile_time_sum += v
        elif name == "workqueue_queue_duration_seconds_sum":
            m.queue_wait_sum += v
        elif name == "workqueue_queue_duration_seconds_count":
            m.queue_wait_count += v
        elif name == "workqueue_depth":
            m.depth += v
    return m


# --- the controller process --------------------------------------------------------------


class Controller:
    def __init__(self, kubeconfig: str, logdir: Path, tag: str) -> None:
        self.port = free_port()
        self.argv = [sys.executable, "-m", "rollouts.cli.main", "controller",
                     "--kubeconfig", kubeconfig, "--listen", "127.0.0.1:0",
                     # /metrics and /readyz in plain HTTP, no token (the bench scrapes them)
                     "--metrics-listen", f"127.0.0.1:{self.port}"]
        logdir.mkdir(parents=True, exist_ok=True)
        self.log = logdir / f"controller-{tag}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                         start_new_session=True,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})

    async def wait_ready(self, timeout: float = 60) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            assert self.proc
            if self.proc.poll() is not None:
                raise RuntimeError(f"controller exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                if await asyncio.to_thread(_get_text, f"http://127.0.0.1:{self.port}/readyz", None, 2):
                    return time.monotonic() - t0
            await asyncio.sleep(0.2)
        raise RuntimeError("controller not ready")

    def stop(self) -> None:
        """SIGTERM to the process group we started (the controller is its leader)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


# --- watches -----------------------------------------------------------------------------


class Tracker:
    """Cluster-wide list + watch, calling ``on(obj, t_arrival)`` for every version seen."""

    def __init__(self, kube: Kube, res: Resource, on: Callable[[JSON, float], None],
                 label_selector: str | None = None) -> None:
        self.kube, self.res, self.on, self.selector = kube, res, on, label_selector
        self.events = 0

    async def run(self) -> None:
        while True:
            try:
                data = await self.kube.get_list(self.res.path(), labelSelector=self.selector)
                now = time.monotonic()
                for o in data.get("items") or []:
                    self.on(o, now)
                rv = data["metadata"]["resourceVersion"]
                async for ev in self.kube.watch(self.res.path(), rv, 300,
                                                labelSelector=self.selector):
                    if ev.get("type") in ("ADDED", "MODIFIED"):
                        self.events += 1
                        obj = ev["object"]
                        self.on(obj, time.monotonic())
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log(f"watch of {self.res.plural} restarted: {type(e).__name__}: {e}")
                await asyncio.sleep(0.5)


@dataclass
class RolloutTimes:
    created: float | None = None
    healthy: float | None = None
    stable_hash: str | None = None
    patched: float | None = None
    paused: float | None = None
    weight20: float | None = None
    rs_seen: dict[str, float] = field(default_factory=dict)
    rs_available: dict[str, float] = field(default_factory=dict)  # all replicas of the RS


class Observer:
    def __init__(self, keys: list[str]) -> None:
        self.t: dict[str, RolloutTimes] = {k: RolloutTimes() for k in keys}

    def on_rollout(self, o: JSON, now: float) -> None:
        md = o["metadata"]
        rt = self.t.get(f"{md['namespace']}/{md['name']}")
        if rt is None:
            return
        st = o.get("status") or {}
        if st.get("observedGeneration") != md.get("generation"):
            return
        if md.get("generation") == 1 and st.get("phase") == "Healthy" and rt.healthy is None:
            rt.healthy = now
            rt.stable_hash = st.get("stableRS")
        weight = (((st.get("canary") or {}).get("weights") or {}).get("canary") or {}).get("weight")
        if (md.get("generation") == 2 and st.get("phase") == "Paused"
                and st.get("currentStepIndex") == 1 and weight == 20 and rt.paused is None):
            rt.paused = now

    def on_vs(self, o: JSON, now: float) -> None:
        md = o["metadata"]
        rt = self.t.get(f"{md['namespace']}/{md['name']}")
        if rt is not None and rt.patched is not None and rt.weight20 is None \
                and vs_canary_weight(o) == 20:
            rt.weight20 = now

    def on_rs(self, o: JSON, now: float) -> None:
        md = o["metadata"]
        owner = next((r["name"] for r in md.get("ownerReferences") or []
                      if r.get("kind") == "Rollout"), None)
        rt = self.t.get(f"{md['namespace']}/{owner}")
        h = (md.get("labels") or {}).get(HASH)
        if rt is None or not h:
            return
        rt.rs_seen.setdefault(h, now)
        want = int((o.get("spec") or {}).get("replicas") or 0)
        avail = int((o.get("status") or {}).get("availableReplicas") or 0)
        if want > 0 and avail >= want:
            rt.rs_available.setdefault(h, now)


# --- phases --------------------------------------------------------------------------------


@dataclass
class Snapshot:
    t: float
    ctl_cpu: float
    ctl_rss_kb: int
    ctl_hwm_kb: int
    machine_busy: float
    bed_cpu: dict[str, float]
    self_cpu: float
    api: Counter[tuple[str, str]]
    ctl: CtlMetrics


@dataclass
class Phase:
    name: str
    start: Snapshot
    end: Snapshot
    complete: int
    total: int
    max_depth: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=dict)

    @property
    def wall(self) -> float:
        return self.end.t - self.start.t

    def api_delta(self) -> Counter[tuple[str, str]]:
        d = Counter(self.end.api)
        d.subtract(self.start.api)
        return Counter({k: v for k, v in d.items() if v > 0})


@dataclass
class SizeResult:
    n: int
    namespaces: int
    ready_s: float
    baseline_rss_kb: int
    baseline_hwm_kb: int
    phases: list[Phase]
    objects_create_s: float
    watch_events: int
    cleanup_s: float | None = None
    notes: list[str] = field(default_factory=list)

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)


class Run:
    def __init__(self, bed: TestBed, kube: Kube) -> None:
        self.bed, self.kube = bed, kube
        assert bed.state
        self.bed_pids = {p.name: p.pid for p in bed.state.processes}

    async def snapshot(self, ctl: Controller) -> Snapshot:
        mem = proc_mem_kb(ctl.pid)
        api = await asyncio.to_thread(apiserver_requests, self.bed)
        cm = await asyncio.to_thread(controller_metrics, ctl.port)
        return Snapshot(time.monotonic(), proc_cpu_s(ctl.pid), mem["VmRSS"], mem["VmHWM"],
                        machine_busy_s(), {k: proc_cpu_s(p) for k, p in self.bed_pids.items()},
                        proc_cpu_s(os.getpid()), api, cm)

    async def _bounded(self, jobs: list[Callable[[], Any]], limit: int = 24) -> list[Any]:
        sem = asyncio.Semaphore(limit)

        async def one(job: Callable[[], Any]) -> Any:
            async with sem:
                for attempt in range(5):
                    try:
                        return await job()
                    except KubeError as e:
                        if (e.status < 500 and e.status != 429) or attempt == 4:
                            raise
                        await asyncio.sleep(0.5 * (attempt + 1))
            return None

        return await asyncio.gather(*(one(j) for j in jobs))

    async def _wait(self, done: Callable[[], int], total: int, timeout: float, what: str,
                    ctl: Controller) -> tuple[int, float]:
        t0 = time.monotonic()
        max_depth = 0.0
        last_log = t0
        while True:
            n = done()
            now = time.monotonic()
            if n >= total or now - t0 > timeout:
                break
            if ctl.proc is not None and ctl.proc.poll() is not None:
                raise RuntimeError(f"controller died: {ctl.log.read_text()[-3000:]}")
            if now - last_log >= 10:
                depth = (await asyncio.to_thread(controller_metrics, ctl.port)).depth
                max_depth = max(max_depth, depth)
                log(f"  {what}: {n}/{total} after {now - t0:.0f} s (queue depth {depth:.0f})")
                last_log = now
            await asyncio.sleep(0.25)
        return done(), max_depth

    async def size(self, n: int, n_ns: int, idle_s: float, timeout: float) -> SizeResult:
        nss = [f"bench-{n}-{i}" for i in range(n_ns)]
        apps = [(nss[i % n_ns], f"app-{i:04d}") for i in range(n)]
        keys = [f"{ns}/{a}" for ns, a in apps]
        obs = Observer(keys)
        for ns in nss:
            await self.kube.create(NAMESPACES.path(), {"metadata": {"name": ns}})
        ctl = Controller(self.bed.kubeconfig, Path(self.bed.workdir) / "logs", f"n{n}")
        ctl.start()
        notes: list[str] = []
        try:
            ready = await ctl.wait_ready()
            await asyncio.sleep(3)
            mem = proc_mem_kb(ctl.pid)
            trackers = [Tracker(self.kube, ROLLOUTS, obs.on_rollout),
                        Tracker(self.kube, VIRTUAL_SERVICES, obs.on_vs),
                        Tracker(self.kube, REPLICASETS, obs.on_rs, label_selector=HASH)]
            tasks = [asyncio.create_task(t.run()) for t in trackers]
            try:
                phases, created_s = await self._phases(n, apps, obs, ctl, idle_s, timeout, notes)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            warns = [ln.split(" WARNING ", 1)[1][:160] for ln in
                     ctl.log.read_text(errors="replace").splitlines() if " WARNING " in ln]
            if warns:
                kinds = Counter(warns)
                notes.append(f"the controller logged {len(warns)} warning(s): " + "; ".join(
                    f"{k!r} x{v}" for k, v in kinds.most_common(3)))
        finally:
            ctl.stop()
        result = SizeResult(n, n_ns, ready, mem["VmRSS"], mem["VmHWM"], phases, created_s,
                            sum(t.events for t in trackers), notes=notes)
        return result

    async def cleanup(self, n: int, n_ns: int, timeout: float = 240) -> float:
        t0 = time.monotonic()
        nss = [f"bench-{n}-{i}" for i in range(n_ns)]
        for ns in nss:
            await self.kube.delete(NAMESPACES.path(None, ns))
        while time.monotonic() - t0 < timeout:
            left = [ns for ns in nss if await self.kube.get_or_none(NAMESPACES.path(None, ns))]
            if not left:
                break
            await asyncio.sleep(1)
        return time.monotonic() - t0

    async def _phases(self, n: int, apps: list[tuple[str, str]], obs: Observer, ctl: Controller,
                      idle_s: float, timeout: float, notes: list[str]) -> tuple[list[Phase], float]:
        k = self.kube
        # Routing objects first (not timed against the controller: it does not watch them).
        t0 = time.monotonic()
        jobs: list[Callable[[], Any]] = []
        for ns, app in apps:
            for obj in [*services(app), virtual_service(app)]:
                jobs.append(partial(apply, k, copy.deepcopy(obj), ns))
        await self._bounded(jobs)
        routing_s = time.monotonic() - t0
        log(f"  {3 * n} Services/VirtualServices created in {routing_s:.1f} s")

        phases = []
        # 1. create
        s0 = await self.snapshot(ctl)

        async def create(ns: str, app: str) -> None:
            await k.create(ROLLOUTS.path(ns), rollout(app))
            obs.t[f"{ns}/{app}"].created = time.monotonic()

        t_create = time.monotonic()
        await self._bounded([partial(create, ns, app) for ns, app in apps])
        created_s = time.monotonic() - t_create
        log(f"  {n} Rollouts created in {created_s:.1f} s")
        done, depth = await self._wait(lambda: sum(1 for r in obs.t.values() if r.healthy),
                                       n, timeout, "Healthy", ctl)
        p = Phase("create", s0, await self.snapshot(ctl), done, n, depth)
        if done < n:
            notes.append(f"create: only {done}/{n} Healthy within {timeout:.0f} s")
        p.end.t = max((r.healthy for r in obs.t.values() if r.healthy), default=p.end.t)
        p.latencies = self._create_latencies(obs)
        phases.append(p)

        # 2. idle
        s1 = await self.snapshot(ctl)
        await asyncio.sleep(idle_s)
        phases.append(Phase("idle", s1, await self.snapshot(ctl), n, n))

        # 3. change every template at once
        s2 = await self.snapshot(ctl)

        async def change(ns: str, app: str) -> None:
            obs.t[f"{ns}/{app}"].patched = time.monotonic()  # before the write: a fair start
            await k.merge_patch(ROLLOUTS.path(ns, app),
                                {"spec": {"template": {"spec": {"containers": [container("bench:2")]}}}})

        await self._bounded([partial(change, ns, app) for ns, app in apps])
        log(f"  {n} templates patched in {time.monotonic() - s2.t:.1f} s")
        done, depth = await self._wait(
            lambda: sum(1 for r in obs.t.values() if r.weight20 and r.paused), n, timeout,
            "weight 20 + Paused", ctl)
        p = Phase("change", s2, await self.snapshot(ctl), done, n, depth)
        if done < n:
            notes.append(f"change: only {done}/{n} at weight 20 and Paused within {timeout:.0f} s")
        ends = [max(r.weight20, r.paused) for r in obs.t.values() if r.weight20 and r.paused]
        if ends:
            p.end.t = max(ends)
        p.latencies = self._change_latencies(obs)
        phases.append(p)
        return phases, created_s

    @staticmethod
    def _create_latencies(obs: Observer) -> dict[str, list[float]]:
        lat: dict[str, list[float]] = {"created -> Healthy": [], "created -> ReplicaSet created": [],
                                       "ReplicaSet created -> all pods available": [],
                                       "pods available -> Healthy written": []}
        for r in obs.t.values():
            if r.created is None or r.healthy is None or r.stable_hash is None:
                continue
            lat["created -> Healthy"].append(r.healthy - r.created)
            seen, avail = r.rs_seen.get(r.stable_hash), r.rs_available.get(r.stable_hash)
            if seen is not None and avail is not None:
                lat["created -> ReplicaSet created"].append(seen - r.created)
                lat["ReplicaSet created -> all pods available"].append(avail - seen)
                lat["pods available -> Healthy written"].append(r.healthy - avail)
        return lat

    @staticmethod
    def _change_latencies(obs: Observer) -> dict[str, list[float]]:
        lat: dict[str, list[float]] = {"patched -> weight 20 in VirtualService": [],
                                       "patched -> Paused in status": [],
                                       "patched -> canary ReplicaSet created": [],
                                       "canary ReplicaSet created -> pod available": [],
                                       "pod available -> weight 20 written": []}
        for r in obs.t.values():
            if r.patched is None:
                continue
            if r.weight20 is not None:
                lat["patched -> weight 20 in VirtualService"].append(r.weight20 - r.patched)
            if r.paused is not None:
                lat["patched -> Paused in status"].append(r.paused - r.patched)
            canary = [h for h in r.rs_seen if h != r.stable_hash]
            if len(canary) == 1 and r.weight20 is not None:
                seen, avail = r.rs_seen[canary[0]], r.rs_available.get(canary[0])
                lat["patched -> canary ReplicaSet created"].append(seen - r.patched)
                if avail is not None:
                    lat["canary ReplicaSet created -> pod available"].append(avail - seen)
                    lat["pod available -> weight 20 written"].append(r.weight20 - avail)
        return lat


async def install(kube: Kube) -> None:
    """crds/ and deploy/ (RBAC, namespace) as a user applies them; no Deployment."""
    for path in sorted((REPO / "crds").glob("*.yaml")) + sorted((REPO / "deploy").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] != "Deployment":
                await apply(kube, doc)
    for path in sorted((REPO / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "CustomResourceDefinition":
                for _ in range(150):
                    crd = await kube.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                                         + doc["metadata"]["name"])
                    if any(c["type"] == "Established" and c["status"] == "True"
                           for c in crd.get("status", {}).get("conditions", [])):
                        break
                    await asyncio.sleep(0.2)


async def run_sizes(bed: TestBed, sizes: list[tuple[int, int]], idle_s: float,
                    timeout: float) -> list[SizeResult]:
    api = await make_api_client(bed.kubeconfig)  # pool of 100 connections: writes + 3 watches
    kube = Kube(api, timeout=60)
    results = []
    try:
        await install(kube)
        for i, (n, n_ns) in enumerate(sizes):
            log(f"N = {n} rollouts in {n_ns} namespaces")
            r = await Run(bed, kube).size(n, n_ns, idle_s, timeout)
            if i + 1 < len(sizes):
                r.cleanup_s = await Run(bed, kube).cleanup(n, n_ns)
                log(f"  namespaces of N = {n} deleted in {r.cleanup_s:.0f} s")
            results.append(r)
    finally:
        await api.close()
    return results

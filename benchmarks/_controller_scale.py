"""N rollouts on a local test bed, one controller process watching all namespaces: ours,
or the real Argo Rollouts controller (built by benchmarks/argo_build.sh), same workload.

Each rollout: 1 replica, Services ``<app>-stable``/``<app>-canary``, VirtualService
``<app>``, steps (setWeight 20, pause {}); for Argo the same spec as argoproj.io/v1alpha1.
Phases, timed from this process with one monotonic clock (watch events are stamped when
they arrive here):

1. create: Services and VirtualServices, then all Rollouts; until every Rollout is
   Healthy at its observed generation;
2. idle: a window with nothing to do (steady-state CPU and API requests);
3. change: every pod template patched at once; until every VirtualService carries weight
   20 for the canary and every Rollout is Paused at step 1.

The controller's RSS (VmRSS, VmHWM) and CPU (utime + stime) come from /proc/PID; its own
API requests from its own client counters on its /metrics (ours:
``rollouts_kube_api_requests_total``, Argo's: ``controller_clientset_k8s_request_total``);
the whole bed's from the apiserver's ``apiserver_request_total``.

The step latencies are measured twice. As seen by the benchmark's watches: the arrival
here of the first object version that met each milestone. And from the API server's
commit times: the bed runs with an audit policy that logs every write to ReplicaSets,
VirtualServices and Rollouts with its response; the ``stageTimestamp`` of the write whose
response carries the resourceVersion the watch saw is that version's commit time, so
both ends of a step come from the API server's clock and no watch lag is in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Collection, Iterable
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
ARGO_ROLLOUTS = Resource("argoproj.io", "v1alpha1", "rollouts")
ARGO_NAMESPACE = "argo-rollouts"  # Argo's POD_NAMESPACE: its Lease and config live there
HASH = "rollouts-pod-template-hash"
STEPS: list[JSON] = [{"setWeight": 20}, {"pause": {}}]
REPLICAS = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
AUDIT_FLUSH_S = 3.0  # for the API server to write out its queue of audit events


@dataclass(frozen=True)
class Flavor:
    """One controller configuration of the side-by-side run."""

    key: str  # short id: ours, argo, argo-qps1000
    label: str  # for the report
    argo: bool
    args: tuple[str, ...] = ()

    @property
    def rollouts(self) -> Resource:
        return ARGO_ROLLOUTS if self.argo else ROLLOUTS


OURS = Flavor("ours", "ours", False)
ARGO = Flavor("argo", "Argo (defaults: --qps 40 --burst 80)", True)
ARGO_FAST = Flavor("argo-qps1000", "Argo --qps 1000 --burst 2000", True,
                   ("--qps", "1000", "--burst", "2000"))
# ours under the same raised client limits, to set beside ARGO_FAST
OURS_FAST = Flavor("ours-qps1000", "ours --qps 1000 --burst 2000", False,
                   ("--qps", "1000", "--burst", "2000"))


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


def rollout(app: str, image: str = "bench:1", replicas: int = REPLICAS, *,
            argo: bool = False) -> JSON:
    """The same Rollout for both controllers; only the API group differs."""
    return {
        "apiVersion": "argoproj.io/v1alpha1" if argo else "rollouts.dev/v1alpha1",
        "kind": "Rollout", "metadata": {"name": app},
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


def apiserver_audit_errors(bed: TestBed) -> float:
    """Audit events the API server failed to log (e.g. dropped: its queue was full)."""
    assert bed.state
    text = _get_text(bed.state.apiserver_url + "/metrics", bed.state.admin_token)
    return sum(v for _, _, v in parse_samples(text, "apiserver_audit_error_total"))


VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
         "DELETE": "delete", "WATCH": "watch"}


@dataclass
class CtlMetrics:
    reconciles: float = 0.0
    errors: float = 0.0
    reconcile_time_sum: float = 0.0
    queue_wait_sum: float = 0.0
    queue_wait_count: float = 0.0
    depth: float = 0.0
    # the controller's own requests, by (resource, verb), from its own client counter
    api: Counter[tuple[str, str]] = field(default_factory=Counter)

    def minus(self, o: CtlMetrics) -> CtlMetrics:
        api = Counter(self.api)
        api.subtract(o.api)
        return CtlMetrics(self.reconciles - o.reconciles, self.errors - o.errors,
                          self.reconcile_time_sum - o.reconcile_time_sum,
                          self.queue_wait_sum - o.queue_wait_sum,
                          self.queue_wait_count - o.queue_wait_count, self.depth,
                          Counter({k: v for k, v in api.items() if v > 0}))

    @property
    def requests(self) -> float:
        return float(sum(self.api.values()))


def ours_metrics(text: str) -> CtlMetrics:
    m = CtlMetrics()
    for name, lb, v in (parse_samples(text, "controller_runtime_") + parse_samples(text, "workqueue_")
                        + parse_samples(text, "rollouts_kube_api_requests_total")):
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
        elif name == "rollouts_kube_api_requests_total":
            m.api[(lb.get("resource", ""), VERBS.get(lb.get("verb", ""), lb.get("verb", "")))] += int(v)
    return m


def argo_metrics(text: str) -> CtlMetrics:
    """Argo's rollout reconcile histogram (one series per rollout) and its client counter
    (every request of its Kubernetes clientset, watches and lease renewals included)."""
    m = CtlMetrics()
    for name, lb, v in (parse_samples(text, "rollout_reconcile") + parse_samples(text, "workqueue_")
                        + parse_samples(text, "controller_clientset_k8s_request_total")):
        if name == "rollout_reconcile_count":
            m.reconciles += v
        elif name == "rollout_reconcile_sum":
            m.reconcile_time_sum += v
        elif name == "rollout_reconcile_error":
            m.errors += v
        elif name == "workqueue_depth" and lb.get("name") == "rollouts":
            m.depth += v
        elif name == "controller_clientset_k8s_request_total":
            # Its URL parser labels a subresource write with the object's name as kind and
            # cannot read a protobuf create body (kind ""): counted all the same, relabelled.
            kind = lb.get("kind", "")
            if lb.get("name") in ("status", "scale"):
                kind = f"*/{lb['name']}"
            elif not kind:
                kind = "(create, kind unparsed)"
            m.api[(kind, lb.get("verb", "").lower())] += int(v)
    return m


def controller_metrics(port: int, argo: bool = False) -> CtlMetrics:
    try:
        text = _get_text(f"http://127.0.0.1:{port}/metrics", timeout=30)
    except OSError:
        return CtlMetrics(float("nan"), float("nan"))
    return argo_metrics(text) if argo else ours_metrics(text)


# --- the controller process --------------------------------------------------------------


class Controller:
    """Our controller (``python -m rollouts.cli.main controller``), with leader election as
    deploy/ runs it, so both controllers renew a Lease every 2 s."""

    argo = False

    def __init__(self, kubeconfig: str, logdir: Path, tag: str, args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.argv = [sys.executable, "-m", "rollouts.cli.main", "controller",
                     "--kubeconfig", kubeconfig, "--listen", "127.0.0.1:0",
                     "--leader-elect", "--lease-namespace", "default",
                     # /metrics and /readyz in plain HTTP, no token (the bench scrapes them)
                     "--metrics-listen", f"127.0.0.1:{self.port}", *args]
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
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
                                         start_new_session=True, env=self.env)

    def metrics(self) -> CtlMetrics:
        return controller_metrics(self.port, self.argo)

    async def _ready(self) -> bool:
        with contextlib.suppress(OSError):
            return bool(await asyncio.to_thread(
                _get_text, f"http://127.0.0.1:{self.port}/readyz", None, 2))
        return False

    async def wait_ready(self, timeout: float = 120) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            assert self.proc
            if self.proc.poll() is not None:
                raise RuntimeError(f"controller exited: {self.log.read_text()[-2000:]}")
            if await self._ready():
                return time.monotonic() - t0
            await asyncio.sleep(0.2)
        raise RuntimeError(f"controller not ready after {timeout:.0f} s (log {self.log})")

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


class ArgoController(Controller):
    """The real Argo Rollouts controller binary, all namespaces, leader election on (its
    default), metrics and healthz on free loopback ports."""

    argo = True

    def __init__(self, binary: Path, kubeconfig: str, logdir: Path, tag: str,
                 args: tuple[str, ...] = ()) -> None:
        super().__init__(kubeconfig, logdir, tag)
        self.healthz = free_port()
        self.argv = [str(binary), "--kubeconfig", kubeconfig, "--metricsPort", str(self.port),
                     "--healthzPort", str(self.healthz), *args]
        self.env = {**os.environ, "POD_NAMESPACE": ARGO_NAMESPACE}

    async def _ready(self) -> bool:
        # caches synced and workers started: its log says so (healthz answers earlier)
        return "Started controller" in self.log.read_text(errors="replace")


# --- API server commit times (audit log) ----------------------------------------------------

# Every write (create, update, patch; status and scale subresources too) to the objects whose
# versions mark a step, logged once the response is complete, with the response: its
# metadata.resourceVersion names the version the write committed. Nothing else is logged.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted, Panic]
omitManagedFields: true
rules:
  - level: RequestResponse
    verbs: [create, update, patch]
    resources:
      - group: apps
        resources: [replicasets, replicasets/status, replicasets/scale]
      - group: networking.istio.io
        resources: [virtualservices]
      - group: argoproj.io
        resources: [rollouts, rollouts/status]
      - group: rollouts.dev
        resources: [rollouts, rollouts/status]
  - level: None
"""
AUDIT_WRITES = frozenset({"create", "update", "patch"})
# step latencies from the API server's commit times (both ends from its clock)
SRV_AVAIL_HEALTHY = "pods available -> Healthy written (API server commit times)"
SRV_AVAIL_W20 = "pod available -> weight 20 written (API server commit times)"
SRV_W20_STEP = "weight 20 written -> step 1 (Paused) written (API server commit times)"


@dataclass(frozen=True)
class Version:
    """One committed version of one object: what a watch event and an audit event share."""

    group: str  # "" for the core API
    resource: str  # plural, without the subresource
    namespace: str
    name: str
    rv: str  # metadata.resourceVersion


def version_of(res: Resource, o: JSON) -> Version:
    md = o["metadata"]
    return Version(res.group, res.plural, md.get("namespace") or "", md["name"],
                   str(md["resourceVersion"]))


def audit_time(ts: str) -> float:
    """An audit stageTimestamp (RFC 3339, microseconds, UTC) as seconds since the epoch."""
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def audit_commit_times(lines: Iterable[str], wanted: Collection[Version]
                       ) -> tuple[dict[Version, float], int]:
    """The commit time of each wanted version: the earliest ``stageTimestamp`` of a
    successful write (audit.k8s.io/v1 Event, stage ResponseComplete) whose response object
    carries that resourceVersion (a later no-op write returns the same one). Streams the
    lines; returns the times found and the number of write events read."""
    want = set(wanted)
    out: dict[Version, float] = {}
    writes = 0
    for line in lines:
        if "ResponseComplete" not in line:
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue  # a line cut short (the log is read while it is written)
        if not isinstance(ev, dict) or ev.get("kind") != "Event" \
                or ev.get("stage") != "ResponseComplete" or ev.get("verb") not in AUDIT_WRITES:
            continue
        writes += 1
        if int((ev.get("responseStatus") or {}).get("code") or 0) >= 300:
            continue
        resp = ev.get("responseObject") or {}
        md = resp.get("metadata") or {}
        rv = md.get("resourceVersion")
        ref = ev.get("objectRef") or {}
        if not rv or resp.get("kind") == "Status" or not ref.get("resource"):
            continue
        v = Version(ref.get("apiGroup") or "", ref["resource"],
                    ref.get("namespace") or md.get("namespace") or "",
                    ref.get("name") or md.get("name") or "", str(rv))
        if v in want:
            t = audit_time(ev["stageTimestamp"])
            if v not in out or t < out[v]:
                out[v] = t
    return out, writes


@dataclass
class ServerLatencies:
    """One step's latencies from commit times, and how many rollouts' pairs of versions
    were found in the audit log (both ends) or not (skipped)."""

    values: list[float] = field(default_factory=list)
    matched: int = 0
    unmatched: int = 0


def server_latencies(pairs: dict[str, list[tuple[Version, Version]]],
                     times: dict[Version, float]) -> dict[str, ServerLatencies]:
    """Per step, ``times[end] - times[start]`` for each (start, end) pair of versions; a
    pair with either end missing from ``times`` is skipped and counted as unmatched."""
    out: dict[str, ServerLatencies] = {}
    for step, ps in pairs.items():
        s = out[step] = ServerLatencies()
        for a, b in ps:
            ta, tb = times.get(a), times.get(b)
            if ta is None or tb is None:
                s.unmatched += 1
            else:
                s.matched += 1
                s.values.append(tb - ta)
    return out


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
    # the first version that met each milestone, to look up its commit time
    healthy_v: Version | None = None
    paused_v: Version | None = None
    weight20_v: Version | None = None
    rs_available_v: dict[str, Version] = field(default_factory=dict)


class Observer:
    def __init__(self, keys: list[str], rollouts: Resource = ROLLOUTS) -> None:
        self.t: dict[str, RolloutTimes] = {k: RolloutTimes() for k in keys}
        self.rollouts = rollouts

    def on_rollout(self, o: JSON, now: float) -> None:
        md = o["metadata"]
        rt = self.t.get(f"{md['namespace']}/{md['name']}")
        if rt is None:
            return
        st = o.get("status") or {}
        # Argo writes observedGeneration as a string, ours as an integer
        if str(st.get("observedGeneration")) != str(md.get("generation")):
            return
        # Not by generation: Argo writes defaults into the template it was given (e.g.
        # resources: {}), so its first Healthy is generation 2 and the change generation 3.
        # Healthy before the template change is the create; Paused at step 1 with weight 20
        # happens only after it (a first rollout skips the steps).
        if rt.patched is None and st.get("phase") == "Healthy" and rt.healthy is None:
            rt.healthy = now
            rt.healthy_v = version_of(self.rollouts, o)
            rt.stable_hash = st.get("stableRS")
        weight = (((st.get("canary") or {}).get("weights") or {}).get("canary") or {}).get("weight")
        if (rt.patched is not None and st.get("phase") == "Paused"
                and st.get("currentStepIndex") == 1 and weight == 20 and rt.paused is None):
            rt.paused = now
            rt.paused_v = version_of(self.rollouts, o)

    def on_vs(self, o: JSON, now: float) -> None:
        md = o["metadata"]
        rt = self.t.get(f"{md['namespace']}/{md['name']}")
        if rt is not None and rt.patched is not None and rt.weight20 is None \
                and vs_canary_weight(o) == 20:
            rt.weight20 = now
            rt.weight20_v = version_of(VIRTUAL_SERVICES, o)

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
        if want > 0 and avail >= want and h not in rt.rs_available:
            rt.rs_available[h] = now
            rt.rs_available_v[h] = version_of(REPLICASETS, o)

    def version_pairs(self) -> dict[str, list[tuple[Version, Version]]]:
        """Per server-side step, the (start, end) versions of every rollout that reached
        both ends (the same rollouts as the watch-based figure of that step)."""
        pairs: dict[str, list[tuple[Version, Version]]] = {
            SRV_AVAIL_HEALTHY: [], SRV_AVAIL_W20: [], SRV_W20_STEP: []}
        for r in self.t.values():
            if r.healthy_v is not None and r.stable_hash is not None \
                    and r.stable_hash in r.rs_available_v:
                pairs[SRV_AVAIL_HEALTHY].append((r.rs_available_v[r.stable_hash], r.healthy_v))
            if r.patched is None:
                continue
            canary = [h for h in r.rs_seen if h != r.stable_hash]
            if len(canary) == 1 and r.weight20_v is not None and canary[0] in r.rs_available_v:
                pairs[SRV_AVAIL_W20].append((r.rs_available_v[canary[0]], r.weight20_v))
            if r.weight20_v is not None and r.paused_v is not None:
                pairs[SRV_W20_STEP].append((r.weight20_v, r.paused_v))
        return pairs


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
    # the steps from the API server's commit times (also in ``latencies``), with counts
    server: dict[str, ServerLatencies] = field(default_factory=dict)

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
    def __init__(self, bed: TestBed, kube: Kube, flavor: Flavor, argo_bin: Path | None) -> None:
        self.bed, self.kube, self.flavor, self.argo_bin = bed, kube, flavor, argo_bin
        assert bed.state
        self.bed_pids = {p.name: p.pid for p in bed.state.processes}

    async def snapshot(self, ctl: Controller) -> Snapshot:
        mem = proc_mem_kb(ctl.pid)
        api = await asyncio.to_thread(apiserver_requests, self.bed)
        cm = await asyncio.to_thread(ctl.metrics)
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
                depth = (await asyncio.to_thread(ctl.metrics)).depth
                max_depth = max(max_depth, depth)
                log(f"  {what}: {n}/{total} after {now - t0:.0f} s (queue depth {depth:.0f})")
                last_log = now
            await asyncio.sleep(0.25)
        return done(), max_depth

    async def size(self, n: int, n_ns: int, idle_s: float, timeout: float) -> SizeResult:
        nss = [f"bench-{n}-{i}" for i in range(n_ns)]
        apps = [(nss[i % n_ns], f"app-{i:04d}") for i in range(n)]
        keys = [f"{ns}/{a}" for ns, a in apps]
        obs = Observer(keys, self.flavor.rollouts)
        for ns in nss:
            await self.kube.create(NAMESPACES.path(), {"metadata": {"name": ns}})
        logs, tag = Path(self.bed.workdir) / "logs", f"{self.flavor.key}-n{n}"
        ctl: Controller
        if self.flavor.argo:
            assert self.argo_bin is not None
            ctl = ArgoController(self.argo_bin, self.bed.kubeconfig, logs, tag, self.flavor.args)
        else:
            ctl = Controller(self.bed.kubeconfig, logs, tag, self.flavor.args)
        ctl.start()
        notes: list[str] = []
        try:
            ready = await ctl.wait_ready()
            await asyncio.sleep(3)
            mem = proc_mem_kb(ctl.pid)
            trackers = [Tracker(self.kube, self.flavor.rollouts, obs.on_rollout),
                        Tracker(self.kube, VIRTUAL_SERVICES, obs.on_vs),
                        Tracker(self.kube, REPLICASETS, obs.on_rs, label_selector=HASH)]
            tasks = [asyncio.create_task(t.run()) for t in trackers]
            try:
                phases, created_s = await self._phases(n, apps, obs, ctl, idle_s, timeout, notes)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            marks = (" level=warning ", " level=error ") if self.flavor.argo else (" WARNING ",)
            warns = [next(ln.split(m, 1)[1][:160] for m in marks if m in ln) for ln in
                     ctl.log.read_text(errors="replace").splitlines()
                     if any(m in ln for m in marks)]
            if warns:
                kinds = Counter(warns)
                notes.append(f"the controller logged {len(warns)} warning(s): " + "; ".join(
                    f"{k!r} x{v}" for k, v in kinds.most_common(3)))
        finally:
            ctl.stop()
        if self.bed.audit_log is not None:
            await asyncio.sleep(AUDIT_FLUSH_S)
            failed = await asyncio.to_thread(apiserver_audit_errors, self.bed)
            note = await asyncio.to_thread(self.add_server_latencies, obs, phases,
                                           self.bed.audit_log)
            notes.append(f"{note}; audit events the API server failed to log: {failed:.0f}")
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
            await k.create(self.flavor.rollouts.path(ns), rollout(app, argo=self.flavor.argo))
            obs.t[f"{ns}/{app}"].created = time.monotonic()

        t_create = time.monotonic()
        await self._bounded([partial(create, ns, app) for ns, app in apps])
        created_s = time.monotonic() - t_create
        log(f"  {n} Rollouts created in {created_s:.1f} s")
        done, depth = await self._wait(lambda: sum(1 for r in obs.t.values() if r.healthy),
                                       n, timeout, "Healthy", ctl)
        settle = await self._quiet(ctl, max(60.0, n / 10))
        notes.append(f"create: the controller's requests went quiet {settle:.0f} s after the last "
                     "Healthy (counted in create)")
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
            await k.merge_patch(self.flavor.rollouts.path(ns, app),
                                {"spec": {"template": {"spec": {"containers": [container("bench:2")]}}}})

        await self._bounded([partial(change, ns, app) for ns, app in apps])
        log(f"  {n} templates patched in {time.monotonic() - s2.t:.1f} s")
        done, depth = await self._wait(
            lambda: sum(1 for r in obs.t.values() if r.weight20 and r.paused), n, timeout,
            "weight 20 + Paused", ctl)
        settle = await self._quiet(ctl, max(60.0, n / 10))
        notes.append(f"change: the controller's requests went quiet {settle:.0f} s after the last "
                     "Paused (counted in change)")
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
    def add_server_latencies(obs: Observer, phases: list[Phase], audit_log: Path) -> str:
        """Look up the commit time of every milestone version the watches saw in the audit
        log (streamed) and add each step's server-side latencies to its phase."""
        pairs = obs.version_pairs()
        wanted = {v for ps in pairs.values() for pair in ps for v in pair}
        t0 = time.monotonic()
        try:
            with open(audit_log, encoding="utf-8", errors="replace") as f:
                times, writes = audit_commit_times(f, wanted)
            size = audit_log.stat().st_size
        except FileNotFoundError:
            times, writes, size = {}, 0, 0
        srv = server_latencies(pairs, times)
        by_phase = {SRV_AVAIL_HEALTHY: "create", SRV_AVAIL_W20: "change", SRV_W20_STEP: "change"}
        for p in phases:
            for step, s in srv.items():
                if by_phase[step] == p.name:
                    p.server[step] = s
                    p.latencies[step] = s.values
        counts = "; ".join(f"{step.removesuffix(' (API server commit times)')}: {s.matched} "
                           f"matched, {s.unmatched} not found" for step, s in srv.items())
        return (f"API server commit times: audit log {size / 2**20:.1f} MiB, {writes} writes, "
                f"read in {time.monotonic() - t0:.1f} s; {len(times)} of {len(wanted)} "
                f"versions found; per step (rollouts): {counts}")

    @staticmethod
    async def _quiet(ctl: Controller, limit: float) -> float:
        """Wait until the controller sends nothing but Lease renewals for 6 s (at most
        ``limit``): the phase's requests and CPU include its tail (Events are sent
        asynchronously, Argo's rate-limited), and the idle window starts idle."""
        def busy(m: CtlMetrics) -> float:
            return sum(v for (res, _), v in m.api.items() if res != "leases")

        t0 = time.monotonic()
        last, since = busy(await asyncio.to_thread(ctl.metrics)), time.monotonic()
        while time.monotonic() - t0 < limit:
            await asyncio.sleep(2)
            now = busy(await asyncio.to_thread(ctl.metrics))
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= 6:
                return since - t0
        return time.monotonic() - t0

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
                                       "pod available -> weight 20 written": [],
                                       "weight 20 written -> step 1 (Paused) written": []}
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
            if r.weight20 is not None and r.paused is not None:
                lat["weight 20 written -> step 1 (Paused) written"].append(r.paused - r.weight20)
        return lat


async def _established(kube: Kube, name: str) -> None:
    for _ in range(150):
        crd = await kube.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/" + name)
        if any(c["type"] == "Established" and c["status"] == "True"
               for c in (crd.get("status") or {}).get("conditions") or []):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"CRD {name} not Established")


def _manifests(flavor: Flavor, argo_crds: Path | None) -> list[JSON]:
    if flavor.argo:
        assert argo_crds is not None
        paths = sorted(argo_crds.glob("*-crd.yaml"))
    else:
        paths = sorted((REPO / "crds").glob("*.yaml")) + sorted((REPO / "deploy").glob("*.yaml"))
    return [d for path in paths for d in yaml.safe_load_all(path.read_text())
            if d and d["kind"] != "Deployment"]


async def install(kube: Kube, flavor: Flavor, argo_crds: Path | None) -> None:
    """Ours: crds/ and deploy/ (RBAC, namespace) as a user applies them, no Deployment.
    Argo: its own CRDs (from the same module as its binary) and its namespace."""
    if flavor.argo:
        assert argo_crds is not None
        await kube.create(NAMESPACES.path(), {"metadata": {"name": ARGO_NAMESPACE}})
    docs = _manifests(flavor, argo_crds)
    for doc in docs:
        await apply(kube, doc)
    for doc in docs:
        if doc["kind"] == "CustomResourceDefinition":
            await _established(kube, doc["metadata"]["name"])


async def run_one(bed: TestBed, flavor: Flavor, n: int, n_ns: int, idle_s: float,
                  timeout: float, argo_dir: Path | None) -> SizeResult:
    """One configuration at one size on a bed started for it alone."""
    api = await make_api_client(bed.kubeconfig)  # pool of 100 connections: writes + 3 watches
    kube = Kube(api, timeout=60)
    try:
        await install(kube, flavor, argo_dir / "crds" if argo_dir else None)
        log(f"{flavor.label}: N = {n} rollouts in {n_ns} namespaces")
        argo_bin = argo_dir / "rollouts-controller" if argo_dir else None
        return await Run(bed, kube, flavor, argo_bin).size(n, n_ns, idle_s, timeout)
    finally:
        await api.close()

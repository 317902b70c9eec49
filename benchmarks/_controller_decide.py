"""CPU cost of the pure per-reconcile work: ``decide`` and what surrounds it in reconcile().

The inputs are produced by ``decide`` itself (run to a fixed point the way the reconciler
runs it), so they are exactly the states a real rollout passes through:

* healthy: first revision fully rolled out, 2 replicas available;
* paused: a new template at step 1 of (setWeight 20, pause {}), canary pod available;
* aborted: the same canary after an ``abort`` action (traffic back to stable).
"""

from __future__ import annotations

import gc
import statistics
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from rollouts.api.actions import new_action
from rollouts.api.spec import parse_spec
from rollouts.api.status import RolloutStatus
from rollouts.controller.decide import (
    Observations,
    ReplicaSetObs,
    RolloutInput,
    decide,
    template_hash,
)
from rollouts.controller.reconciler import owned_replica_sets

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
STEPS: list[dict[str, Any]] = [{"setWeight": 20}, {"pause": {}}]


def _template(image: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "shop"}},
            "spec": {"containers": [{"name": "app", "image": image}]}}


def _spec(image: str) -> dict[str, Any]:
    return {"replicas": 2, "selector": {"matchLabels": {"app": "shop"}},
            "template": _template(image),
            "strategy": {"canary": {
                "canaryService": "shop-canary", "stableService": "shop-stable",
                "trafficRouting": {"istio": {"virtualService": {"name": "shop",
                                                                "routes": ["primary"]}}},
                "steps": STEPS}}}


def _input(raw_spec: dict[str, Any], status: dict[str, Any], generation: int) -> RolloutInput:
    spec, errors = parse_spec(raw_spec)
    return RolloutInput("bench", "shop", generation, spec, tuple(errors),
                        RolloutStatus.from_dict(status))


def _settle(raw_spec: dict[str, Any], status: dict[str, Any], obs: Observations, gen: int,
            now: datetime) -> dict[str, Any]:
    """Run decide until the status stops changing (what the reconcile loop converges to)."""
    for _ in range(20):
        new = decide(_input(raw_spec, status, gen), obs, now).status.to_dict()
        if new == status:
            return status
        status = new
    raise RuntimeError("decide did not settle")


@dataclass
class Case:
    name: str
    ro: RolloutInput
    obs: Observations
    raw_spec: dict[str, Any]
    raw_status: dict[str, Any]
    phase: str


def cases() -> list[Case]:
    v1, v2 = _spec("shop:1"), _spec("shop:2")
    h1, h2 = template_hash(v1["template"]), template_hash(v2["template"])
    rs1 = ReplicaSetObs(h1, f"shop-{h1}", 2, 2, 2, 1)
    healthy_obs = Observations(v1["template"], {h1: rs1})
    healthy = _settle(v1, {}, healthy_obs, 1, NOW)

    rs2 = ReplicaSetObs(h2, f"shop-{h2}", 1, 1, 1, 2)
    canary_obs = Observations(v2["template"], {h1: rs1, h2: rs2})
    paused = _settle(v2, healthy, canary_obs, 2, NOW + timedelta(seconds=10))

    abort = dict(paused)
    abort["pendingAction"] = new_action("abort", "bench", NOW + timedelta(seconds=20)).to_dict()
    aborted = _settle(v2, abort, canary_obs, 2, NOW + timedelta(seconds=21))

    out = []
    for name, raw_spec, st, obs, gen in (("healthy", v1, healthy, healthy_obs, 1),
                                         ("mid-canary, paused at setWeight 20", v2, paused,
                                          canary_obs, 2),
                                         ("aborted", v2, aborted, canary_obs, 2)):
        out.append(Case(name, _input(raw_spec, st, gen), obs, raw_spec, st,
                        str(st.get("phase"))))
    return out


@dataclass
class Timing:
    name: str
    phase: str
    calls: int
    median_us: float
    p99_us: float
    batch_median_us: float  # timeit: median over batches of the mean per call (gc off)


def _measure(fn: Callable[[], object], calls: int, batch: int) -> tuple[float, float, float]:
    for _ in range(min(calls, 200)):  # warm-up
        fn()
    samples: list[int] = []
    perf = time.perf_counter_ns
    gc.collect()
    for _ in range(calls):
        t0 = perf()
        fn()
        samples.append(perf() - t0)
    samples.sort()
    med = samples[len(samples) // 2] / 1e3
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1e3
    runs = timeit.repeat(fn, number=batch, repeat=max(5, calls // batch))
    return med, p99, statistics.median(runs) / batch * 1e6


def run(calls: int) -> list[Timing]:
    """decide() per state, and the pure steps reconcile() runs around it."""
    out = []
    for c in cases():
        med, p99, bmed = _measure(partial(decide, c.ro, c.obs, NOW + timedelta(seconds=30)),
                                  calls, 100)
        out.append(Timing(f"decide: {c.name}", c.phase, calls, med, p99, bmed))
    paused = cases()[1]
    extras: list[tuple[str, Callable[[], object]]] = [
        ("parse_spec (per reconcile)", lambda: parse_spec(paused.raw_spec)),
        ("RolloutStatus.from_dict + to_dict (per reconcile)",
         lambda: RolloutStatus.from_dict(paused.raw_status).to_dict()),
    ]
    for name, fn in extras:
        med, p99, bmed = _measure(fn, calls, 100)
        out.append(Timing(name, "", calls, med, p99, bmed))
    return out


def owned_scan(n_replicasets: int, calls: int) -> Timing:
    """reconcile() filters every cached ReplicaSet of the namespace on each call.

    With R ReplicaSets in the namespace this is O(R) per reconcile, so O(N^2) per resync
    of N rollouts in one namespace. Measured on R synthetic ReplicaSet dicts of the shape
    the informer stores: the comprehension walks every cached ReplicaSet of the cluster to
    pick the namespace's, then ``owned_replica_sets`` walks those.
    """
    store: list[dict[str, Any]] = []
    for i in range(n_replicasets):  # spread over 5 namespaces, as on the test bed
        store.append({"metadata": {
            "name": f"app{i}-abc", "namespace": f"bench-{i % 5}", "uid": f"rs{i}",
            "labels": {"app": f"app{i}", "rollouts-pod-template-hash": f"h{i}"},
            "ownerReferences": [{"uid": f"ro{i // 2}", "controller": True, "kind": "Rollout"}]},
            "spec": {"replicas": 2}, "status": {}})

    def scan() -> object:
        return owned_replica_sets([r for r in store if r["metadata"].get("namespace") == "bench-2"],
                                  "ro7")

    med, p99, bmed = _measure(scan, calls, 10)
    return Timing(f"ReplicaSet scan in reconcile, {n_replicasets} RS cached", "", calls, med, p99,
                  bmed)

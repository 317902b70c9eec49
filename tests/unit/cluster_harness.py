"""The simulated cluster that drives ``decide`` in the strategy tests (``test_decide`` for
the canary, ``test_bluegreen`` for blue-green): ReplicaSets are pods with the second each
becomes available, AnalysisRuns have the phases the tests set, and status is stored as
JSON between reconciles (so every reconcile is also a controller restart). Each
reconcile checks that ``decide`` is pure and leaves its input alone; the strategy's own
contract is its subclass's ``_check``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rollouts.api.spec import parse_spec
from rollouts.api.status import RolloutStatus
from rollouts.controller.decide import (
    AnalysisRunObs,
    ClusterAction,
    CreateAnalysisRun,
    CreateReplicaSet,
    Decision,
    DeleteReplicaSet,
    Event,
    Observations,
    ReplicaSetObs,
    RolloutInput,
    ScaleReplicaSet,
    TerminateAnalysisRun,
    decide,
    template_hash,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def template(image: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "shop"}},
            "spec": {"containers": [{"name": "shop", "image": image}]}}


def h(image: str) -> str:
    return template_hash(template(image))


@dataclass
class FakeRS:
    hash: str
    revision: int
    pods: list[float] = field(default_factory=list)  # second at which each pod is available
    ephemeral: str = ""

    @property
    def replicas(self) -> int:
        return len(self.pods)

    def available(self, t: float) -> int:
        return sum(1 for p in self.pods if p <= t)


class SimCluster:
    run_limit = 600.0  # run_until's default limit (seconds)

    def __init__(self, spec: dict[str, Any], pod_delay: float = 0.0) -> None:
        self.spec = spec
        self.generation = 1
        self.status: dict[str, Any] = {}
        self.rss: dict[str, FakeRS] = {}
        self.t = 0.0
        self.pod_delay = pod_delay
        self.delay_for: dict[str, float] = {}  # per-hash pod delay (inf: pods never ready)
        self.log: list[tuple[float, ClusterAction]] = []
        self.events: list[Event] = []
        self.env_errors: tuple[str, ...] = ()
        self.last: Decision | None = None
        self.runs: dict[str, AnalysisRunObs] = {}  # AnalysisRuns; phases set by the tests
        self.created_runs: list[CreateAnalysisRun] = []

    # --- the world ------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.t)

    def st(self) -> RolloutStatus:
        return RolloutStatus.from_dict(self.status)

    def edit(self, fn: Callable[[dict[str, Any]], None]) -> None:
        """Change the spec like `kubectl edit` (bumps metadata.generation)."""
        fn(self.spec)
        self.generation += 1

    def set_image(self, image: str) -> None:
        self.edit(lambda s: s.update(template=template(image)))

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def rs_obs(self, k: str, r: FakeRS) -> ReplicaSetObs:
        return ReplicaSetObs(k, f"shop-{k}", r.replicas, ready=r.available(self.t),
                             available=r.available(self.t), revision=r.revision,
                             current=r.replicas, ephemeral=r.ephemeral)

    def observe(self) -> Observations:
        tmpl = self.spec.get("template") if isinstance(self.spec, dict) else None
        return Observations(
            template=tmpl if isinstance(tmpl, dict) else None,
            replica_sets={k: self.rs_obs(k, r) for k, r in self.rss.items()},
            environment_errors=self.env_errors, analysis_runs=dict(self.runs))

    def replicas(self, hsh: str) -> int:
        return self.rss[hsh].replicas if hsh in self.rss else 0

    # --- the controller -------------------------------------------------------------

    def reconcile(self) -> Decision:
        spec, errors = parse_spec(self.spec)
        before = copy.deepcopy(self.status)
        status = RolloutStatus.from_dict(json.loads(json.dumps(self.status)))
        ro = RolloutInput("shop-ns", "shop", self.generation, spec, tuple(errors), status)
        obs = self.observe()
        d = decide(ro, obs, self.now)
        again = decide(ro, obs, self.now)
        assert again == d, "decide must be a pure function of its inputs"
        assert self.status == before, "decide must not mutate its input"
        self._check(ro, obs, d)
        for a in d.actions:
            self._apply(a)
        self.status = json.loads(json.dumps(d.status.to_dict()))
        self.events.extend(d.events)
        self.last = d
        return d

    def _check(self, ro: RolloutInput, obs: Observations, d: Decision) -> None:
        """The strategy's contract on every decision (subclasses)."""

    def _apply(self, a: ClusterAction) -> None:
        self.log.append((self.t, a))
        if isinstance(a, CreateReplicaSet):
            assert a.hash not in self.rss
            self.rss[a.hash] = FakeRS(a.hash, a.revision)
            self._scale(self.rss[a.hash], a.replicas)
        elif isinstance(a, ScaleReplicaSet):
            self._scale(self.rss[a.hash], a.replicas)
        elif isinstance(a, DeleteReplicaSet):
            del self.rss[a.hash]
        elif isinstance(a, CreateAnalysisRun):
            assert a.name not in self.runs
            self.runs[a.name] = AnalysisRunObs(a.name, "Running")
            self.created_runs.append(a)
        elif isinstance(a, TerminateAnalysisRun):
            run = self.runs[a.name]
            # Argo: a run stopped while measuring ends Successful ("run terminated")
            self.runs[a.name] = AnalysisRunObs(run.name, "Successful", "run terminated", True) \
                if run.phase in ("Pending", "Running") else run
        else:
            self._apply_other(a)

    def _apply_other(self, a: ClusterAction) -> None:
        """The strategy's own actions (traffic, Services, pod metadata)."""

    def _scale(self, rs: FakeRS, n: int) -> None:
        if n > rs.replicas:
            ready = self.t + self.delay_for.get(rs.hash, self.pod_delay)
            rs.pods += [ready] * (n - rs.replicas)
        else:  # not-ready pods go first, like a ReplicaSet does
            rs.pods = sorted(rs.pods)[:n]

    # --- driving --------------------------------------------------------------------

    def run(self, seconds: float, dt: float = 1.0) -> None:
        end = self.t + seconds
        while self.t < end - 1e-9:
            self.reconcile()
            self.advance(dt)

    def run_until(self, pred: Callable[[], bool], limit: float | None = None,
                  dt: float = 1.0) -> float:
        """Reconcile every dt seconds until pred() holds after a reconcile; the time then."""
        limit = self.run_limit if limit is None else limit
        end = self.t + limit
        while self.t <= end:
            self.reconcile()
            if pred():
                return self.t
            self.advance(dt)
        raise AssertionError(f"condition not reached in {limit}s; status: {self.status}")

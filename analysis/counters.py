"""Counter snapshots -> per-interval increments.

Prometheus gives cumulative counters. The tests need integer counts per interval, so we
difference raw counters ourselves instead of using ``rate()``/``increase()``, which
extrapolate to non-integers.

Counter resets are handled per series, as Prometheus' ``increase()`` does: with per-pod
counters (``ArmSnapshot.pods``) an arm's increment is the sum of its pods' increments, and a
pod whose counters decrease restarted (its new values are its increment); the other pods'
history never enters the interval. Without per-pod counters a decrease of an arm's sum is
ambiguous (one of several pods restarted, or all), so that interval carries no data.

New pods (``warmup_s`` > 0): a pod's series first appearing (or restarting) at scrape t
marks its start; its requests are excluded from its arm until t + warmup_s, on both arms,
on every scale-up. Latency is judged only in intervals without such young or restarted
pods (the histogram is aggregated over pods).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "ArmIncrement",
    "ArmSnapshot",
    "CounterTracker",
    "Increment",
    "Snapshot",
    "to_increments",
]

# Counters are integers; anything further from an integer than this came from rate()
# or a broken exporter.
_INT_TOL = 1e-6


@dataclass(frozen=True)
class ArmSnapshot:
    """Cumulative counters of one arm (canary or baseline) at one scrape.

    ``buckets`` maps a histogram's upper bound ``le`` (ms or s; only consistency matters,
    ``math.inf`` for ``+Inf``) to its cumulative count, as Prometheus' ``_bucket`` series.
    Any value may be NaN or None: the scrape is then treated as missing.

    ``pods`` (optional) maps a pod name to its cumulative ``(requests, bad)``, e.g. from
    ``sum by (pod) (istio_requests_total{...})`` and its 5xx part. Given for the
    baseline/stable arm it lets the sequential judge measure the pod-to-pod dispersion
    of error rates (adaptive margin); given for the canary arm it tells how many canary
    pods share the traffic. A NaN/None pod value drops the per-pod data of that scrape
    only (the totals are still used).
    """

    requests: float | None
    bad: float | None = 0.0
    buckets: Mapping[float, float | None] | None = None
    pods: Mapping[str, tuple[float | None, float | None]] | None = None
    # Pods known to be older than the new-pod warm-up at this scrape (e.g. their series
    # already existed warm-up seconds before the first scrape): never treated as young.
    warm_pods: Collection[str] = ()


@dataclass(frozen=True)
class Snapshot:
    """Both arms' counters at one time (seconds, any epoch). ``None`` arm = missing scrape."""

    timestamp: float
    canary: ArmSnapshot | None
    baseline: ArmSnapshot | None


@dataclass(frozen=True)
class ArmIncrement:
    """Integer counts of one arm over one interval.

    ``le`` are the finite histogram bounds (sorted) and ``le_counts`` the number of
    requests at most that slow; ``hist_count`` is the histogram's total (``+Inf``).
    """

    requests: int
    bad: int
    le: tuple[float, ...] = ()
    le_counts: tuple[int, ...] = ()
    hist_count: int = 0
    pods: tuple[tuple[str, int, int], ...] | None = None  # (pod, requests, bad) increments
    # (requests, bad) of young pods left out of ``requests``/``bad`` (new-pod policy)
    young: tuple[int, int] = (0, 0)

    def slower_than(self) -> tuple[int, ...]:
        """Requests slower than each bound (the exceedance counts the latency test uses)."""
        return tuple(self.hist_count - c for c in self.le_counts)


@dataclass(frozen=True)
class Increment:
    """Counts of both arms between two valid scrapes ``start`` < ``end``."""

    start: float
    end: float
    canary: ArmIncrement
    baseline: ArmIncrement
    latency_valid: bool = True  # False: young/restarted pods in this interval, skip latency

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def exposure(self) -> float:
        """Measured canary share of requests, rho = n_c / (n_c + n_b); NaN without traffic."""
        n = self.canary.requests + self.baseline.requests
        return self.canary.requests / n if n > 0 else math.nan


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _arm_missing(arm: ArmSnapshot | None) -> bool:
    if arm is None or _missing(arm.requests) or _missing(arm.bad):
        return True
    return arm.buckets is not None and any(_missing(v) for v in arm.buckets.values())


@dataclass(frozen=True)
class _Clean:
    requests: float
    bad: float
    le: tuple[float, ...]
    cum: tuple[float, ...]  # cumulative counts per finite bound
    total: float  # +Inf bucket (or requests when there is no histogram)
    pods: dict[str, tuple[float, float]] | None = None


def _as_count(x: float, what: str) -> float:
    if math.isinf(x):
        raise ValueError(f"{what} is infinite")
    if x < 0:
        raise ValueError(f"{what} is negative ({x}); counters never go below zero")
    return x


def _clean_pods(arm: ArmSnapshot, name: str) -> dict[str, tuple[float, float]] | None:
    if arm.pods is None:
        return None
    out: dict[str, tuple[float, float]] = {}
    for pod, (r, b) in arm.pods.items():
        if _missing(r) or _missing(b):
            return None  # per-pod data of this scrape unusable; totals still are
        assert r is not None and b is not None
        rv = _as_count(float(r), f"{name} pod {pod} requests")
        bv = _as_count(float(b), f"{name} pod {pod} bad events")
        if bv > rv + _INT_TOL:
            raise ValueError(f"{name} pod {pod}: bad events ({bv:g}) exceed requests ({rv:g})")
        out[str(pod)] = (rv, bv)
    return out


@dataclass(frozen=True)
class _PodIncrements:
    pods: tuple[tuple[str, int, int], ...]  # every pod's (requests, bad) increment
    appeared: frozenset[str]  # pods whose series is new this interval
    restarted: frozenset[str]  # pods whose counters decreased this interval
    vanished: frozenset[str]  # pods whose series disappeared


def _pod_increments(
    old: dict[str, tuple[float, float]],
    new: dict[str, tuple[float, float]],
    name: str,
) -> _PodIncrements:
    out = []
    appeared, restarted = set(), set()
    for pod in sorted(new):
        r, b = new[pod]
        o = old.get(pod)
        # New pod: its counters started at zero. A decrease: the pod restarted, and its new
        # values are its increase (Prometheus' increase() per series).
        if o is None:
            appeared.add(pod)
        elif r >= o[0] - _INT_TOL and b >= o[1] - _INT_TOL:
            r, b = r - o[0], b - o[1]
        else:
            restarted.add(pod)
        ri = _to_int(r, f"{name} pod {pod} requests")
        bi = _to_int(b, f"{name} pod {pod} bad events")
        if bi > ri:
            raise ValueError(f"{name} pod {pod}: {bi} bad events but only {ri} requests")
        out.append((pod, ri, bi))
    return _PodIncrements(
        tuple(out), frozenset(appeared), frozenset(restarted), frozenset(set(old) - set(new))
    )


def _clean(arm: ArmSnapshot, name: str) -> _Clean:
    assert arm.requests is not None and arm.bad is not None
    req = _as_count(float(arm.requests), f"{name} requests")
    bad = _as_count(float(arm.bad), f"{name} bad events")
    if bad > req + _INT_TOL:
        raise ValueError(f"{name} bad events ({bad:g}) exceed requests ({req:g})")
    pods = _clean_pods(arm, name)
    if arm.buckets is None:
        return _Clean(req, bad, (), (), req, pods)
    items = sorted((float(k), float(v)) for k, v in arm.buckets.items() if v is not None)
    if not items or not math.isinf(items[-1][0]):
        raise ValueError(f"{name} histogram has no +Inf bucket")
    prev = 0.0
    for le, v in items:
        _as_count(v, f"{name} bucket le={le:g}")
        if v < prev - _INT_TOL:
            raise ValueError(
                f"{name} histogram buckets are not cumulative: le={le:g} has {v:g} < {prev:g}"
            )
        prev = v
    finite = items[:-1]
    return _Clean(
        req, bad, tuple(k for k, _ in finite), tuple(v for _, v in finite), items[-1][1], pods
    )


def _to_int(x: float, what: str) -> int:
    r = round(x)
    if abs(x - r) > _INT_TOL:
        raise ValueError(
            f"{what} increment {x:g} is not an integer: pass raw counters, not rate()/increase()"
        )
    return int(r)


def _arm_reset(old: _Clean, new: _Clean) -> bool:
    olds = (old.requests, old.bad, old.total, *old.cum)
    news = (new.requests, new.bad, new.total, *new.cum)
    return any(n < o - _INT_TOL for o, n in zip(olds, news, strict=True))


def _arm_increment(old: _Clean, new: _Clean, name: str) -> ArmIncrement:
    if new.le != old.le:
        raise ValueError(f"{name} histogram bucket bounds changed between scrapes")
    olds = (old.requests, old.bad, old.total, *old.cum)
    news = (new.requests, new.bad, new.total, *new.cum)
    diffs = tuple(n - o for o, n in zip(olds, news, strict=True))
    req = _to_int(diffs[0], f"{name} requests")
    bad = _to_int(diffs[1], f"{name} bad events")
    total = _to_int(diffs[2], f"{name} histogram count")
    cum = tuple(_to_int(d, f"{name} bucket") for d in diffs[3:])
    if bad > req:
        raise ValueError(f"{name}: {bad} bad events but only {req} requests in one interval")
    if any(b < a for a, b in itertools.pairwise(cum)) or (cum and cum[-1] > total):
        raise ValueError(f"{name} histogram bucket increments are not monotonic in le")
    return ArmIncrement(req, bad, new.le, cum, total)


@dataclass
class CounterTracker:
    """Streaming snapshot -> increment conversion for one rollout step.

    ``push`` returns the increment since the last valid snapshot, or ``None`` for the first
    snapshot, for missing scrapes (the next increment then spans the gap) and for an
    interval in which an arm without per-pod counters reset (no data).

    ``warmup_s`` > 0 enables the new-pod policy (see the module docstring): pods of an arm
    with per-pod counters count only from ``warmup_s`` after their series first appeared
    (or restarted); pods present at the first scrape count from that scrape on, unless
    listed in ``ArmSnapshot.warm_pods``.
    """

    warmup_s: float = 0.0
    _last_t: float | None = None
    _last: tuple[_Clean, _Clean] | None = field(default=None, repr=False)
    _born: tuple[dict[str, float], dict[str, float]] = field(
        default_factory=lambda: ({}, {}), repr=False
    )
    resets_skipped: int = 0

    def push(self, snap: Snapshot) -> Increment | None:
        t = float(snap.timestamp)
        if math.isnan(t) or math.isinf(t):
            raise ValueError(f"invalid timestamp {snap.timestamp!r}")
        if self._last_t is not None and t <= self._last_t:
            raise ValueError(f"timestamps must increase: {t:g} after {self._last_t:g}")
        if _arm_missing(snap.canary) or _arm_missing(snap.baseline):
            return None  # missing scrape: keep the previous snapshot as the reference
        assert snap.canary is not None and snap.baseline is not None
        cur = (_clean(snap.canary, "canary"), _clean(snap.baseline, "baseline"))
        if cur[0].le != cur[1].le:
            raise ValueError("canary and baseline histograms have different bucket bounds")
        for arm_snap, born in zip((snap.canary, snap.baseline), self._born, strict=True):
            for pod in arm_snap.warm_pods:
                born.setdefault(str(pod), -math.inf)
        prev, prev_t = self._last, self._last_t
        if prev is not None and any(
            p.pods is not None and c.pods is None for p, c in zip(prev, cur, strict=True)
        ):
            return None  # per-pod values missing (NaN) in this scrape: no data
        self._last, self._last_t = cur, t
        if prev is None or prev_t is None:
            for c, born in zip(cur, self._born, strict=True):
                for pod in c.pods or {}:
                    born.setdefault(pod, t)
            return None
        arms = []
        latency_ok = True
        for old, new, born, name in zip(prev, cur, self._born, ("canary", "baseline"), strict=True):
            arm, ok = self._arm(old, new, born, name, prev_t, t)
            if arm is None:
                self.resets_skipped += 1
                return None  # an arm's sum fell without per-pod counters: ambiguous
            arms.append(arm)
            latency_ok &= ok
        return Increment(prev_t, t, arms[0], arms[1], latency_ok)

    def _arm(
        self,
        old: _Clean,
        new: _Clean,
        born: dict[str, float],
        name: str,
        start: float,
        end: float,
    ) -> tuple[ArmIncrement | None, bool]:
        """One arm's increment (None: ambiguous reset) and whether latency may use it."""
        if old.pods is None or new.pods is None:
            for pod in new.pods or {}:
                born.setdefault(pod, end)
            if _arm_reset(old, new):
                return None, False
            return _arm_increment(old, new, name), True
        pods = _pod_increments(old.pods, new.pods, name)
        for pod in pods.appeared | pods.restarted:
            born[pod] = end  # a new or restarted pod: cold from this scrape on
        warm = [
            (p, r, b)
            for p, r, b in pods.pods
            if self.warmup_s <= 0 or start >= born.get(p, end) + self.warmup_s
        ]
        warm_names = {p for p, _, _ in warm}
        young = any(r > 0 and p not in warm_names for p, r, _ in pods.pods)
        req = sum(r for _, r, _ in warm)
        bad = sum(b for _, _, b in warm)
        young_counts = (
            sum(r for _, r, _ in pods.pods) - req,
            sum(b for _, _, b in pods.pods) - bad,
        )
        if new.le != old.le:
            raise ValueError(f"{name} histogram bucket bounds changed between scrapes")
        # The histogram is summed over pods: a restarted or vanished pod corrupts its
        # increment, and young pods cannot be taken out of it.
        if _arm_reset(old, new) or pods.restarted or pods.vanished or young:
            return ArmIncrement(req, bad, new.le, (), 0, tuple(warm), young_counts), False
        agg = _arm_increment(old, new, name)
        return (
            ArmIncrement(
                req, bad, agg.le, agg.le_counts, agg.hist_count, tuple(warm), young_counts
            ),
            True,
        )


def to_increments(snapshots: Sequence[Snapshot]) -> list[Increment]:
    """All increments of a snapshot series (see :class:`CounterTracker`)."""
    tracker = CounterTracker()
    out: list[Increment] = []
    for s in snapshots:
        inc = tracker.push(s)
        if inc is not None:
            out.append(inc)
    return out

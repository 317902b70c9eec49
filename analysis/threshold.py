"""Argo/Flagger-style judge: fixed conditions checked every interval, with a failure limit.

No error-rate control: whether a harmless canary trips it depends on base rate, traffic
and weight. Kept for compatibility and as a baseline in the benchmark.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .counters import Increment
from .histogram import histogram_quantile
from .verdict import Decision, MetricVerdict, Phase, Verdict

__all__ = ["Condition", "ThresholdJudge"]


@dataclass(frozen=True)
class Condition:
    """Fail the measurement when the canary's value exceeds ``limit``.

    metric: "error_rate" (bad / requests) or "latency" (the ``quantile`` from histograms,
    in the buckets' unit). relative=True compares with ``limit`` x the baseline's value.
    window_s: the look-back of each measurement (e.g. a 5-minute rate).
    """

    metric: Literal["error_rate", "latency"]
    limit: float
    relative: bool = False
    quantile: float = 0.99
    window_s: float = 60.0


def _window_value(c: Condition, incs: Sequence[Increment], canary: bool) -> float:
    arms = [i.canary if canary else i.baseline for i in incs]
    if c.metric == "error_rate":
        n = sum(a.requests for a in arms)
        return sum(a.bad for a in arms) / n if n > 0 else math.nan
    if not arms or not arms[0].le:
        raise ValueError("latency condition needs histogram buckets")
    cum = [sum(a.le_counts[j] for a in arms) for j in range(len(arms[0].le))]
    return histogram_quantile(c.quantile, arms[0].le, cum, sum(a.hist_count for a in arms))


class ThresholdJudge:
    """Every ``interval_s`` one measurement: Failed if any condition is violated.

    Roll back when failed measurements exceed ``failure_limit`` (Argo's failureLimit;
    Flagger's ``threshold`` t is failure_limit = t - 1). With consecutive=True a
    successful measurement resets the count.
    """

    name = "threshold"

    def __init__(
        self,
        conditions: Sequence[Condition],
        failure_limit: int = 0,
        interval_s: float = 60.0,
        consecutive: bool = False,
    ) -> None:
        if not conditions:
            raise ValueError("at least one condition is needed")
        if failure_limit < 0 or interval_s <= 0:
            raise ValueError("failure_limit must be >= 0 and interval_s > 0")
        self.conditions = tuple(conditions)
        self.failure_limit = failure_limit
        self.interval_s = interval_s
        self.consecutive = consecutive
        self.failures = 0
        self.measurements = 0
        self._incs: deque[Increment] = deque()
        self._next: float | None = None
        self._final: Verdict | None = None
        self._last = Verdict(self.name, Decision.CONTINUE, Phase.INCONCLUSIVE, "waiting for data")

    def update(self, inc: Increment) -> Verdict:
        if self._final is not None:
            return self._final
        self._incs.append(inc)
        horizon = max(c.window_s for c in self.conditions)
        while self._incs and self._incs[0].end <= inc.end - horizon:
            self._incs.popleft()
        if self._next is None:
            self._next = inc.start + self.interval_s
        if inc.end + 1e-9 < self._next:
            return self._last
        self._next = inc.end + self.interval_s
        self._last = self._measure(inc.end)
        if self._last.decision is Decision.ROLLBACK:
            self._final = self._last
        return self._last

    def _measure(self, now: float) -> Verdict:
        mvs: list[MetricVerdict] = []
        violated: list[str] = []
        nodata = False
        for c in self.conditions:
            window = [i for i in self._incs if i.end > now - c.window_s - 1e-9]
            v = _window_value(c, window, canary=True)
            limit = c.limit
            if c.relative:
                limit = c.limit * _window_value(c, window, canary=False)
            label = f"{c.metric}{'' if c.metric == 'error_rate' else f' p{c.quantile * 100:g}'}"
            if math.isnan(v) or math.isnan(limit):
                nodata = True
                mvs.append(
                    MetricVerdict(
                        label,
                        Decision.CONTINUE,
                        Phase.INCONCLUSIVE,
                        f"{label}: no data in the window",
                    )
                )
                continue
            bad = v > limit
            if bad:
                violated.append(f"{label} {v:.4g} > {limit:.4g}")
            mvs.append(
                MetricVerdict(
                    label,
                    Decision.CONTINUE,
                    Phase.FAILED if bad else Phase.SUCCESSFUL,
                    f"{label} {v:.4g} {'>' if bad else '<='} {limit:.4g}",
                    estimate=v,
                    threshold=limit,
                )
            )
        self.measurements += 1
        if violated:
            self.failures += 1
        elif self.consecutive and not nodata:
            self.failures = 0
        over = self.failures > self.failure_limit
        if violated:
            phase = Phase.FAILED
        elif nodata:
            phase = Phase.INCONCLUSIVE
        else:
            phase = Phase.SUCCESSFUL
        text = (
            ("; ".join(violated) if violated else "all conditions hold")
            + f" ({self.failures} failed measurement(s), limit {self.failure_limit})"
            + (": roll back" if over else "")
        )
        return Verdict(
            self.name, Decision.ROLLBACK if over else Decision.CONTINUE, phase, text, tuple(mvs)
        )

"""Latency regressions from Prometheus histograms.

For each bucket bound b, "slower than b" is a bad event, so the error-rate test applies
unchanged to the exceedance counts. One e-process per bound; the average of e-processes
with fixed weights is an e-process, so E = mean_b E_b is valid for the whole histogram.

Which bounds to use (those carrying 1-99 % of the mass) is decided once, from the
*pooled* histogram of both arms at the first interval where the arms together have
``min_baseline_requests`` requests, and the intervals seen so far are then replayed as
evidence (no interval is wasted). This is valid because the test conditions on the
pooled counts: given every interval's pooled bucket counts and the canary's request
count, the canary's bucket counts are multivariate hypergeometric under "same latency
distribution" (margin 1), and each bound's binomial likelihood ratio has expectation
<= 1 under a hypergeometric law (convex order). The selection is a function of what is
conditioned on, so it cannot bias the test. (With a margin above 1 the same argument is
approximate.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .eprocess import RatioEProcess, RatioSummary

__all__ = ["BoundSummary", "LatencyEProcess", "select_bounds"]


def select_bounds(
    le: Sequence[float],
    le_counts: Sequence[int],
    total: int,
    lo: float = 0.01,
    hi: float = 0.99,
) -> list[int]:
    """Indices of bounds whose exceedance share (slower than le) lies in [lo, hi]."""
    if total <= 0:
        return []
    return [i for i, c in enumerate(le_counts) if lo <= (total - c) / total <= hi]


@dataclass(frozen=True)
class BoundSummary:
    le: float
    baseline_share: float  # share of baseline requests slower than le at selection time
    ratio: RatioSummary


class LatencyEProcess:
    """Average of exceedance e-processes over the bounds selected from the baseline."""

    def __init__(
        self,
        r0: float = 1.0,
        alternatives: ArrayLike | None = None,
        min_baseline_requests: int = 100,
        mass: tuple[float, float] = (0.01, 0.99),
    ) -> None:
        self.r0 = r0
        self._alternatives = alternatives
        self.min_baseline_requests = min_baseline_requests
        self.mass = mass
        self.le: tuple[float, ...] | None = None
        self.selected: list[int] = []
        self.shares: list[float] = []
        self.procs: list[RatioEProcess] = []
        self._warm_le: list[int] = []
        self._warm_total = 0
        self._pending: list[tuple[tuple[int, ...], int, tuple[int, ...], int]] = []
        self._max_log_e = 0.0
        self._no_bounds = False

    @property
    def warming_up(self) -> bool:
        """True until the bounds are chosen (the intervals so far are then replayed)."""
        return not self.procs and not self._no_bounds

    def update(
        self,
        le: Sequence[float],
        canary_le: Sequence[int],
        canary_total: int,
        baseline_le: Sequence[int],
        baseline_total: int,
    ) -> float:
        """Add one interval's bucket increments (cumulative in le); return the e-value."""
        le_t = tuple(float(x) for x in le)
        if self.le is None:
            self.le = le_t
            self._warm_le = [0] * len(le_t)
        elif le_t != self.le:
            raise ValueError("histogram bucket bounds changed during the analysis")
        if not (len(canary_le) == len(baseline_le) == len(le_t)):
            raise ValueError("bucket counts do not match the bucket bounds")
        if self.warming_up:
            self._pending.append(
                (tuple(canary_le), canary_total, tuple(baseline_le), baseline_total)
            )
            self._warm_le = [
                a + b + c for a, b, c in zip(self._warm_le, baseline_le, canary_le, strict=True)
            ]
            self._warm_total += baseline_total + canary_total
            if self._warm_total < self.min_baseline_requests:
                return 1.0
            self.selected = select_bounds(le_t, self._warm_le, self._warm_total, *self.mass)
            self.shares = [
                (self._warm_total - self._warm_le[i]) / self._warm_total for i in self.selected
            ]
            self.procs = [RatioEProcess(self.r0, self._alternatives) for _ in self.selected]
            # No usable bound (e.g. all requests in one bucket): latency stays silent.
            self._no_bounds = not self.procs
            pending, self._pending = self._pending, []
        else:
            pending = [(tuple(canary_le), canary_total, tuple(baseline_le), baseline_total)]
        for c_le, c_tot, b_le, b_tot in pending:
            for i, p in zip(self.selected, self.procs, strict=True):
                p.update(c_tot, b_tot, c_tot - c_le[i], b_tot - b_le[i])
            self._max_log_e = max(self._max_log_e, self.log_e_value)
        le_now = self.log_e_value
        self._max_log_e = max(self._max_log_e, le_now)
        return math.exp(min(le_now, 700.0))

    @property
    def log_e_value(self) -> float:
        if not self.procs:
            return 0.0
        logs = np.array([p.log_e_value for p in self.procs])
        m = float(logs.max())
        return m + math.log(float(np.mean(np.exp(logs - m))))

    @property
    def e_value(self) -> float:
        return math.exp(min(self.log_e_value, 700.0))

    @property
    def p_value(self) -> float:
        return min(1.0, math.exp(-self._max_log_e))

    def bounds(self, alpha_cs: float = 0.05) -> list[BoundSummary]:
        out = []
        for i, share, p in zip(self.selected, self.shares, self.procs, strict=True):
            assert self.le is not None
            out.append(BoundSummary(self.le[i], share, p.summary(alpha_cs)))
        return out

    def promotable(self, r_tol: float, alpha: float) -> bool:
        """Every selected bound shows ratio < r_tol (intersection-union: no correction needed)."""
        if not self.procs:
            return False
        thr = math.log(1.0 / alpha)
        return all(p.log_e_at_most(r_tol) >= thr for p in self.procs)

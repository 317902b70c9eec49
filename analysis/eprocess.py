"""Conditional-binomial mixture e-process for the canary/baseline rate ratio.

Per interval, given the e = y_c + y_b bad events of both arms and the measured canary
share of requests rho, the canary's share of bad events is Binomial(e, theta(delta)) with

    theta(delta) = rho e^delta / (rho e^delta + 1 - rho),  delta = log(rate_c / rate_b).

Up to terms free of delta its log-likelihood is

    L(delta) = y_c delta - e log(1 + rho (e^delta - 1)),

so one interval costs O(grid) and anything common to both arms (load, diurnal cycles,
a downstream outage) cancels. The e-process against H0: delta <= delta0 is the mixture
sum_j w_j exp(L_t(delta_j) - L_t(delta0)) over alternatives delta_j > delta0; every
component is a likelihood ratio whose expectation is <= 1 under any delta <= delta0, so
by Ville's inequality P(ever E >= 1/alpha) <= alpha however often one looks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import logsumexp

__all__ = [
    "CS_GRID",
    "RatioEProcess",
    "default_alternatives",
    "interval_loglik",
    "log_evalue_paths",
    "mixture_alternatives",
]

FloatArray = NDArray[np.float64]

# Fine log grid of ratios on which the confidence sequence is computed: step 10^(1/40)
# (~5.9 %) from 1/50 to 50. Mixture components for the CS sit at fixed index offsets, so a
# null value and its alternatives are all grid points.
_CS_STEP = math.log(10.0) / 40.0
CS_GRID: FloatArray = np.exp(_CS_STEP * np.arange(-68, 69, dtype=np.float64))
# Offsets (in grid steps) of the CS mixture components: ratios 1.26 .. 5.0 times the null.
_CS_OFFSETS = np.arange(4, 29, 3)
_M = CS_GRID.size
_UP = np.arange(_M)[:, None] + _CS_OFFSETS[None, :]
_DOWN = np.arange(_M)[:, None] - _CS_OFFSETS[None, :]
# Components that fall off the grid are dropped; the weights depend on the index only
# (never on data), so each side stays an e-process.
_UP_OK = _UP < _M
_DOWN_OK = _DOWN >= 0
_UP_IDX = np.minimum(_UP, _M - 1)
_DOWN_IDX = np.maximum(_DOWN, 0)
_LOG_K = math.log(float(_CS_OFFSETS.size))


def _lse_rows(x: FloatArray) -> FloatArray:
    """Row-wise log-sum-exp (numpy only: scipy's wrapper costs more than the math here)."""
    m = x.max(axis=1)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):  # rows without components give log(0) = -inf
        out: FloatArray = np.log(np.exp(x - m[:, None]).sum(axis=1)) + m
    return out


def default_alternatives(r0: float, lo: float = 1.25, hi: float = 5.0, n: int = 8) -> FloatArray:
    """Log-spaced alternative ratios in [lo, hi], keeping only those above the margin r0."""
    grid = np.geomspace(lo, hi, n)
    grid = grid[grid > r0 * (1 + 1e-9)]
    if grid.size == 0:
        raise ValueError(f"no alternative in [{lo}, {hi}] lies above the margin r0={r0}")
    return grid


def mixture_alternatives(
    r0: float,
    grid: tuple[float, float, int],
    tail: tuple[float, float, int] | None = None,
    tail_weight: float = 0.0,
) -> tuple[FloatArray, FloatArray]:
    """Alternatives and weights: a main log grid (lo, hi, n) sharing 1 - tail_weight and a
    tail grid (lo, hi, n) of large ratios sharing tail_weight (both kept above r0).

    The tail gives catastrophic regressions (10 x ... 1000 x, a canary failing every
    request) an alternative that fits them, at the price of log(1 / (1 - tail_weight)) in
    evidence for moderate effects.
    """
    main = np.geomspace(grid[0], grid[1], int(grid[2]))
    main = main[main > r0 * (1 + 1e-9)]
    t = np.zeros(0)
    if tail is not None and tail_weight > 0:
        t = np.geomspace(tail[0], tail[1], int(tail[2]))
        t = t[(t > r0 * (1 + 1e-9)) & (t > grid[1] * (1 + 1e-9))]
    if main.size == 0 and t.size == 0:
        raise ValueError(f"no alternative ratio lies above the margin r0={r0}")
    if t.size == 0:
        return main, np.full(main.size, 1.0 / main.size)
    if main.size == 0:
        return t, np.full(t.size, 1.0 / t.size)
    w = np.concatenate(
        [np.full(main.size, (1 - tail_weight) / main.size), np.full(t.size, tail_weight / t.size)]
    )
    return np.concatenate([main, t]), w


def interval_loglik(
    log_ratios: ArrayLike, y_c: ArrayLike, e: ArrayLike, rho: ArrayLike
) -> FloatArray:
    """L(delta) for each interval (leading axes) and each delta (last axis).

    Intervals with rho = 0 or rho = 1 give exactly 0 (no information), as they must.
    """
    d = np.asarray(log_ratios, dtype=np.float64)
    yc = np.asarray(y_c, dtype=np.float64)[..., None]
    ev = np.asarray(e, dtype=np.float64)[..., None]
    r = np.asarray(rho, dtype=np.float64)[..., None]
    out: FloatArray = yc * d - ev * np.log1p(r * np.expm1(d))
    return out


def log_evalue_paths(
    n_c: ArrayLike,
    n_b: ArrayLike,
    y_c: ArrayLike,
    y_b: ArrayLike,
    r0: float,
    alternatives: ArrayLike,
    weights: ArrayLike | None = None,
) -> FloatArray:
    """Vectorised log E_t for many replicates at once (time on the last axis).

    Inputs are per-interval counts of shape (..., T); the result has the same shape and
    holds log E after each interval. Used by the benchmark; equal to feeding the intervals
    one by one to :class:`RatioEProcess`.
    """
    nc = np.asarray(n_c, dtype=np.float64)
    nb = np.asarray(n_b, dtype=np.float64)
    yc = np.asarray(y_c, dtype=np.float64)
    e = yc + np.asarray(y_b, dtype=np.float64)
    n = nc + nb
    rho = np.divide(nc, n, out=np.zeros_like(n), where=n > 0)
    alt = np.log(np.asarray(alternatives, dtype=np.float64))
    d0 = math.log(r0)
    grid = np.concatenate([[d0], alt])
    cum = np.cumsum(interval_loglik(grid, yc, e, rho), axis=-2)
    w = _weights(weights, alt.size)
    out: FloatArray = logsumexp(cum[..., 1:] - cum[..., :1] + np.log(w), axis=-1)
    return out


def _weights(weights: ArrayLike | None, n: int) -> FloatArray:
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or np.any(w < 0) or not math.isclose(float(w.sum()), 1.0):
        raise ValueError("mixture weights must be nonnegative, one per alternative, sum 1")
    return w


@dataclass(frozen=True)
class RatioSummary:
    """Evidence about one rate ratio at one time."""

    e_value: float
    max_e_value: float
    p_value: float
    estimate: float  # conditional MLE of the ratio (grid resolution); NaN without events
    ci_low: float  # anytime-valid confidence sequence (0 and inf when unbounded)
    ci_high: float
    n_c: int
    n_b: int
    y_c: int
    y_b: int


class RatioEProcess:
    """Streaming mixture e-process for H0: rate_c / rate_b <= r0.

    ``update`` costs O(len(alternatives) + len(CS_GRID)); about 10 microseconds.
    """

    def __init__(
        self,
        r0: float = 1.0,
        alternatives: ArrayLike | None = None,
        weights: ArrayLike | None = None,
    ) -> None:
        if not (r0 > 0 and math.isfinite(r0)):
            raise ValueError(f"margin r0 must be positive and finite, got {r0}")
        alt = default_alternatives(r0) if alternatives is None else np.asarray(alternatives)
        alt = np.asarray(alt, dtype=np.float64)
        if alt.ndim != 1 or alt.size == 0 or np.any(alt <= r0):
            raise ValueError("alternatives must be a non-empty list of ratios above r0")
        self.r0 = float(r0)
        self.alternatives = alt
        self._logw = np.log(_weights(weights, alt.size))
        self._grid = np.concatenate([[math.log(r0)], np.log(alt), np.log(CS_GRID)])
        self._expm1 = np.expm1(self._grid)
        self._cum = np.zeros(self._grid.size)
        self._max_log_e = 0.0
        self.n_c = self.n_b = self.y_c = self.y_b = 0

    def update(self, n_c: int, n_b: int, y_c: int, y_b: int) -> float:
        """Add one interval's counts; return the new e-value."""
        for v, what in ((n_c, "n_c"), (n_b, "n_b"), (y_c, "y_c"), (y_b, "y_b")):
            if v < 0:
                raise ValueError(f"{what} must be nonnegative, got {v}")
        if y_c > n_c or y_b > n_b:
            raise ValueError("bad events exceed requests")
        self.n_c += n_c
        self.n_b += n_b
        self.y_c += y_c
        self.y_b += y_b
        n = n_c + n_b
        e = y_c + y_b
        if n > 0 and e > 0:  # otherwise the interval carries no information
            rho = n_c / n
            self._cum += y_c * self._grid - e * np.log1p(rho * self._expm1)
        le = self.log_e_value
        self._max_log_e = max(self._max_log_e, le)
        return math.exp(min(le, 700.0))

    @property
    def log_e_value(self) -> float:
        k = self.alternatives.size
        x = self._cum[1 : 1 + k] - self._cum[0] + self._logw
        m = float(x.max())
        return m + math.log(float(np.exp(x - m).sum()))

    @property
    def e_value(self) -> float:
        return math.exp(min(self.log_e_value, 700.0))

    @property
    def p_value(self) -> float:
        """Anytime-valid p-value min(1, 1 / max_s E_s)."""
        return min(1.0, math.exp(-self._max_log_e))

    def _cs_cum(self) -> FloatArray:
        out: FloatArray = self._cum[1 + self.alternatives.size :]
        return out

    def confidence_sequence(self, alpha: float = 0.05) -> tuple[float, float]:
        """Anytime-valid (1 - alpha) interval for the ratio, by inverting two one-sided tests.

        A value r is excluded when E_up(r) (alternatives above r) or E_down(r) (below r)
        reaches 2 / alpha. Returns (0, inf) sides when nothing is excluded there.
        """
        lu, ld = self._cs_log_e()
        keep = np.maximum(lu, ld) < math.log(2.0 / alpha)
        if not keep.any():  # tests disagree at grid resolution: fall back to the estimate
            est = self.estimate
            return (est, est)
        idx = np.flatnonzero(keep)
        lo = 0.0 if idx[0] == 0 else float(CS_GRID[idx[0]])
        hi = math.inf if idx[-1] == CS_GRID.size - 1 else float(CS_GRID[idx[-1]])
        return (lo, hi)

    def _cs_log_e(self) -> tuple[FloatArray, FloatArray]:
        cum = self._cs_cum()
        big = np.where(_UP_OK, cum[_UP_IDX], -np.inf)
        small = np.where(_DOWN_OK, cum[_DOWN_IDX], -np.inf)
        return _lse_rows(big) - _LOG_K - cum, _lse_rows(small) - _LOG_K - cum

    def log_e_at_most(self, r_tol: float) -> float:
        """log E for H0: ratio >= r_tol (alternatives below it): the early-promotion test."""
        # Test at the largest grid ratio <= r_tol: its null contains every ratio >= r_tol.
        j = int(np.searchsorted(CS_GRID, r_tol * (1 + 1e-9), side="right")) - 1
        if j < 0:
            return 0.0
        _, ld = self._cs_log_e()
        return float(ld[j])

    @property
    def estimate(self) -> float:
        if self.y_c + self.y_b == 0:
            return math.nan
        return float(CS_GRID[int(np.argmax(self._cs_cum()))])

    def summary(self, alpha_cs: float = 0.05) -> RatioSummary:
        lo, hi = self.confidence_sequence(alpha_cs)
        return RatioSummary(
            e_value=self.e_value,
            max_e_value=math.exp(min(self._max_log_e, 700.0)),
            p_value=self.p_value,
            estimate=self.estimate,
            ci_low=lo,
            ci_high=hi,
            n_c=self.n_c,
            n_b=self.n_b,
            y_c=self.y_c,
            y_b=self.y_b,
        )

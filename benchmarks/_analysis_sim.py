"""Vectorised rollout simulator for the analysis benchmark (numpy only)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm

# Prometheus' default histogram buckets, in ms (istio_request_duration_milliseconds uses ms).
LE = np.array([5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000], dtype=np.float64)
IntA = NDArray[np.int64]
FloatA = NDArray[np.float64]


@dataclass(frozen=True)
class Scenario:
    name: str
    rps: float = 100.0
    p0: float = 0.01
    ratio: float = 1.0
    dt: float = 15.0
    step_s: float = 600.0
    weights: tuple[float, ...] = (0.05, 0.10, 0.25, 0.50)
    log_sd: float = 0.5
    shift: float = 1.0  # canary latency multiplier
    tail_frac: float = 0.0  # share of canary requests that get +tail_ms
    tail_ms: float = 300.0
    hetero_sd: float = 0.0  # canary error multiplier exp(N(0, sd^2)), constant per run
    stable_pods: int = 5  # stable pods (equal traffic); their multipliers have the same sd
    shock: bool = False  # both arms' errors x5 for 5 minutes at a random time
    weight_change: bool = False  # weight jumps to w x U(0.5, 2) at a random time per step
    missing: float = 0.0  # probability that a scrape is missing
    kind: str = "error"  # "null", "error", "latency"
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_steps(self) -> int:
        return round(self.step_s * len(self.weights) / self.dt)

    @property
    def safe(self) -> bool:
        return self.ratio == 1.0 and self.shift == 1.0 and self.tail_frac == 0.0


@dataclass
class Batch:
    """Per-interval counts of a batch of replicates, shape (reps, T) [, bounds]."""

    nc: IntA
    nb: IntA
    yc: IntA
    yb: IntA
    hc: IntA  # canary requests <= each bound (reps, T, B)
    hb: IntA
    sum_c: FloatA  # histogram _sum (ms) per interval
    sum_b: FloatA
    observed: NDArray[np.bool_]  # scrape at the end of the interval succeeded
    pod_nb: IntA  # per stable pod (reps, T, K)
    pod_yb: IntA
    t_end: FloatA  # seconds since start, (T,)


def _lognorm_cdf(x: FloatA, median: float, sd: float) -> FloatA:
    with np.errstate(divide="ignore"):
        out: FloatA = norm.cdf((np.log(np.maximum(x, 0.0)) - math.log(median)) / sd)
    return out


def cell_probs(s: Scenario, canary: bool) -> tuple[FloatA, float, float]:
    """Bucket cell probabilities (B + 1 cells) and the latency mean / sd in ms."""
    sd = s.log_sd
    med = 100.0 * (s.shift if canary else 1.0)
    cdf = _lognorm_cdf(LE, med, sd)
    m1 = med * math.exp(sd**2 / 2)
    var = (math.exp(sd**2) - 1) * m1**2
    if canary and s.tail_frac > 0:
        cdf = (1 - s.tail_frac) * cdf + s.tail_frac * _lognorm_cdf(LE - s.tail_ms, med, sd)
        m2 = m1 + s.tail_ms
        mean = (1 - s.tail_frac) * m1 + s.tail_frac * m2
        var = var + s.tail_frac * (1 - s.tail_frac) * s.tail_ms**2
        m1 = mean
    cells = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
    return np.clip(cells, 0, None) / cells.clip(0, None).sum(), m1, math.sqrt(var)


def nominal_weights(s: Scenario) -> FloatA:
    t = (np.arange(s.n_steps) + 0.5) * s.dt
    idx = np.minimum((t // s.step_s).astype(int), len(s.weights) - 1)
    return np.asarray(s.weights, dtype=np.float64)[idx]


def simulate(s: Scenario, reps: int, rng: np.random.Generator) -> Batch:
    t_n = s.n_steps
    w = np.broadcast_to(nominal_weights(s), (reps, t_n)).copy()
    t_mid = (np.arange(t_n) + 0.5) * s.dt
    if s.weight_change:
        step = np.minimum((t_mid // s.step_s).astype(int), len(s.weights) - 1)
        for k in range(len(s.weights)):
            at = k * s.step_s + rng.uniform(0, s.step_s, reps)
            factor = rng.uniform(0.5, 2.0, reps)
            hit = (step[None, :] == k) & (t_mid[None, :] >= at[:, None])
            w = np.where(hit, np.minimum(w * factor[:, None], 0.9), w)
    n = rng.poisson(s.rps * s.dt, (reps, t_n))
    nc = rng.binomial(n, w)
    nb = n - nc
    mult = np.ones((reps, 1))
    if s.hetero_sd > 0:
        mult = np.exp(rng.normal(0, s.hetero_sd, (reps, 1)))
    common = np.ones((reps, t_n))
    if s.shock:
        start = rng.uniform(0, t_n * s.dt - 300, reps)
        on = (t_mid[None, :] >= start[:, None]) & (t_mid[None, :] < start[:, None] + 300)
        common = np.where(on, 5.0, 1.0)
    pc = np.clip(s.p0 * s.ratio * mult * common, 0, 1)
    k = s.stable_pods
    pod_m = np.ones((reps, k))
    if s.hetero_sd > 0:
        # Stable pods differ as the canary does; normalised so the stable arm's mean error
        # rate stays p0 (the canary's multiplier relative to stable is exactly as before).
        pod_m = np.exp(rng.normal(0, s.hetero_sd, (reps, k)))
        pod_m /= pod_m.mean(axis=1, keepdims=True)
    pod_nb = rng.multinomial(nb, np.full(k, 1.0 / k))  # (reps, T, K)
    pb = np.clip(s.p0 * common[..., None] * pod_m[:, None, :], 0, 1)
    pod_yb = rng.binomial(pod_nb, pb)
    yc = rng.binomial(nc, pc)
    yb = pod_yb.sum(axis=-1)
    cc, mean_c, sd_c = cell_probs(s, True)
    cb, mean_b, sd_b = cell_probs(s, False)
    hc = np.cumsum(rng.multinomial(nc, cc), axis=-1)[..., :-1]
    hb = np.cumsum(rng.multinomial(nb, cb), axis=-1)[..., :-1]
    # _sum by the normal approximation of a sum of n latencies
    sum_c = nc * mean_c + np.sqrt(nc) * sd_c * rng.standard_normal((reps, t_n))
    sum_b = nb * mean_b + np.sqrt(nb) * sd_b * rng.standard_normal((reps, t_n))
    observed = np.ones((reps, t_n), dtype=bool)
    if s.missing > 0:
        observed = rng.random((reps, t_n)) >= s.missing
        observed[:, -1] = True
    return Batch(
        nc.astype(np.int64),
        nb.astype(np.int64),
        yc.astype(np.int64),
        yb.astype(np.int64),
        hc.astype(np.int64),
        hb.astype(np.int64),
        sum_c,
        sum_b,
        observed,
        pod_nb.astype(np.int64),
        pod_yb.astype(np.int64),
        (np.arange(t_n) + 1) * s.dt,
    )


def merge_missing(x: NDArray[np.int64], observed: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Counts as a judge sees them when scrapes fail: carried into the next good scrape."""
    if observed.all():
        return x
    extra = x.ndim - observed.ndim
    obs = observed.reshape(observed.shape + (1,) * extra)
    c = np.cumsum(x, axis=1)
    t_n = observed.shape[1]
    idx = np.where(observed, np.arange(t_n)[None, :], -1)
    last = np.maximum.accumulate(idx, axis=1)  # last observed index <= t
    prev = np.concatenate([np.full((observed.shape[0], 1), -1), last[:, :-1]], axis=1)
    prev_b = prev.reshape(prev.shape + (1,) * extra)
    base = np.where(
        prev_b >= 0,
        np.take_along_axis(c, np.broadcast_to(np.maximum(prev_b, 0), c.shape), axis=1),
        0,
    )
    out: NDArray[np.int64] = np.where(obs, c - base, 0)
    return out

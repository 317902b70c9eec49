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
    canary_pods: tuple[int, ...] = (1, 2, 3, 5)  # canary pods per step: a new pod each step
    slow_start: bool = False  # new/restarted pods: errors x5 and latency x2 at start, gone at 90 s
    restart: str = ""  # "stable" | "canary": one pod restarts mid-rollout (days of history)
    kind: str = "error"  # "null", "error", "latency"
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_steps(self) -> int:
        return round(self.step_s * len(self.weights) / self.dt)

    @property
    def safe(self) -> bool:
        return self.ratio == 1.0 and self.shift == 1.0 and self.tail_frac == 0.0


SLOW_S = 90.0  # a cold pod's transient: linear decay to normal over its first 90 s


def slow_factor(age: FloatA, peak: float) -> FloatA:
    """Multiplier of a pod of this age (s) under slow start: peak at 0, 1 from SLOW_S on."""
    out: FloatA = np.asarray(
        1.0 + (peak - 1.0) * np.clip(1.0 - age / SLOW_S, 0.0, 1.0) * (age >= 0), dtype=np.float64
    )
    return out


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
    # New-pod policy as the judge applies it (per-pod series): counts of pods younger than
    # the warm-up (since first seen), per arm, and intervals whose latency may be judged.
    nc_young: IntA
    yc_young: IntA
    pod_young: NDArray[np.bool_]  # stable pod young in this interval (reps, T, K)
    latency_ok: NDArray[np.bool_]  # (reps, T): no young pod serving, no restart
    reset_interval: NDArray[np.int64]  # (reps,) interval of a restart, -1 for none
    # canary pods whose requests the judge counts (warm, equal traffic) per interval, (T,)
    canary_warm_pods: IntA
    # all canary pods serving per interval (T,): what new_pods="include" counts
    canary_pods: IntA


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
    out: FloatA = np.asarray(s.weights, dtype=np.float64)[idx]
    return out


def _cells(s: Scenario, canary: bool, mult: FloatA) -> FloatA:
    """Bucket cell probabilities (T, B + 1) for a per-interval latency multiplier."""
    out = np.empty((mult.size, LE.size + 1))
    cache: dict[float, FloatA] = {}
    for i, m in enumerate(mult):
        key = round(float(m), 3)
        if key not in cache:
            cache[key] = cell_probs(replace_shift(s, canary, key), True)[0]
        out[i] = cache[key]
    return out


def replace_shift(s: Scenario, canary: bool, m: float) -> Scenario:
    from dataclasses import replace

    base = s.shift if canary else 1.0
    # cell_probs uses s.shift only for the canary: express a stable multiplier as a canary
    return replace(s, shift=base * m, tail_frac=s.tail_frac if canary else 0.0)


def simulate(s: Scenario, reps: int, rng: np.random.Generator, warmup_s: float = 120.0) -> Batch:
    t_n = s.n_steps
    w = np.broadcast_to(nominal_weights(s), (reps, t_n)).copy()
    t_mid = (np.arange(t_n) + 0.5) * s.dt
    t_start = np.arange(t_n) * s.dt
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
    # -- canary pods: the pods of the current step that started at its beginning ("new"),
    # the older ones, and (restart scenario) one older pod restarting mid-rollout
    step_i = np.minimum((t_start // s.step_s).astype(int), len(s.weights) - 1)
    pods = np.asarray(s.canary_pods, dtype=np.float64)[step_i]
    prev = np.concatenate([[0.0], np.asarray(s.canary_pods, dtype=np.float64)])[step_i]
    step_t0 = step_i * s.step_s
    age_new = t_mid - step_t0  # (T,)
    share_new = (pods - prev) / pods
    # first seen at the end of its first interval; warm for intervals starting warm-up later
    young_new = t_start < step_t0 + s.dt + warmup_s
    k_st = s.stable_pods
    r_at = np.full(reps, -1, dtype=np.int64)
    share_rst = np.zeros((reps, t_n))
    age_rst = np.full((reps, t_n), -1.0)
    young_rst = np.zeros((reps, t_n), dtype=bool)
    if s.restart:
        lo, hi = round(0.3 * t_n), round(0.8 * t_n)
        r_at = rng.integers(lo, hi, reps)  # the pod restarts during interval r_at
        after = np.arange(t_n)[None, :] >= r_at[:, None]
        age_rst = np.where(after, t_mid[None, :] - (r_at[:, None] + 0.5) * s.dt, -1.0)
        young_rst = after & (t_start[None, :] < (r_at[:, None] + 1) * s.dt + warmup_s)
        if s.restart == "canary":
            share_rst = np.where(after, 1.0 / np.maximum(pods, 2.0)[None, :], 0.0)
    slow_e = (lambda a: slow_factor(a, 5.0)) if s.slow_start else (lambda a: np.ones_like(a))
    slow_l = (lambda a: slow_factor(a, 2.0)) if s.slow_start else (lambda a: np.ones_like(a))
    share_new_b = np.broadcast_to(share_new, (reps, t_n))
    share_old = np.clip(1.0 - share_new_b - share_rst, 0.0, 1.0)
    groups = np.stack([share_old, share_new_b, share_rst], axis=-1)
    groups /= groups.sum(-1, keepdims=True)
    nc_g = rng.multinomial(nc, groups)  # (reps, T, 3)
    base_pc = s.p0 * s.ratio * mult * common
    if math.isinf(s.ratio):
        base_pc = np.ones((reps, t_n))
    pc_g = np.stack(
        [
            base_pc,
            base_pc * slow_e(np.broadcast_to(age_new, (reps, t_n))),
            base_pc * slow_e(age_rst),
        ],
        axis=-1,
    )
    yc_g = rng.binomial(nc_g, np.clip(pc_g, 0, 1))
    yc = yc_g.sum(-1)
    young_g = np.stack(
        [np.zeros((reps, t_n), dtype=bool), np.broadcast_to(young_new, (reps, t_n)),
         young_rst & (s.restart == "canary")],
        axis=-1,
    )
    nc_young = np.where(young_g, nc_g, 0).sum(-1)
    yc_young = np.where(young_g, yc_g, 0).sum(-1)
    # -- stable pods (equal traffic); pod 0 restarts in the "stable" restart scenario
    pod_m = np.ones((reps, k_st))
    if s.hetero_sd > 0:
        # Stable pods differ as the canary does; normalised so the stable arm's mean error
        # rate stays p0 (the canary's multiplier relative to stable is exactly as before).
        pod_m = np.exp(rng.normal(0, s.hetero_sd, (reps, k_st)))
        pod_m /= pod_m.mean(axis=1, keepdims=True)
    pod_nb = rng.multinomial(nb, np.full(k_st, 1.0 / k_st))  # (reps, T, K)
    pb = s.p0 * common[..., None] * pod_m[:, None, :]
    pod_young = np.zeros((reps, t_n, k_st), dtype=bool)
    if s.restart == "stable":
        pb[..., 0] = pb[..., 0] * slow_e(age_rst)
        pod_young[..., 0] = young_rst
    pod_yb = rng.binomial(pod_nb, np.clip(pb, 0, 1))
    yb = pod_yb.sum(axis=-1)
    # -- latency: per canary group (the slow ones shifted), stable pod 0 vs the rest
    hc = np.zeros((reps, t_n, LE.size), dtype=np.int64)
    sum_c = np.zeros((reps, t_n))
    for g in range(3):
        if not nc_g[..., g].any():
            continue
        if g == 0 or not s.slow_start:
            cc, mean_c, _ = cell_probs(s, True)
            h = rng.multinomial(nc_g[..., g], cc)
        else:
            age = np.broadcast_to(age_new, (reps, t_n)) if g == 1 else age_rst
            m = slow_l(age)
            uniq, inv = np.unique(np.round(m, 3), return_inverse=True)
            cells = _cells(s, True, uniq)[inv.reshape(m.shape)]
            h = rng.multinomial(nc_g[..., g], cells)
            _, mean_c, _ = cell_probs(s, True)
        hc += np.cumsum(h, axis=-1)[..., :-1]
        sum_c += nc_g[..., g] * mean_c
    cb, mean_b, sd_b = cell_probs(s, False)
    if s.restart == "stable" and s.slow_start:
        m = slow_l(age_rst)
        uniq, inv = np.unique(np.round(m, 3), return_inverse=True)
        cells = _cells(s, False, uniq)[inv.reshape(m.shape)]
        hb = np.cumsum(rng.multinomial(pod_nb[..., 0], cells), axis=-1)[..., :-1]
        hb += np.cumsum(rng.multinomial(nb - pod_nb[..., 0], cb), axis=-1)[..., :-1]
    else:
        hb = np.cumsum(rng.multinomial(nb, cb), axis=-1)[..., :-1]
    sum_c = sum_c + np.sqrt(nc) * cell_probs(s, True)[2] * rng.standard_normal((reps, t_n))
    sum_b = nb * mean_b + np.sqrt(nb) * sd_b * rng.standard_normal((reps, t_n))
    observed = np.ones((reps, t_n), dtype=bool)
    if s.missing > 0:
        observed = rng.random((reps, t_n)) >= s.missing
        observed[:, -1] = True
    latency_ok = ~(
        (nc_young > 0) | pod_young.any(-1) | (np.arange(t_n)[None, :] == r_at[:, None])
    )
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
        ((np.arange(t_n) + 1) * s.dt).astype(np.float64),
        nc_young.astype(np.int64),
        yc_young.astype(np.int64),
        pod_young,
        latency_ok,
        r_at,
        np.where(young_new, prev, pods).astype(np.int64),
        pods.astype(np.int64),
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

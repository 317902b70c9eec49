"""Vectorised decision rules compared by the benchmark. Each returns, per replicate, the
index of the interval at which it rolls back (or promotes), -1 for never."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm

from analysis import (
    SequentialConfig,
    adaptive_log_evalue_paths,
    default_alternatives,
    hodges_lehmann_interval,
)
from analysis.eprocess import CS_GRID, mixture_alternatives
from analysis.heterogeneity import effective_pods
from analysis.histogram import histogram_quantiles

from ._analysis_sim import LE, Batch, Scenario, merge_missing

IntA = NDArray[np.int64]
NEVER = -1


def first_true(mask: NDArray[np.bool_]) -> IntA:
    hit = mask.any(axis=1)
    out: IntA = np.where(hit, mask.argmax(axis=1), NEVER)
    return out


def combine(*idx: IntA) -> IntA:
    """Earliest of several rules (any metric fails -> roll back)."""
    big = np.iinfo(np.int64).max
    m = np.min(np.stack([np.where(i < 0, big, i) for i in idx]), axis=0)
    out: IntA = np.where(m == big, NEVER, m)
    return out


def _log_e(
    nc: IntA,
    nb: IntA,
    yc: IntA,
    yb: IntA,
    r0: float,
    alts: NDArray[np.float64],
    weights: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """log E paths; inputs (reps, T, ...) with extra trailing axes allowed (bounds)."""
    n = (nc + nb).astype(np.float64)
    rho = np.divide(nc, n, out=np.zeros_like(n), where=n > 0)
    e = (yc + yb).astype(np.float64)
    grid = np.concatenate([[math.log(r0)], np.log(alts)])
    ll = yc[..., None] * grid - e[..., None] * np.log1p(rho[..., None] * np.expm1(grid))
    cum = np.cumsum(ll, axis=1)
    lw = np.log(weights) if weights is not None else np.full(alts.size, -math.log(alts.size))
    out: NDArray[np.float64] = logsumexp(cum[..., 1:] - cum[..., :1] + lw, axis=-1)
    return out


def _down_alts(r_tol: float) -> tuple[float, NDArray[np.float64]]:
    j = int(np.searchsorted(CS_GRID, r_tol * (1 + 1e-9), side="right")) - 1
    g = float(CS_GRID[j])
    step = math.log(10.0) / 40.0
    return g, g * np.exp(-step * np.arange(4, 29, 3))


def _views(b: Batch, pods: bool, policy: bool = True) -> dict[str, NDArray[np.int64]]:
    """The counts the judge uses: with per-pod input, young pods (new-pod policy) are taken
    out of both arms (``policy=False``: new_pods="include", every request counts at once);
    without it, an interval in which an arm's sum fell (a restart) is dropped. Missing
    scrapes are merged into the next one."""
    obs = b.observed
    drop = (np.arange(b.nc.shape[1])[None, :] == b.reset_interval[:, None]) & (not pods)
    keep = (~drop).astype(np.int64)
    young = pods and policy
    pod_keep = keep[..., None] * (~b.pod_young if young else np.ones_like(b.pod_young))
    young_c = b.nc_young if young else np.zeros_like(b.nc)
    young_y = b.yc_young if young else np.zeros_like(b.yc)
    pn, py = b.pod_nb * pod_keep, b.pod_yb * pod_keep
    restart = (np.arange(b.nc.shape[1])[None, :] != b.reset_interval[:, None])
    lat_ok = (b.latency_ok if young else (~drop & restart)).astype(np.int64)
    v = {
        "nc": (b.nc - young_c) * keep,
        "yc": (b.yc - young_y) * keep,
        "nb": pn.sum(-1),
        "yb": py.sum(-1),
        "pn": pn,
        "py": py,
        "nc_young": young_c,
        "yc_young": young_y,
        "nb_all": b.nb * keep,
        "yb_all": b.yb * keep,
        "lat_nc": b.nc * lat_ok,
        "lat_nb": b.nb * lat_ok,
        "lat_hc": b.hc * lat_ok[..., None],
        "lat_hb": b.hb * lat_ok[..., None],
    }
    return {k: merge_missing(x, obs) for k, x in v.items()}


# log E of the error test per (batch, per-pod input, rollback-relevant config): "M6 ours" and
# "+ early promotion" share it. Holds the batch itself so an id is never reused.
_CACHE: dict[tuple[int, bool, tuple[object, ...]], tuple[Batch, NDArray[np.float64]]] = {}


def _rollback_key(cfg: SequentialConfig) -> tuple[object, ...]:
    from dataclasses import astuple, replace

    return astuple(replace(cfg, early_promotion=False))


def error_log_e(b: Batch, cfg: SequentialConfig, pods: bool = True) -> NDArray[np.float64]:
    """log E of the error test as the judge computes it (adaptive margin when per-pod
    baseline counters are supplied and enabled, else the fixed margin error_r0; with per-pod
    input and the new-pod policy, young canary pods feed the loose test new_pod_r0)."""
    key = (id(b), pods, _rollback_key(cfg))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is b:
        return hit[1]
    if len(_CACHE) > 8:
        _CACHE.clear()
    out = _error_log_e(b, cfg, pods)
    _CACHE[key] = (b, out)
    return out


def canary_effective_pods(
    b: Batch, counted: NDArray[np.int64], pods: NDArray[np.int64] | None = None
) -> NDArray[np.float64]:
    """Effective canary pods at each interval, as the judge computes them from the canary
    pods' counted requests (the counted pods, by default the warm ones, share the counted
    requests equally)."""
    m = b.canary_warm_pods if pods is None else pods
    k = np.arange(max(int(m.max()), 1))
    share = np.where(k[None, :] < m[:, None], 1.0 / np.maximum(m, 1)[:, None], 0.0)  # (T, K)
    per_pod = np.cumsum(counted[..., None] * share[None, :, :], axis=1)
    return effective_pods(per_pod)


def _error_log_e(b: Batch, cfg: SequentialConfig, pods: bool) -> NDArray[np.float64]:
    v = _views(b, pods, policy=cfg.warmup_s > 0)
    if cfg.adaptive_margin and pods:
        alts, w = mixture_alternatives(1.0, cfg.error_grid, cfg.error_tail, cfg.error_tail_weight)
        counted = None if cfg.warmup_s > 0 else b.canary_pods
        main = adaptive_log_evalue_paths(
            v["nc"], v["nb"], v["yc"], v["yb"], v["pn"], v["py"], alts, cfg.pod_sd_max,
            canary_pods=canary_effective_pods(b, v["nc"], counted), weights=w,
        )
    else:
        alts, w = mixture_alternatives(
            cfg.error_r0, cfg.error_grid, cfg.error_tail, cfg.error_tail_weight
        )
        main = _log_e(v["nc"], v["nb"], v["yc"], v["yb"], cfg.error_r0, alts, w)
    if not (pods and cfg.warmup_s > 0 and cfg.new_pod_weight > 0):
        return main
    y_alts = default_alternatives(cfg.new_pod_r0, *cfg.error_tail)
    # every canary request (young pods' included) against the loose margin new_pod_r0
    young = _log_e(
        v["nc"] + v["nc_young"],
        v["nb_all"],
        v["yc"] + v["yc_young"],
        v["yb_all"],
        cfg.new_pod_r0,
        y_alts,
    )
    wy = cfg.new_pod_weight
    return np.logaddexp(math.log1p(-wy) + main, math.log(wy) + young)


def m6(
    b: Batch, s: Scenario, cfg: SequentialConfig, promote: bool = False, pods: bool = True
) -> tuple[IntA, IntA]:
    """Ours: the shipped sequential judge, errors + latency, alpha split over both."""
    obs = b.observed
    v = _views(b, pods, policy=cfg.warmup_s > 0)
    nc, nb, yc, yb = v["nc"], v["nb"], v["yc"], v["yb"]
    thr_e = math.log(1.0 / (cfg.alpha * cfg.error_alpha_share))
    thr_l = math.log(1.0 / (cfg.alpha * (1 - cfg.error_alpha_share)))
    le_err = error_log_e(b, cfg, pods)
    # latency: choose bounds from the pooled histogram once both arms together have
    # enough requests; the intervals so far count as evidence (see analysis.latency).
    # Intervals with young pods (new-pod policy) or a restart are not judged.
    lnc, lnb, hc, hb = v["lat_nc"], v["lat_nb"], v["lat_hc"], v["lat_hb"]
    cum_nb = np.cumsum(lnb + lnc, axis=1)
    ready = cum_nb >= cfg.latency_min_baseline
    f = np.where(ready.any(axis=1), ready.argmax(axis=1), nb.shape[1])
    reps, t_n = nb.shape
    rows = np.arange(reps)
    fi = np.minimum(f, t_n - 1)
    cum_hb = np.cumsum(hb + hc, axis=1)[rows, fi]  # (reps, B), pooled
    tot = cum_nb[rows, fi][:, None]
    share = np.divide(tot - cum_hb, tot, out=np.zeros(cum_hb.shape), where=tot > 0)
    sel = (share >= 0.01) & (share <= 0.99) & (f < t_n)[:, None]
    ec = lnc[..., None] - hc
    eb = lnb[..., None] - hb
    lat_alts = default_alternatives(cfg.latency_r0, *cfg.latency_grid)
    nc_b = np.broadcast_to(lnc[..., None], ec.shape)
    nb_b = np.broadcast_to(lnb[..., None], eb.shape)
    le_b = _log_e(nc_b, nb_b, ec, eb, cfg.latency_r0, lat_alts)  # (reps, T, B)
    k = sel.sum(axis=1)
    masked = np.where(sel[:, None, :], le_b, -np.inf)
    with np.errstate(divide="ignore"):
        le_lat = np.where(k[:, None] > 0, logsumexp(masked, axis=-1) - np.log(k)[:, None], 0.0)
    after = np.arange(t_n)[None, :] >= f[:, None]  # the judge reports 1 until it selects
    le_lat = np.where(after, le_lat, 0.0)
    served = np.cumsum(merge_missing(b.nc, obs), axis=1)
    enough = served >= cfg.min_requests
    rollback = first_true(((le_err >= thr_e) | (le_lat >= thr_l)) & enough)
    if not promote:
        return rollback, np.full(reps, NEVER)
    pthr = math.log(1.0 / cfg.alpha_promote)
    g, d_alts = _down_alts(cfg.r_tol)
    ok_err = _log_e(nc, nb, yc, yb, g, d_alts) >= pthr
    gl, dl_alts = _down_alts(cfg.latency_r_tol)
    ok_b = _log_e(nc_b, nb_b, ec, eb, gl, dl_alts) >= pthr
    ok_lat = np.all(ok_b | ~sel[:, None, :], axis=-1) & (k[:, None] > 0) & after
    dwell = b.t_end[None, :] >= cfg.min_dwell_s
    prom = first_true(ok_err & ok_lat & dwell & obs & enough)
    # whichever comes first wins
    prom_first = (prom >= 0) & ((rollback < 0) | (prom < rollback))
    return np.where(prom_first, NEVER, rollback), np.where(prom_first, prom, NEVER)


def _window(x: NDArray[np.int64] | NDArray[np.float64], per: int, span: int) -> NDArray[np.float64]:
    """Sums over the last ``span`` intervals, sampled every ``per`` intervals: (reps, L, ...)."""
    c = np.cumsum(x, axis=1, dtype=np.float64)
    ends = np.arange(per - 1, x.shape[1], per)
    starts = ends - span
    hi = c[:, ends]
    lo = np.where(
        (starts >= 0).reshape((1, -1) + (1,) * (x.ndim - 2)),
        c[:, np.maximum(starts, 0)],
        0.0,
    )
    out: NDArray[np.float64] = hi - lo
    return out


def _p99(h: NDArray[np.float64], n: NDArray[np.float64]) -> NDArray[np.float64]:
    return histogram_quantiles(0.99, LE, h, n)


def m1_flagger(b: Batch, s: Scenario) -> IntA:
    """Every minute: canary 1-min error rate > 1 % or P99 > 500 ms fails; roll back at 5."""
    per = max(1, round(60 / s.dt))
    nc = _window(b.nc, per, per)
    yc = _window(b.yc, per, per)
    hc = _window(b.hc, per, per)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = yc / nc
    fail = (np.nan_to_num(rate) > 0.01) | (np.nan_to_num(_p99(hc, nc)) > 500.0)
    hit = first_true(np.cumsum(fail, axis=1) >= 5)
    return np.where(hit >= 0, (hit + 1) * per - 1, NEVER)


def m2_argo(b: Batch, s: Scenario) -> IntA:
    """Every minute: canary 5-min error rate (or P99) > 1.5 x stable; abort at > 3 failures."""
    per = max(1, round(60 / s.dt))
    span = 5 * per
    nc, nb = _window(b.nc, per, span), _window(b.nb, per, span)
    yc, yb = _window(b.yc, per, span), _window(b.yb, per, span)
    hc, hb = _window(b.hc, per, span), _window(b.hb, per, span)
    with np.errstate(invalid="ignore", divide="ignore"):
        rc, rb = yc / nc, yb / nb
        fail_err = np.nan_to_num(rc) > 1.5 * np.nan_to_num(rb)
        fail_lat = np.nan_to_num(_p99(hc, nc)) > 1.5 * np.nan_to_num(_p99(hb, nb), nan=np.inf)
    hit = first_true(np.cumsum(fail_err | fail_lat, axis=1) > 3)
    return np.where(hit >= 0, (hit + 1) * per - 1, NEVER)


def _mw_high(
    xc: NDArray[np.float64], xb: NDArray[np.float64], conf: float = 0.98, tol: float = 0.25
) -> NDArray[np.bool_]:
    """Kayenta High (direction increase) for rows of per-minute series without NaN."""
    lo, _, est = np.moveaxis(hodges_lehmann_interval(xc, xb, conf), -1, 0)
    ratio_ok = xc.mean(axis=-1) > xb.mean(axis=-1)  # allowedIncrease 1.0
    same = (
        np.all(np.sort(xc, axis=-1) == np.sort(xb, axis=-1), axis=-1)
        if (xc.shape[-1] == xb.shape[-1])
        else np.zeros(xc.shape[:-1], dtype=bool)
    )
    out: NDArray[np.bool_] = (lo > tol * np.abs(est)) & ratio_ok & ~same
    return out


def m3_kayenta(b: Batch, s: Scenario, every_minute: bool) -> IntA:
    """Kayenta replica on 60 s series (error rate, mean latency), growing window; fail if
    any metric is High (two equally weighted groups: one High gives score 50 <= 75)."""
    per = max(1, round(60 / s.dt))
    nc, nb = _window(b.nc, per, per), _window(b.nb, per, per)
    with np.errstate(invalid="ignore", divide="ignore"):
        ec = _window(b.yc, per, per) / nc
        eb = _window(b.yb, per, per) / nb
        lc = _window(b.sum_c, per, per) / nc
        lb = _window(b.sum_b, per, per) / nb
    # NaN (no canary traffic in a minute) -> replace with 0, as nanStrategy=replace would
    ec, eb, lc, lb = (np.nan_to_num(v) for v in (ec, eb, lc, lb))
    n_min = nc.shape[1]
    if every_minute:
        looks = np.arange(3, n_min + 1)  # Kayenta needs a few points; start at 3 minutes
    else:
        mins_per_step = round(s.step_s / 60)
        looks = np.arange(mins_per_step, n_min + 1, mins_per_step)
    reps = nc.shape[0]
    out = np.full(reps, NEVER)
    alive = np.ones(reps, dtype=bool)
    for m in looks:
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        high = np.zeros(idx.size, dtype=bool)
        for xc, xb in ((ec, eb), (lc, lb)):
            for chunk in np.array_split(np.arange(idx.size), max(1, idx.size * m * m // 4_000_000)):
                r = idx[chunk]
                high[chunk] |= _mw_high(xc[r, :m], xb[r, :m])
        hit = idx[high]
        out[hit] = m * per - 1
        alive[hit] = False
    return out


def _score_z(nc: IntA, nb: IntA, yc: IntA, yb: IntA, r0: float) -> NDArray[np.float64]:
    """Cumulative one-sided score statistic of the conditional binomial test (reps, T...)."""
    n = (nc + nb).astype(np.float64)
    rho = np.divide(nc, n, out=np.zeros_like(n), where=n > 0)
    th0 = rho * r0 / (rho * r0 + 1 - rho)
    e = (yc + yb).astype(np.float64)
    u = np.cumsum(yc - e * th0, axis=1)
    v = np.cumsum(e * th0 * (1 - th0), axis=1)
    out: NDArray[np.float64] = np.divide(u, np.sqrt(v), out=np.zeros_like(u), where=v > 0)
    return out


@lru_cache(maxsize=16)
def obf_constant(fracs: tuple[float, ...], alpha: float) -> float:
    """c with P(exists k: Z_k >= c / sqrt(t_k)) = alpha for Brownian-motion looks t_k."""
    t = np.asarray(fracs)
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    mvn = multivariate_normal(mean=np.zeros(t.size), cov=cov)
    lo, hi = norm.ppf(1 - alpha), norm.ppf(1 - alpha / 20)
    for _ in range(40):
        c = 0.5 * (lo + hi)
        p = 1 - mvn.cdf(c / np.sqrt(t))
        lo, hi = (c, hi) if p > alpha else (lo, c)
    return float(0.5 * (lo + hi))


def m5_fixed(b: Batch, s: Scenario, cfg: SequentialConfig, obf: bool) -> IntA:
    """One-sided score tests of errors (margin error_r0) and of each latency bound (margin
    latency_r0, Bonferroni), at alpha/2 each: at the end only, or O'Brien-Fleming looks at
    step ends with information fractions from the planned canary traffic."""
    a = cfg.alpha / 2
    z_err = _score_z(b.nc, b.nb, b.yc, b.yb, cfg.error_r0)
    ec, eb = b.nc[..., None] - b.hc, b.nb[..., None] - b.hb
    ncb = np.broadcast_to(b.nc[..., None], ec.shape)
    nbb = np.broadcast_to(b.nb[..., None], eb.shape)
    z_lat = _score_z(ncb, nbb, ec, eb, cfg.latency_r0)
    steps_per = round(s.step_s / s.dt)
    looks = np.arange(steps_per - 1, s.n_steps, steps_per)
    if not obf:
        looks = looks[-1:]
        c_err = np.array([norm.ppf(1 - a)])
        c_lat = np.array([norm.ppf(1 - a / LE.size)])
    else:
        w = np.asarray(s.weights)
        fr = tuple(float(v) for v in np.cumsum(w) / w.sum())
        t = np.asarray(fr)
        c_err = obf_constant(fr, a) / np.sqrt(t)
        c_lat = obf_constant(fr, a / LE.size) / np.sqrt(t)
    hit_err = z_err[:, looks] >= c_err[None, :]
    hit_lat = np.any(z_lat[:, looks, :] >= c_lat[None, :, None], axis=-1)
    first = first_true(hit_err | hit_lat)
    return np.where(first >= 0, looks[np.maximum(first, 0)], NEVER)


def m6_adaptive_errors(b: Batch, s: Scenario) -> IntA:
    """Errors-only, adaptive margin (for the r0 curve)."""
    cfg = SequentialConfig()
    return first_true(error_log_e(b, cfg) >= math.log(2.0 / cfg.alpha))


def m6_variant(b: Batch, s: Scenario, r0: float) -> IntA:
    """Errors-only e-process at another margin (for the r0 curve)."""
    cfg = SequentialConfig()
    alts, w = mixture_alternatives(r0, cfg.error_grid, cfg.error_tail, cfg.error_tail_weight)
    le = _log_e(b.nc, b.nb, b.yc, b.yb, r0, alts, w)
    return first_true(le >= math.log(2.0 / cfg.alpha))

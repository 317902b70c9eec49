"""More harm is more evidence (goal G8): the error e-value never falls as the canary's error
ratio grows, up to a canary failing every request, with and without per-pod input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from analysis import (
    ArmSnapshot,
    Decision,
    SequentialConfig,
    SequentialJudge,
    Snapshot,
    adaptive_log_evalue_paths,
    log_evalue_paths,
)
from analysis.eprocess import mixture_alternatives

CFG = SequentialConfig()
RATIOS = (1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0)
KB = 5  # stable pods


def _schedule(rps: float, minutes: float = 40.0, dt: float = 15.0) -> tuple[np.ndarray, np.ndarray]:
    t_n = round(minutes * 60 / dt)
    w = np.repeat([0.05, 0.10, 0.25, 0.50], t_n // 4)
    n = np.full(t_n, rps * dt)
    return n * w, n * (1 - w)


def _expected_paths(rps: float, p0: float, ratio: float) -> tuple[np.ndarray, ...]:
    """Deterministic expected counts per interval (rounded), canary error rate p0 * ratio
    capped at 100 % (ratio inf = every canary request fails)."""
    nc, nb = _schedule(rps)
    nc, nb = np.round(nc), np.round(nb)
    pc = 1.0 if math.isinf(ratio) else min(1.0, p0 * ratio)
    yc = np.round(nc * pc)
    yb = np.round(nb * p0)
    pn = np.repeat((nb / KB)[:, None], KB, axis=1)
    py = np.repeat((yb / KB)[:, None], KB, axis=1)
    return nc[None], nb[None], yc[None], yb[None], pn[None], py[None]


def _log_e(pods: bool, *paths: np.ndarray) -> np.ndarray:
    out: np.ndarray = _log_e_batch(pods, *paths)[0]
    return out


@pytest.mark.parametrize("pods", [False, True])
@pytest.mark.parametrize(
    "rps, p0", [(0.5, 0.01), (10.0, 0.01), (100.0, 0.01), (100.0, 0.001), (1000.0, 0.01)]
)
def test_final_evidence_never_falls_as_the_ratio_grows(pods: bool, rps: float, p0: float) -> None:
    finals = []
    for r in (*RATIOS, math.inf):
        le = _log_e(pods, *_expected_paths(rps, p0, r))
        finals.append(float(le[-1]))
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(finals)), finals
    # and the catastrophes are conclusive (log 20: errors alone, alpha 0.05)
    assert finals[-1] >= math.log(20.0), finals


@pytest.mark.parametrize("pods", [False, True])
def test_seeded_simulation_detection_is_monotone_up_to_100_percent_errors(pods: bool) -> None:
    """Coupled simulation: the canary's bad events for a larger ratio contain those of a
    smaller one, so every replicate's e-value path must be pointwise larger."""
    rng = np.random.default_rng(20240601)
    reps, rps, p0 = 200, 10.0, 0.005  # 100 x = 50 %, then every request fails
    nc_f, nb_f = _schedule(rps)
    nc = rng.poisson(np.broadcast_to(nc_f, (reps, nc_f.size)))
    nb = rng.poisson(np.broadcast_to(nb_f, (reps, nb_f.size)))
    pn = rng.multinomial(nb, np.full(KB, 1 / KB))
    py = rng.binomial(pn, p0)
    yb = py.sum(-1)
    yc = np.zeros_like(nc)
    prev_p = 0.0
    detected, paths = [], []
    for r in (*RATIOS, math.inf):
        p = 1.0 if math.isinf(r) else min(1.0, p0 * r)
        # add the extra failures of the larger ratio among the requests that succeeded
        yc = yc + rng.binomial(nc - yc, (p - prev_p) / (1 - prev_p))
        prev_p = p
        le = _log_e_batch(pods, nc, nb, yc, yb, pn, py)
        paths.append(le)
        detected.append(int((le.max(axis=1) >= math.log(20.0)).sum()))
    for a, b in itertools.pairwise(paths):
        assert np.all(b >= a - 1e-9)
    assert detected == sorted(detected), detected
    assert detected[-1] == reps


def _log_e_batch(pods: bool, *paths: np.ndarray) -> np.ndarray:
    nc, nb, yc, yb, pn, py = paths
    if pods:
        alts, w = mixture_alternatives(1.0, CFG.error_grid, CFG.error_tail, CFG.error_tail_weight)
        return adaptive_log_evalue_paths(nc, nb, yc, yb, pn, py, alts, CFG.pod_sd_max, weights=w)
    alts, w = mixture_alternatives(CFG.error_r0, CFG.error_grid, CFG.error_tail, CFG.error_tail_weight)
    return log_evalue_paths(nc, nb, yc, yb, CFG.error_r0, alts, w)


def _feed(judge: SequentialJudge, canary: tuple[int, int], stable: tuple[int, int], steps: int,
          pods: bool) -> list[Decision]:
    """Spread the totals evenly over ``steps`` scrapes, 5 equal stable pods."""
    out = []
    for k in range(steps + 1):
        f = k / steps
        cr, cb = round(canary[0] * f), round(canary[1] * f)
        br, bb = round(stable[0] * f), round(stable[1] * f)
        bp = {f"s{i}": (_share(br, i), _share(bb, i)) for i in range(KB)} if pods else None
        arm_b = ArmSnapshot(br, bb, pods=bp, warm_pods=tuple(bp or ()))  # running for days
        v = judge.observe(Snapshot(15.0 * k, ArmSnapshot(cr, cb), arm_b))
        out.append(v.decision)
    return out


@pytest.mark.parametrize("pods", [False, True])
def test_the_reported_catastrophe_rolls_back(pods: bool) -> None:
    # Issue 10: "canary error rate is at least 42 x stable (11976/11976 vs 2338/228315),
    # e-value 0 < 40: continue" with per-pod stable counters.
    j = SequentialJudge(SequentialConfig(), latency=False)
    decisions = _feed(j, (11976, 11976), (228315, 2338), 160, pods)
    assert decisions[-1] is Decision.ROLLBACK, j.verdict.explanation
    assert j.verdict.metrics[0].details["margin"] == ("adaptive" if pods else "fixed")
    # and it is caught long before all of those requests were served
    assert decisions.index(Decision.ROLLBACK) <= 3, j.verdict.explanation


def _share(total: int, i: int) -> float:
    """Pod i's integer share of a total split over KB pods."""
    return float(total * (i + 1) // KB - total * i // KB)


def _all_failing(rps: float, pods: bool, seed: int, p0: float = 0.01) -> int | None:
    """Intervals from the canary's 10th failed request to the rollback (None: never)."""
    rng = np.random.default_rng(seed)
    j = SequentialJudge(SequentialConfig())
    c = 0
    b = np.zeros((KB, 2))
    tenth = None
    for k in range(161):
        if k:
            n = rng.poisson(rps * 15.0)
            w = (0.05, 0.10, 0.25, 0.50)[min((k - 1) // 40, 3)]
            nc = rng.binomial(n, w)
            c += nc
            pn = rng.multinomial(n - nc, np.full(KB, 1 / KB))
            b[:, 0] += pn
            b[:, 1] += rng.binomial(pn, p0)
        bp = {f"s{i}": (b[i, 0], b[i, 1]) for i in range(KB)} if pods else None
        cp = {"c0": (float(c), float(c))} if pods else None
        v = j.observe(Snapshot(15.0 * k, ArmSnapshot(c, c, pods=cp),
                               ArmSnapshot(b[:, 0].sum(), b[:, 1].sum(), pods=bp,
                                           warm_pods=tuple(bp or ()))))
        if tenth is None and c >= 10:
            tenth = k
        if v.decision is Decision.ROLLBACK:
            return 0 if tenth is None else k - tenth
    return None


@pytest.mark.parametrize("pods", [False, True])
@pytest.mark.parametrize("rps", [0.5, 2.0, 10.0, 100.0, 1000.0])
def test_a_canary_failing_every_request_is_rolled_back_within_3_intervals_of_its_10th_failure(
        rps: float, pods: bool) -> None:
    for seed in range(3):
        lag = _all_failing(rps, pods, seed)
        assert lag is not None and lag <= 3, (rps, pods, seed, lag)

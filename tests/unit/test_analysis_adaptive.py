"""The adaptive margin (per-pod stable counters) and per-pod counter handling."""

import math

import numpy as np
import pytest
from scipy.stats import beta

from analysis import (
    ArmIncrement,
    ArmSnapshot,
    CounterTracker,
    Decision,
    Increment,
    PodAdaptiveEProcess,
    SequentialJudge,
    Snapshot,
    adaptive_log_evalue_paths,
    default_alternatives,
)
from analysis.heterogeneity import U_GRID, null_prior, sd_grid, snap_to_grid

# Alternatives on the integration grid (the adaptive e-process snaps them there).
ALTS = np.exp(U_GRID[snap_to_grid(default_alternatives(1.0, 1.6, 5.0, 5))])


def _sim(rng: np.random.Generator, reps: int, ratio: float, sd: float, rps: float = 100.0):
    t_n, k = 160, 5
    w = np.repeat([0.05, 0.1, 0.25, 0.5], 40)[None, :]
    n = rng.poisson(rps * 15, (reps, t_n))
    nc = rng.binomial(n, w)
    nb = n - nc
    mc = np.exp(rng.normal(0, sd, (reps, 1)))
    mb = np.exp(rng.normal(0, sd, (reps, k)))
    mb /= mb.mean(axis=1, keepdims=True)
    pn = rng.multinomial(nb, np.full(k, 1 / k))
    py = rng.binomial(pn, 0.01 * mb[:, None, :])
    yc = rng.binomial(nc, np.clip(0.01 * ratio * mc, 0, 1))
    return nc, nb, yc, py.sum(-1), pn, py


def test_sd_zero_is_the_strict_test_and_prior_is_normalised() -> None:
    p = null_prior(sd_grid(0.5), 1, 5)
    np.testing.assert_allclose(p.sum(axis=0), 1.0)
    assert p[:, 0].max() == 1.0  # point mass at ratio 1 for sd 0
    with pytest.raises(ValueError):
        sd_grid(2.0)


def test_streaming_equals_vectorised() -> None:
    rng = np.random.default_rng(3)
    nc, nb, yc, yb, pn, py = _sim(rng, 1, 2.0, 0.0)
    vec = adaptive_log_evalue_paths(nc, nb, yc, yb, pn, py, ALTS, 0.5)[0]
    proc = PodAdaptiveEProcess(ALTS, 0.5)
    for t in range(40):
        pods = {f"p{i}": (int(pn[0, t, i]), int(py[0, t, i])) for i in range(5)}
        proc.update_pods(int(nc[0, t]), int(nb[0, t]), int(yc[0, t]), int(yb[0, t]), pods)
        assert proc.log_e_value == pytest.approx(vec[t], abs=1e-9)


def test_never_exceeds_the_strict_test() -> None:
    # sd = 0 is in the grid and its stable factor is 1: E_adaptive <= E(ratio <= 1) (same
    # alternatives), whatever the data.
    from analysis import log_evalue_paths

    rng = np.random.default_rng(4)
    nc, nb, yc, yb, pn, py = _sim(rng, 50, 1.5, 0.2)
    a = adaptive_log_evalue_paths(nc, nb, yc, yb, pn, py, ALTS, 0.5)
    s = log_evalue_paths(nc, nb, yc, yb, 1.0, ALTS)
    assert np.all(a <= s + 1e-6)


@pytest.mark.parametrize("sd", [0.0, 0.2])
def test_validity_under_pod_heterogeneity_clopper_pearson(sd: float) -> None:
    rng = np.random.default_rng(11)
    nc, nb, yc, yb, pn, py = _sim(rng, 400, 1.0, sd, rps=1000.0)
    le = adaptive_log_evalue_paths(nc, nb, yc, yb, pn, py, ALTS, 0.5)
    k = int((le.max(axis=1) >= math.log(40.0)).sum())
    upper = float(beta.ppf(0.975, k + 1, 400 - k))
    assert upper <= 0.05, (k, upper)


def test_homogeneous_pods_detect_a_2x_regression() -> None:
    rng = np.random.default_rng(5)
    nc, nb, yc, yb, pn, py = _sim(rng, 100, 2.0, 0.0)
    le = adaptive_log_evalue_paths(nc, nb, yc, yb, pn, py, ALTS, 0.5)
    assert (le.max(axis=1) >= math.log(40.0)).mean() >= 0.95


def _pods(vals: dict[str, tuple[int, int]]) -> dict[str, tuple[float | None, float | None]]:
    return {k: (float(a), float(b)) for k, (a, b) in vals.items()}


def test_pod_counters_increments_resets_and_new_pods() -> None:
    tr = CounterTracker()
    tr.push(Snapshot(0, ArmSnapshot(10, 1), ArmSnapshot(100, 2, pods=_pods({"a": (50, 1), "b": (50, 1)}))))
    later = _pods({"a": (80, 2), "b": (20, 0), "c": (30, 1)})
    inc = tr.push(Snapshot(15, ArmSnapshot(20, 1), ArmSnapshot(230, 5, pods=later)))
    assert inc is not None and inc.baseline.pods == (("a", 30, 1), ("b", 20, 0), ("c", 30, 1))
    assert inc.canary.pods is None
    # a missing pod value is a missing scrape (no data, never 0); the next one spans the gap
    nan_pod = {"a": (None, 0.0), "b": (20.0, 0.0), "c": (30.0, 1.0)}
    assert tr.push(Snapshot(30, ArmSnapshot(30, 1), ArmSnapshot(300, 5, pods=nan_pod))) is None
    later = _pods({"a": (90, 2), "b": (30, 0), "c": (40, 1)})
    inc = tr.push(Snapshot(45, ArmSnapshot(40, 1), ArmSnapshot(400, 5, pods=later)))
    assert inc is not None and (inc.start, inc.baseline.requests) == (15, 30)
    with pytest.raises(ValueError, match="pod"):
        tr.push(Snapshot(60, ArmSnapshot(50, 1), ArmSnapshot(500, 5, pods=_pods({"a": (5, 9)}))))


def test_judge_switches_to_adaptive_margin_with_pod_counters() -> None:
    rng = np.random.default_rng(7)
    j = SequentialJudge()
    nc, nb, yc, yb, pn, py = _sim(rng, 1, 3.0, 0.0)
    v = None
    for t in range(160):
        pods = tuple((f"p{i}", int(pn[0, t, i]), int(py[0, t, i])) for i in range(5))
        inc = Increment(
            15.0 * t,
            15.0 * (t + 1),
            ArmIncrement(int(nc[0, t]), int(yc[0, t])),
            ArmIncrement(int(nb[0, t]), int(yb[0, t]), pods=pods),
        )
        v = j.update(inc)
        if v.decision is not Decision.CONTINUE:
            break
    assert v is not None and v.decision is Decision.ROLLBACK
    d = v.metrics[0].details
    assert d["margin"] == "adaptive" and d["stable_pods"] == 5
    # without per-pod counters the fixed margin is used
    j2 = SequentialJudge()
    j2.update(Increment(0, 15, ArmIncrement(10, 0), ArmIncrement(100, 1)))
    assert j2.verdict.metrics[0].details["margin"] == "fixed"


def test_adaptive_update_is_fast() -> None:
    import time

    p = PodAdaptiveEProcess(ALTS)
    pods = {f"p{i}": (300, 3) for i in range(10)}
    t0 = time.process_time()  # CPU time: other processes on a shared machine do not count
    for _ in range(200):
        p.update_pods(100, 3000, 1, 30, pods)
    assert (time.process_time() - t0) / 200 < 2e-3


def test_streaming_equals_vectorised_with_the_default_mixture() -> None:
    from analysis import SequentialConfig
    from analysis.eprocess import mixture_alternatives

    cfg = SequentialConfig()
    alts, w = mixture_alternatives(1.0, cfg.error_grid, cfg.error_tail, cfg.error_tail_weight)
    rng = np.random.default_rng(8)
    nc, nb, yc, yb, pn, py = _sim(rng, 1, 20.0, 0.1)
    vec = adaptive_log_evalue_paths(nc, nb, yc, yb, pn, py, alts, 0.5, weights=w)[0]
    proc = PodAdaptiveEProcess(alts, 0.5, weights=w)
    for t in range(30):
        pods = {f"p{i}": (int(pn[0, t, i]), int(py[0, t, i])) for i in range(5)}
        proc.update_pods(int(nc[0, t]), int(nb[0, t]), int(yc[0, t]), int(yb[0, t]), pods)
        assert proc.log_e_value == pytest.approx(vec[t], abs=1e-9)

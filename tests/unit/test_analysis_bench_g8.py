"""The benchmark's G8 line and its new-pods-included variant (issue 10): G8 is reported
clause by clause with the figure that decides each, and the variant counts every request
at once, so that the per-pod-vs-none comparison can be split into the adaptive margin's
share and the new-pod policy's."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from benchmarks import _analysis_methods as mth
from benchmarks import analysis_benchmark as ab
from benchmarks._analysis_sim import Scenario, simulate


def _outcome(rate: float, t_med: float, lag_max: float = 0.0, lag_ok: float = 1.0) -> ab.Outcome:
    return ab.Outcome(100, round(rate * 100), t_med, t_med, 10.0, 10.0, 1.0,
                      lag10_max=lag_max, lag10_ok=lag_ok)


def _results(
    ours: dict[float, ab.Outcome], none: dict[float, ab.Outcome], incl: dict[float, ab.Outcome]
) -> tuple[dict[str, tuple[Scenario, dict[str, ab.Outcome]]], list[Scenario]]:
    errs, res = [], {}
    for r in ours:
        s = Scenario(f"errors x{r:g} at 0.5 rps", rps=0.5, ratio=r)
        errs.append(s)
        res[s.name] = (s, {"M6 ours": ours[r], "M6 without per-pod input": none[r], ab.INCLUDE: incl[r]})
    return res, errs


def test_g8_line_names_each_clause_with_its_figure() -> None:
    good = _outcome(1.0, 1.0)
    res, errs = _results(
        {5.0: _outcome(1.0, 3.0), math.inf: _outcome(1.0, 4.8, lag_max=9, lag_ok=0.98)},
        {5.0: good, math.inf: good},
        {5.0: good, math.inf: good},
    )
    (g8,) = [g for g in ab._goals_8_9(res, errs) if g[0].startswith("G8")]
    assert g8[1] == "MISSED (b, c)"
    assert "(a) met" in g8[2]
    assert "(b) MISSED: with per-pod input, 0.5 rps, p0 0.01: 98.0 % of runs within 3 (worst 9)" in g8[2]
    assert "(c) MISSED: per-pod input slower or weaker than none in 2 effect scenario(s)" in g8[2]
    assert "with new pods included (no warm-up policy) in 0" in g8[2]


def test_g8_line_met_when_every_clause_holds() -> None:
    good = _outcome(1.0, 1.0)
    res, errs = _results({5.0: good, math.inf: good}, {5.0: good, math.inf: good},
                         {5.0: good, math.inf: good})
    (g8,) = [g for g in ab._goals_8_9(res, errs) if g[0].startswith("G8")]
    assert g8[1] == "met"


def test_g8_line_reports_a_fall_in_detection() -> None:
    res, errs = _results(
        {5.0: _outcome(1.0, 1.0), 20.0: _outcome(0.9, 1.0), math.inf: _outcome(1.0, 1.0)},
        {r: _outcome(1.0, 1.0) for r in (5.0, 20.0, math.inf)},
        {r: _outcome(1.0, 1.0) for r in (5.0, 20.0, math.inf)},
    )
    (g8,) = [g for g in ab._goals_8_9(res, errs) if g[0].startswith("G8")]
    assert g8[1] == "MISSED (a, c)" and "90.0 % at x20 after 100.0 %" in g8[2]


def test_include_view_counts_every_request_at_once() -> None:
    s = Scenario("v", rps=100.0, ratio=2.0, slow_start=True)
    b = simulate(s, 4, np.random.default_rng(1))
    assert b.nc_young.sum() > 0  # the policy would leave these out
    v = mth._views(b, pods=True, policy=False)
    np.testing.assert_array_equal(v["nc"], b.nc)
    np.testing.assert_array_equal(v["yc"], b.yc)
    np.testing.assert_array_equal(v["nb"], b.nb)
    assert not v["nc_young"].any()
    np.testing.assert_array_equal(v["lat_nc"], b.nc)  # latency judged in every interval
    excl = mth._views(b, pods=True)
    np.testing.assert_array_equal(excl["nc"], b.nc - b.nc_young)
    # every serving canary pod counts for the effective pod count
    assert (b.canary_pods >= b.canary_warm_pods).all() and (b.canary_pods > b.canary_warm_pods).any()
    k_all = mth.canary_effective_pods(b, v["nc"], b.canary_pods)
    k_warm = mth.canary_effective_pods(b, excl["nc"])
    assert (k_all[:, -1] > k_warm[:, 0]).all()


def test_include_variant_is_the_judge_with_new_pods_included() -> None:
    s = Scenario("v", rps=100.0, ratio=10.0)
    b = simulate(s, 20, np.random.default_rng(2))
    incl = mth.m6(b, s, ab.CFG_INCLUDE)[0]
    ours = mth.m6(b, s, ab.CFG)[0]
    # a 10 x canary: counted at once it is caught in the first pod's warm-up (135 s)
    assert (incl >= 0).all() and (incl < 9).mean() >= 0.9
    assert (ours >= incl).all()


def test_only_mode_prints_a_summary_and_writes_nothing(
    tmp_path: os.PathLike[str], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = ab.main(["--only", "x2 at 100 rps, p0 0.005", "--effect-reps", "5",
                  "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "errors x2 at 100 rps, p0 0.005 | M6 ours | rate" in out
    assert ab.INCLUDE in out
    assert not os.listdir(tmp_path)

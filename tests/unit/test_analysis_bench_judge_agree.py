"""The benchmark measures the judge that ships: its vectorised error e-value (main test on
warm pods plus the new-pod test of every canary request against new_pod_r0) equals the
streaming judge's on the same per-interval counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis import ArmIncrement, Increment, SequentialConfig, SequentialJudge
from benchmarks import _analysis_methods as mth
from benchmarks._analysis_sim import Scenario, simulate


@pytest.mark.parametrize("ratio, rps", [(math.inf, 2.0), (20.0, 10.0), (1.0, 100.0)])
def test_vectorised_error_evalue_equals_the_streaming_judge(ratio: float, rps: float) -> None:
    cfg = SequentialConfig()
    # one canary pod throughout (young for its first 135 s), so the effective pod count is
    # the same in both computations
    s = Scenario("agree", rps=rps, ratio=ratio, canary_pods=(1, 1, 1, 1), step_s=150.0)
    b = simulate(s, 3, np.random.default_rng(5), cfg.warmup_s)
    assert b.nc_young.sum() > 0 and (b.nc - b.nc_young).sum() > 0
    want = mth.error_log_e(b, cfg, pods=True)
    for r in range(3):
        judge = SequentialJudge(cfg)
        got = []
        for t in range(b.nc.shape[1]):
            ny, yy = int(b.nc_young[r, t]), int(b.yc_young[r, t])
            nw, yw = int(b.nc[r, t]) - ny, int(b.yc[r, t]) - yy
            canary = ArmIncrement(
                nw, yw,
                pods=(("c0", nw, yw),) if ny == 0 else (),
                young=(ny, yy),
            )
            pods = tuple((f"s{i}", int(b.pod_nb[r, t, i]), int(b.pod_yb[r, t, i]))
                         for i in range(b.pod_nb.shape[2]))
            baseline = ArmIncrement(int(b.nb[r, t]), int(b.yb[r, t]), pods=pods)
            judge.update(Increment(15.0 * t, 15.0 * (t + 1), canary, baseline, False))
            got.append(judge.error_log_e())
            if judge.verdict.decision.value != "continue":
                break
        n = len(got)
        np.testing.assert_allclose(got, want[r, :n], rtol=1e-6, atol=1e-6)

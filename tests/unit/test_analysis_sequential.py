import json
import math

import numpy as np
import pytest
from scipy.stats import norm

from analysis import (
    ArmIncrement,
    ArmSnapshot,
    Decision,
    Increment,
    Phase,
    SequentialConfig,
    SequentialJudge,
    Snapshot,
    Verdict,
)

LES = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0)


class Arm:
    """Cumulative counters of one simulated arm."""

    def __init__(self) -> None:
        self.req = 0
        self.bad = 0
        self.cum = np.zeros(len(LES) + 1, dtype=np.int64)

    def add(self, rng: np.random.Generator, n: int, p: float, median_ms: float) -> None:
        self.req += n
        self.bad += int(rng.binomial(n, p))
        cdf = norm.cdf((np.log(LES) - math.log(median_ms)) / 0.5)
        cells = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
        self.cum += np.cumsum(rng.multinomial(n, cells))

    def snap(self) -> ArmSnapshot:
        b = dict(zip((*LES, math.inf), self.cum.tolist(), strict=True))
        return ArmSnapshot(self.req, self.bad, b)


def run(
    judge: SequentialJudge,
    ratio: float = 1.0,
    slow: float = 1.0,
    steps: int = 160,
    seed: int = 0,
    rps: float = 100,
) -> tuple[Verdict, int]:
    rng = np.random.default_rng(seed)
    c, b = Arm(), Arm()
    v = judge.observe(Snapshot(0, c.snap(), b.snap()))
    for k in range(1, steps + 1):
        n = int(rng.poisson(rps * 15))
        w = (0.05, 0.1, 0.25, 0.5)[min((k - 1) // 40, 3)]
        nc = int(rng.binomial(n, w))
        c.add(rng, nc, 0.01 * ratio, 100 * slow)
        b.add(rng, n - nc, 0.01, 100)
        v = judge.observe(Snapshot(15 * k, c.snap(), b.snap()))
        if v.decision is not Decision.CONTINUE:
            return v, k
    return v, steps


def test_rolls_back_a_5x_error_regression_quickly_and_explains() -> None:
    v, k = run(SequentialJudge(), ratio=5.0)
    assert v.decision is Decision.ROLLBACK and v.phase is Phase.FAILED
    assert k < 20
    assert "roll back" in v.explanation and "x stable" in v.explanation
    m = v.metrics[0]
    assert m.e_value >= m.threshold == pytest.approx(20.0)  # alpha 0.05, errors only
    assert m.ci_low > 1.2
    json.dumps(v.to_dict())


def test_keeps_going_on_a_harmless_canary() -> None:
    v, k = run(SequentialJudge(latency=True), ratio=1.0, steps=80)
    assert v.decision is Decision.CONTINUE and v.phase is Phase.SUCCESSFUL
    assert k == 80
    assert [m.name for m in v.metrics] == ["error-rate", "latency"]
    assert v.metrics[0].threshold == pytest.approx(40.0)  # alpha split over two metrics
    d = v.to_dict()
    assert json.loads(json.dumps(d))["metrics"][1]["details"]["bounds"]


def test_latency_regression_rolls_back_via_histograms() -> None:
    v, _ = run(SequentialJudge(latency=True), slow=1.5, steps=80)
    assert v.decision is Decision.ROLLBACK
    assert v.metrics[1].decision is Decision.ROLLBACK
    assert "slower than" in v.explanation


def test_early_promotion_after_dwell() -> None:
    cfg = SequentialConfig(early_promotion=True, min_dwell_s=120)
    v, k = run(SequentialJudge(cfg, latency=True), ratio=1.0, rps=1000)
    assert v.decision is Decision.PROMOTE and v.phase is Phase.SUCCESSFUL
    assert k * 15 >= 120
    assert "promote" in v.explanation


def test_no_early_promotion_for_a_bad_canary() -> None:
    cfg = SequentialConfig(early_promotion=True, min_dwell_s=0)
    v, _ = run(SequentialJudge(cfg), ratio=2.0, rps=1000)
    assert v.decision is Decision.ROLLBACK


def test_decision_is_final() -> None:
    j = SequentialJudge()
    v, _ = run(j, ratio=5.0)
    quiet = Increment(1e6, 1e6 + 15, ArmIncrement(10**6, 0), ArmIncrement(10**6, 10**4))
    v2 = j.update(quiet)  # overwhelming later evidence of a healthy canary cannot undo it
    assert v2.decision is Decision.ROLLBACK and v2 == v


def test_waiting_without_data_is_inconclusive() -> None:
    j = SequentialJudge()
    v = j.observe(Snapshot(0, ArmSnapshot(0, 0), ArmSnapshot(0, 0)))
    assert v.phase is Phase.INCONCLUSIVE
    v = j.observe(Snapshot(15, ArmSnapshot(0, 0), ArmSnapshot(100, 1)))
    assert v.phase is Phase.INCONCLUSIVE and "no canary traffic" in v.explanation
    v = j.observe(Snapshot(30, None, ArmSnapshot(200, 1)))  # missing scrape: last verdict
    assert v.phase is Phase.INCONCLUSIVE


def test_latency_without_histogram_is_an_error() -> None:
    j = SequentialJudge(latency=True)
    j.observe(Snapshot(0, ArmSnapshot(0, 0), ArmSnapshot(0, 0)))
    with pytest.raises(ValueError, match="histogram"):
        j.observe(Snapshot(15, ArmSnapshot(10, 0), ArmSnapshot(100, 1)))
    e = Verdict.from_error("sequential", ValueError("boom"))
    assert e.phase is Phase.ERROR and e.decision is Decision.CONTINUE and "boom" in e.explanation


@pytest.mark.parametrize("kw", [{"alpha": 0.0}, {"alpha": 1.5}, {"error_r0": -1.0}])
def test_invalid_config(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SequentialConfig(**kw)  # type: ignore[arg-type]


def test_update_is_fast() -> None:
    import time

    j = SequentialJudge()
    rng = np.random.default_rng(1)
    c, b = Arm(), Arm()
    j.observe(Snapshot(0, ArmSnapshot(0, 0), ArmSnapshot(0, 0)))
    t0 = time.process_time()  # CPU time: other processes on a shared machine do not count
    for k in range(1, 201):
        c.add(rng, 100, 0.01, 100)
        b.add(rng, 900, 0.01, 100)
        j.observe(Snapshot(15 * k, ArmSnapshot(c.req, c.bad), ArmSnapshot(b.req, b.bad)))
    per = (time.process_time() - t0) / 200
    assert per < 2e-3, per

import math

import pytest

from analysis import (
    ArmIncrement,
    Condition,
    Decision,
    Increment,
    Phase,
    ThresholdJudge,
    histogram_quantile,
)

LE = (100.0, 500.0, 1000.0)


def inc(t: float, c_bad: int, b_bad: int = 1, c_n: int = 100, slow: int = 0) -> Increment:
    c = ArmIncrement(c_n, c_bad, LE, (c_n - slow, c_n - slow, c_n), c_n)
    b = ArmIncrement(1000, b_bad, LE, (1000, 1000, 1000), 1000)
    return Increment(t, t + 15, c, b)


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    # 100 observations: 50 <= 100, 90 <= 500, 100 <= 1000
    assert histogram_quantile(0.5, LE, (50, 90, 100), 100) == pytest.approx(100.0)
    assert histogram_quantile(0.7, LE, (50, 90, 100), 100) == pytest.approx(300.0)
    assert histogram_quantile(0.25, LE, (50, 90, 100), 100) == pytest.approx(50.0)
    assert histogram_quantile(0.99, LE, (50, 90, 95), 100) == pytest.approx(1000.0)  # +Inf
    assert math.isnan(histogram_quantile(0.5, LE, (0, 0, 0), 0))


def test_failure_limit_counts_failed_measurements() -> None:
    j = ThresholdJudge([Condition("error_rate", 0.01)], failure_limit=2, interval_s=60)
    verdicts = [j.update(inc(15 * k, 5)) for k in range(12)]  # one measurement per minute
    measured = [v for v in verdicts if v.phase is Phase.FAILED]
    assert verdicts[7].decision is Decision.CONTINUE  # two failures so far
    assert verdicts[11].decision is Decision.ROLLBACK and j.failures == 3
    assert "roll back" in verdicts[11].explanation
    assert len(measured) >= 3


def test_consecutive_resets_on_success() -> None:
    j = ThresholdJudge(
        [Condition("error_rate", 0.01, window_s=15)],
        failure_limit=1,
        interval_s=15,
        consecutive=True,
    )
    for k, bad in enumerate([5, 0, 5, 0, 5, 0]):
        v = j.update(inc(15 * k, bad))
    assert v.decision is Decision.CONTINUE and j.failures == 0
    j2 = ThresholdJudge(
        [Condition("error_rate", 0.01, window_s=15)], failure_limit=1, interval_s=15
    )
    for k, bad in enumerate([5, 0, 5, 0]):
        v = j2.update(inc(15 * k, bad))
    assert v.decision is Decision.ROLLBACK


def test_relative_condition_and_latency() -> None:
    j = ThresholdJudge([Condition("error_rate", 1.5, relative=True, window_s=15)], interval_s=15)
    assert j.update(inc(0, 0, b_bad=10)).phase is Phase.SUCCESSFUL  # 0 % vs 1 %
    assert j.update(inc(15, 3, b_bad=10)).decision is Decision.ROLLBACK  # 3 % > 1.5 %
    lat = ThresholdJudge([Condition("latency", 500.0, window_s=15)], interval_s=15)
    assert lat.update(inc(0, 0, slow=0)).phase is Phase.SUCCESSFUL
    assert lat.update(inc(15, 0, slow=20)).decision is Decision.ROLLBACK


def test_no_canary_traffic_is_inconclusive() -> None:
    j = ThresholdJudge([Condition("error_rate", 0.01, window_s=15)], interval_s=15)
    v = j.update(inc(0, 0, c_n=0))
    assert v.phase is Phase.INCONCLUSIVE and j.failures == 0


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError):
        ThresholdJudge([])
    with pytest.raises(ValueError):
        ThresholdJudge([Condition("error_rate", 0.01)], failure_limit=-1)

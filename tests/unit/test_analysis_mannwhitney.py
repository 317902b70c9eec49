import json
import math

import numpy as np
import pytest

from analysis import (
    Classification,
    Decision,
    MannWhitneyConfig,
    MannWhitneyJudge,
    MetricConfig,
    Phase,
    classify,
    hodges_lehmann_interval,
)

BASE = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.02, 0.98, 1.01, 0.99]


def test_hodges_lehmann_matches_brute_force() -> None:
    x = np.array([3.0, 5.0, 4.0, 8.0, 6.0])
    y = np.array([1.0, 2.0, 2.5, 4.0])
    lo, hi, est = hodges_lehmann_interval(x, y, 0.9)
    d = np.sort((x[:, None] - y[None, :]).ravel())
    assert est == pytest.approx(np.median(d))
    assert lo in d and hi in d and lo <= est <= hi
    # vectorised rows equal single calls
    rows = hodges_lehmann_interval(np.stack([x, x + 1]), np.stack([y, y]), 0.9)
    np.testing.assert_allclose(rows[1], [lo + 1, hi + 1, est + 1])


def test_high_low_pass_by_direction() -> None:
    up = [v * 2 for v in BASE]
    down = [v / 2 for v in BASE]
    m = MetricConfig("latency")
    assert classify(up, BASE, m).classification is Classification.HIGH
    assert classify(down, BASE, m).classification is Classification.LOW
    inc = MetricConfig("latency", direction="increase")
    assert classify(down, BASE, inc).classification is Classification.PASS
    dec = MetricConfig("latency", direction="decrease")
    assert classify(up, BASE, dec).classification is Classification.PASS
    assert classify([v + 0.001 for v in BASE], BASE, m).classification is Classification.PASS


def test_allowed_increase_suppresses_small_ratios() -> None:
    up = [v * 1.2 for v in BASE]
    assert classify(up, BASE, MetricConfig("m")).classification is Classification.HIGH
    tolerant = MetricConfig("m", allowed_increase=1.3)
    r = classify(up, BASE, tolerant)
    assert r.classification is Classification.PASS and r.ratio == pytest.approx(1.2)


def test_identical_and_constant_data_pass() -> None:
    assert (
        classify(BASE, list(reversed(BASE)), MetricConfig("m")).classification
        is Classification.PASS
    )
    assert classify([0, 0, 0], [0, 0], MetricConfig("m")).classification is Classification.PASS


@pytest.mark.parametrize(
    "cfg, want",
    [
        (MetricConfig("m"), Classification.NODATA),
        (MetricConfig("m", critical=True), Classification.NODATA_FAIL),
        (MetricConfig("m", must_have_data=True), Classification.NODATA_FAIL),
    ],
)
def test_nodata_rules(cfg: MetricConfig, want: Classification) -> None:
    assert classify([math.nan, math.nan], BASE, cfg).classification is want


def test_nan_replace_uses_zeros() -> None:
    m = MetricConfig("m", nan_strategy="replace", direction="decrease")
    # NaNs become 0, which makes the canary clearly lower
    assert classify([math.nan] * 10, BASE, m).classification is Classification.LOW


def test_outlier_removal() -> None:
    spiky = [*BASE[:-1], 1000.0]
    keep = MetricConfig("m")
    rm = MetricConfig("m", outliers="remove")
    assert classify(spiky, BASE, keep).ratio > 50
    assert classify(spiky, BASE, rm).ratio == pytest.approx(np.mean(BASE[:-1]) / np.mean(BASE))


def _judge(metrics: list[MetricConfig], **kw: object) -> MannWhitneyJudge:
    return MannWhitneyJudge(metrics, MannWhitneyConfig(**kw))  # type: ignore[arg-type]


def test_group_scores_weights_and_thresholds() -> None:
    up = [v * 2 for v in BASE]
    metrics = [
        MetricConfig("err", group="errors"),
        MetricConfig("lat", group="latency"),
        MetricConfig("cpu", group="latency"),
    ]
    j = _judge(metrics, group_weights={"errors": 60, "latency": 40})
    v = j.judge({"err": (BASE, BASE), "lat": (up, BASE), "cpu": (BASE, BASE)})
    # errors 100 * 0.6 + latency 50 * 0.4 = 80: marginal
    assert "score 80" in v.explanation
    assert v.decision is Decision.CONTINUE and v.phase is Phase.INCONCLUSIVE
    v = j.judge({"err": (up, BASE), "lat": (BASE, BASE), "cpu": (BASE, BASE)})
    assert "score 40" in v.explanation and v.decision is Decision.ROLLBACK
    v = j.judge({"err": (BASE, BASE), "lat": (BASE, BASE), "cpu": (BASE, BASE)})
    assert v.phase is Phase.SUCCESSFUL and "score 100" in v.explanation
    json.dumps(v.to_dict())


def test_unweighted_groups_share_the_rest_and_nodata_groups_score_zero() -> None:
    metrics = [
        MetricConfig("a", group="g1"),
        MetricConfig("b", group="g2"),
        MetricConfig("c", group="g3"),
    ]
    j = _judge(metrics, group_weights={"g1": 50})
    v = j.judge({"a": (BASE, BASE), "b": (BASE, BASE), "c": ([], BASE)})
    # g1 50 + g2 25 + g3 (no data) 0
    assert "score 75" in v.explanation and v.decision is Decision.ROLLBACK


def test_critical_failure_zeroes_the_score() -> None:
    up = [v * 2 for v in BASE]
    metrics = [MetricConfig("err", critical=True)] + [MetricConfig(f"m{i}") for i in range(9)]
    series = {m.name: (BASE, BASE) for m in metrics}
    series["err"] = (up, BASE)
    v = _judge(metrics).judge(series)
    assert "score 0" in v.explanation and "critical metric err is High" in v.explanation
    assert v.decision is Decision.ROLLBACK


def test_missing_series_is_an_error() -> None:
    with pytest.raises(ValueError):
        _judge([MetricConfig("a")]).judge({})
    with pytest.raises(ValueError):
        MannWhitneyConfig(pass_threshold=50, marginal_threshold=60)

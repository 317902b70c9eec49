"""AnalysisRun semantics (Argo's meaning): measurement phases, limits, run phase."""

import math
from datetime import UTC, datetime, timedelta

import pytest

from rollouts.controller import analysisrun as ar

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def metric(**kw: object) -> ar.MetricSpec:
    m = {"name": "m", "successCondition": "result[0] >= 0.95",
         "provider": {"prometheus": {"address": "x", "query": "q"}}, **kw}
    ms, errors = ar.parse_metrics({"metrics": [m]})
    assert not errors, errors
    return ms[0]


def run(m: ar.MetricSpec, phases: list[str]) -> dict[str, object]:
    r: dict[str, object] = {"name": m.name}
    for i, p in enumerate(phases):
        r = ar.record(m, r, p, [1.0], "", T0 + timedelta(seconds=i), T0 + timedelta(seconds=i))
    return r


@pytest.mark.parametrize("value, phase", [
    ([0.99], ar.SUCCESSFUL), ([0.5], ar.FAILED), ([], ar.ERROR), ([math.nan], ar.FAILED),
])
def test_measurement_phase_from_conditions(value: object, phase: str) -> None:
    p, msg = ar.measurement_phase(metric(), value)
    assert p == phase
    if value == []:
        assert "no data" in msg
    if value == [math.nan]:
        assert "NaN" in msg


def test_both_conditions_unmet_is_inconclusive() -> None:
    m = metric(successCondition="result[0] > 2", failureCondition="result[0] < 0")
    assert ar.measurement_phase(m, [1.0])[0] == ar.INCONCLUSIVE


def test_failure_limit_and_count() -> None:
    m = metric(interval="10s", count=3, failureLimit=1)
    assert ar.assess(m, run(m, [ar.FAILED])) == ar.RUNNING
    assert ar.assess(m, run(m, [ar.FAILED, ar.FAILED])) == ar.FAILED
    assert ar.assess(m, run(m, [ar.SUCCESSFUL, ar.FAILED, ar.SUCCESSFUL])) == ar.SUCCESSFUL


def test_consecutive_errors_and_all_errors_never_pass() -> None:
    m = metric(interval="10s", count=3, consecutiveErrorLimit=5)
    assert ar.assess(m, run(m, [ar.ERROR] * 3)) == ar.RUNNING  # errors are not the count
    assert ar.assess(m, run(m, [ar.ERROR] * 6)) == ar.ERROR  # never a pass on missing data
    m2 = metric(interval="10s", consecutiveErrorLimit=2)
    assert ar.assess(m2, run(m2, [ar.ERROR] * 2)) == ar.RUNNING
    assert ar.assess(m2, run(m2, [ar.ERROR] * 3)) == ar.ERROR
    assert ar.assess(m2, run(m2, [ar.ERROR, ar.ERROR, ar.SUCCESSFUL, ar.ERROR])) == ar.RUNNING


def test_next_due_follows_initial_delay_and_interval() -> None:
    m = metric(interval="30s", count=2, initialDelay="1m")
    assert ar.next_due(m, {}, T0, T0) == 60
    r = ar.record(m, {}, ar.SUCCESSFUL, [1.0], "", T0, T0 + timedelta(seconds=60))
    assert ar.next_due(m, r, T0, T0 + timedelta(seconds=70)) == 20
    r = ar.record(m, r, ar.SUCCESSFUL, [1.0], "", T0, T0 + timedelta(seconds=90))
    assert ar.next_due(m, r, T0, T0 + timedelta(seconds=95)) is None


def test_retention_keeps_the_last_measurements() -> None:
    ms, _ = ar.parse_metrics({"metrics": [{"name": "m", "interval": "1s", "successCondition": "true",
                                           "provider": {"web": {"url": "x"}}}],
                              "measurementRetention": [{"metricName": "m", "limit": 2}]})
    r = run(ms[0], [ar.SUCCESSFUL] * 5)
    assert len(r["measurements"]) == 2 and r["count"] == 5  # type: ignore[arg-type]


def test_run_phase_worst_metric_decides_and_dry_run_is_ignored() -> None:
    a, b = metric(), metric(name="b")
    b = ar.MetricSpec(**{**b.__dict__, "name": "b", "dry_run": True})
    results = {"m": {"phase": ar.SUCCESSFUL}, "b": {"phase": ar.FAILED, "message": "x"}}
    assert ar.run_phase([a, b], results)[0] == ar.SUCCESSFUL
    results["m"] = {"phase": ar.INCONCLUSIVE, "message": "undecided"}
    assert ar.run_phase([a, b], results) == (ar.INCONCLUSIVE, "metric m inconclusive: undecided")


@pytest.mark.parametrize("spec, fragment", [
    ({"metrics": []}, "non-empty"),
    ({"metrics": [{"name": "m", "provider": {"skywalking": {}}, "successCondition": "true"}]}, "exactly one"),
    ({"metrics": [{"name": "m", "provider": {"web": {"url": "x"}}}]}, "successCondition"),
    ({"metrics": [{"name": "m", "count": 3, "successCondition": "true",
                   "provider": {"web": {"url": "x"}}}]}, "needs an interval"),
    ({"metrics": [{"name": "m", "interval": "soon", "successCondition": "true",
                   "provider": {"web": {"url": "x"}}}]}, "invalid duration"),
])
def test_invalid_metrics_are_named(spec: dict[str, object], fragment: str) -> None:
    assert any(fragment in e for e in ar.parse_metrics(spec)[1])


def test_substitute_args_and_missing_arg() -> None:
    assert ar.substitute({"q": "a{{ args.x }}b", "l": ["{{args.x}}"]}, {"x": "1"}) == {"q": "a1b", "l": ["1"]}
    with pytest.raises(KeyError):
        ar.substitute("{{args.y}}", {"y": None})


def test_errors_do_not_count_towards_count() -> None:
    """Issue 10 item 6: as in Argo, `count` counts measurements that are not errors, so 4
    errors and 1 success never end Successful with count 5."""
    m = metric(interval="10s", count=5)  # consecutiveErrorLimit 4 by default
    r = run(m, [ar.ERROR] * 4 + [ar.SUCCESSFUL])
    assert r["count"] == 1 and r["error"] == 4 and r["successful"] == 1
    assert ar.assess(m, r) == ar.RUNNING
    assert ar.next_due(m, r, T0, T0 + timedelta(seconds=5)) is not None  # keeps measuring
    r = run(m, [ar.ERROR, ar.SUCCESSFUL] * 5)
    assert r["count"] == 5 and ar.assess(m, r) == ar.SUCCESSFUL
    assert ar.next_due(m, r, T0, T0 + timedelta(seconds=20)) is None
    # a single measurement (no interval) that errors is retried, not done
    once = metric()
    r = run(once, [ar.ERROR])
    assert ar.assess(once, r) == ar.RUNNING and not r.get("count")


def test_an_error_is_retried_after_the_interval_or_ten_seconds_at_most() -> None:
    m = metric(interval="1m", count=3)
    r = run(m, [ar.ERROR])  # finished at T0
    assert ar.next_due(m, r, T0, T0) == ar.ERROR_RETRY_S == 10
    r = run(metric(interval="2s", count=3), [ar.ERROR])
    assert ar.next_due(metric(interval="2s", count=3), r, T0, T0) == 2
    once = metric()
    assert ar.next_due(once, run(once, [ar.ERROR]), T0, T0) == 10  # never a tight loop
    assert ar.next_due(m, run(m, [ar.SUCCESSFUL]), T0, T0) == 60

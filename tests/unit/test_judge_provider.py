"""The judge provider turns stored Prometheus snapshots into the analysis judge's verdict."""

import pytest

from rollouts.metrics.judge import verdict
from rollouts.metrics.providers import ProviderError

SPEC = {"address": "http://p", "alpha": 0.05, "tolerance": 1.2,
        "canary": {"requests": "q", "errors": "q"}, "baseline": {"requests": "q", "errors": "q"}}


def snaps(canary_err: float, n: int = 40) -> list[dict[str, object]]:
    out = []
    for i in range(1, n + 1):
        out.append({"t": 15.0 * i,
                    "canary": {"requests": 500.0 * i, "errors": 500.0 * i * canary_err},
                    "baseline": {"requests": 2000.0 * i, "errors": 2000.0 * i * 0.01}})
    return out


def test_three_times_the_errors_rolls_back_with_an_explanation() -> None:
    v = verdict(SPEC, snaps(0.03))
    assert v.decision.value == "rollback"
    assert "error rate" in v.explanation and "roll back" in v.explanation


def test_same_error_rate_continues() -> None:
    v = verdict(SPEC, snaps(0.01))
    assert v.decision.value == "continue"


def test_per_pod_baseline_counters_are_used() -> None:
    spec = {**SPEC, "baseline": {**SPEC["baseline"], "requestsByPod": "q", "errorsByPod": "q"}}  # type: ignore[dict-item]
    ss = snaps(0.03)
    for s in ss:
        b = s["baseline"]
        assert isinstance(b, dict)
        b["requestsByPod"] = {"a": b["requests"] / 2, "b": b["requests"] / 2}
        b["errorsByPod"] = {"a": b["errors"] / 2, "b": b["errors"] / 2}
    assert verdict(spec, ss).decision.value == "rollback"


def test_missing_queries_are_a_clear_error() -> None:
    with pytest.raises(ProviderError, match="errors and/or latencyBuckets"):
        verdict({"address": "x", "canary": {"requests": "q"}, "baseline": {"requests": "q"}}, [])


def test_inconsistent_counters_raise_value_error() -> None:
    bad = snaps(0.01, 3)
    bad[1]["canary"] = {"requests": 10.0, "errors": 50.0}  # more errors than requests
    with pytest.raises(ValueError):
        verdict(SPEC, bad)


# -- every parameter settable and validated (issue 10, item 4) ---------------------------
def test_every_parameter_reaches_the_judge() -> None:
    from rollouts.metrics.judge import _config

    cfg = _config({**SPEC, "alpha": 0.01, "errorAlphaShare": 0.6, "tolerance": 1.1,
                   "adaptiveMargin": False, "podSpreadMax": 0.3,
                   "errorAlternatives": {"min": 1.3, "max": 4, "points": 6},
                   "errorTailAlternatives": {"min": 8, "max": 500, "points": 4},
                   "errorTailWeight": 0.1, "latencyTolerance": 1.05,
                   "latencyAlternatives": {"min": 1.1, "max": 2, "points": 3},
                   "confidenceAlpha": 0.1, "earlyPromotion": True, "promotionTolerance": 1.4,
                   "latencyPromotionTolerance": 1.2, "promotionAlpha": 0.02,
                   "minDwellSeconds": 60, "latencyMinRequests": 50, "minRequests": 30,
                   "newPods": {"policy": "include", "warmupSeconds": 30, "tolerance": 8,
                               "weight": 0.2}})
    assert (cfg.alpha, cfg.error_alpha_share, cfg.error_r0, cfg.adaptive_margin) == (0.01, 0.6, 1.1, False)
    assert cfg.pod_sd_max == 0.3 and cfg.error_grid == (1.3, 4.0, 6)
    assert cfg.error_tail == (8.0, 500.0, 4) and cfg.error_tail_weight == 0.1
    assert (cfg.latency_r0, cfg.latency_grid, cfg.alpha_cs) == (1.05, (1.1, 2.0, 3), 0.1)
    assert (cfg.early_promotion, cfg.r_tol, cfg.latency_r_tol, cfg.alpha_promote) == (True, 1.4, 1.2, 0.02)
    assert (cfg.min_dwell_s, cfg.latency_min_baseline, cfg.min_requests) == (60, 50, 30)
    assert (cfg.new_pods, cfg.new_pod_warmup_s, cfg.new_pod_r0, cfg.new_pod_weight) == ("include", 30, 8, 0.2)


@pytest.mark.parametrize("extra, message", [
    ({"tolerance": "abc"}, "judge.tolerance must be a number"),
    ({"alpha": 2}, "alpha must be a number in (0, 1)"),
    ({"earlyPromotion": "yes"}, "judge.earlyPromotion must be true or false"),
    ({"latencyTolerance": 0}, "latencyTolerance must be a positive number"),
    ({"errorAlternatives": {"min": 0.5, "max": 3}}, "errorAlternatives must satisfy"),
    ({"errorAlternatives": [1, 2, 3]}, "errorAlternatives must be {min"),
    ({"minRequests": 2.5}, "judge.minRequests must be an integer"),
    ({"newPods": {"policy": "skip"}}, "newPods.policy must be one of exclude, include"),
    ({"newPods": {"warmup": 30}}, "judge.newPods.warmup is not a parameter"),
    ({"podSpreadMax": 3}, "podSpreadMax must be in [0, 1]"),
    ({"tolerence": 1.2}, "judge.tolerence is not a judge parameter"),
])
def test_a_bad_parameter_is_a_clear_error_never_a_default(extra: dict[str, object], message: str) -> None:
    from rollouts.metrics.judge import validate_judge_spec

    with pytest.raises(ProviderError) as e:
        verdict({**SPEC, **extra}, snaps(0.01, 3))
    assert message in str(e.value)
    assert any(message in p for p in validate_judge_spec({**SPEC, **extra}))


def test_lint_validation_skips_templated_values_and_checks_queries() -> None:
    from rollouts.metrics.judge import validate_judge_spec

    assert validate_judge_spec({**SPEC, "alpha": "{{args.alpha}}"}) == []
    assert validate_judge_spec(SPEC) == []
    probs = validate_judge_spec({"address": "x", "canary": {"requests": "q", "errorz": "q"}})
    assert any("judge.canary.errorz is not a query kind" in p for p in probs)
    assert any("judge.baseline.requests" in p for p in probs)


async def test_a_bad_parameter_fails_before_any_query() -> None:
    from rollouts.metrics.judge import judge_reading

    with pytest.raises(ProviderError, match=r"judge\.alpha"):
        await judge_reading({**SPEC, "address": "http://127.0.0.1:9", "alpha": "x"}, [], 0.0)


# -- empty or NaN is no data, never 0; resets per pod (issue 10, item 3) -----------------
def test_an_empty_baseline_result_is_no_data_not_zero() -> None:
    # Before: an empty result became 0.0, then the next value brought the baseline's whole
    # history into one interval. Now the empty scrape is skipped.
    ss = snaps(0.01, 40)
    base = [dict(s) for s in ss]
    for k in (10, 11):
        b = dict(base[k]["baseline"])  # type: ignore[arg-type]
        b["requests"], b["errors"] = None, None
        base[k]["baseline"] = b
    v = verdict(SPEC, base)
    assert v.decision.value == "continue"
    counts = v.metrics[0].counts
    assert counts["baseline_requests"] == 2000 * 39  # nothing double-counted


def test_scalar_and_by_pod_results() -> None:
    from rollouts.metrics.judge import _by_pod, _scalar

    assert _scalar([]) is None
    assert _scalar([{"value": [0, "NaN"]}]) is None
    assert _scalar([{"value": [0, "12"]}]) == 12.0
    assert _by_pod([{"metric": {"pod": "a"}, "value": [0, "NaN"]}]) == {"a": None}


def test_errors_empty_before_any_error_is_zero_but_after_errors_is_missing() -> None:
    ss = snaps(0.0, 40)
    for s in ss:
        s["canary"] = {"requests": s["canary"]["requests"], "errors": None}  # type: ignore[index]
    v = verdict(SPEC, ss)  # no 5xx series: zero errors, and the canary is judged
    assert v.decision.value == "continue" and v.metrics[0].counts["canary_requests"] == 500 * 39
    ss[20]["baseline"] = {"requests": ss[20]["baseline"]["requests"], "errors": None}  # type: ignore[index]
    v = verdict(SPEC, ss)  # after errors were seen, an empty result is a missing scrape
    assert v.metrics[0].counts["baseline_bad"] == 20 * 39


def _pod_snaps(restart_at: int | None) -> list[dict[str, object]]:
    """5 stable pods with a day of history, latency-free; pod s0 restarts at ``restart_at``."""
    day = 86_400 * 200.0
    out = []
    for i in range(1, 41):
        pods_r = {f"s{k}": day + 400.0 * i for k in range(5)}
        pods_e = {f"s{k}": day / 100 + 4.0 * i for k in range(5)}
        if restart_at is not None and i >= restart_at:
            pods_r["s0"] = 400.0 * (i - restart_at + 1)
            pods_e["s0"] = 4.0 * (i - restart_at + 1)
        out.append({"t": 15.0 * i,
                    "canary": {"requests": 500.0 * i, "errors": 5.0 * i},
                    "baseline": {"requests": sum(pods_r.values()), "errors": sum(pods_e.values()),
                                 "requestsByPod": pods_r, "errorsByPod": pods_e}})
    return out


def test_one_stable_pod_restarting_does_not_bring_the_others_history() -> None:
    spec = {**SPEC, "baseline": {**SPEC["baseline"], "requestsByPod": "q", "errorsByPod": "q"}}  # type: ignore[dict-item]
    for restart in (None, 20):
        v = verdict(spec, _pod_snaps(restart))
        assert v.decision.value == "continue", v.explanation
        c = v.metrics[0].counts
        assert c["baseline_requests"] <= 2000 * 39, c  # never a day of history


def test_compaction_bounds_the_snapshots_and_keeps_the_verdicts() -> None:
    from rollouts.metrics.judge import compact_snapshots

    good, bad = [], []
    for s_good, s_bad in zip(snaps(0.01, 1000), snaps(0.03, 1000), strict=True):
        good = compact_snapshots([*good, s_good])
        bad = compact_snapshots([*bad, s_bad])
        assert len(good) <= 200
    assert good[0]["t"] == 15.0 and good[-1]["t"] == 15.0 * 1000
    assert verdict(SPEC, good).decision.value == "continue"
    assert verdict(SPEC, bad).decision.value == "rollback"
    # every request is still counted (cumulative counters)
    assert verdict(SPEC, good).metrics[0].counts["canary_requests"] == 500 * 999


async def test_the_reconciler_keeps_judge_snapshots_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 11: judgeSnapshots in an AnalysisRun's status grew by one per measurement.
    from datetime import UTC, datetime

    from rollouts.controller import analysis_reconciler as rec
    from rollouts.controller.analysisrun import MetricSpec
    from rollouts.metrics import judge as judge_mod
    from rollouts.metrics.providers import Reading

    seen: list[int] = []

    async def fake_reading(spec: dict[str, object], previous: list[dict[str, object]], now: float,
                           at: float | None = None, ctx: object = None) -> Reading:
        seen.append(len(previous))
        return Reading(value="continue", phase="Successful", message="ok",
                       snapshot={"t": now, "canary": {}, "baseline": {}}, evidence={})

    monkeypatch.setattr(judge_mod, "judge_reading", fake_reading)
    metric = MetricSpec(name="m", provider_kind="judge", provider=SPEC, interval=15.0)
    r: dict[str, object] = {"name": "m"}
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(450):
        r = await rec.take_measurement(metric, SPEC, r, now, lambda: now)
    snaps = r["judgeSnapshots"]
    assert isinstance(snaps, list) and len(snaps) <= 200 and max(seen) <= 200

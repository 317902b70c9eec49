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

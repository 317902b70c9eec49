"""Exported metrics: names, labels and values rendered from cached objects."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from rollouts.kube.workqueue import WorkQueue
from rollouts.observability.collectors import RolloutCollector, WorkQueueCollector
from rollouts.observability.metrics import ControllerMetrics


def _samples(m: ControllerMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, _ = m.render()
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(body.decode()) for s in fam.samples}


def _ro(name: str, status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"namespace": "shop", "name": name},
            "spec": {"replicas": 5, "strategy": {"canary": {
                "steps": [{"setWeight": 20}, {"pause": {}}], "trafficRouting": {"istio": {}}}}},
            "status": status}


def test_rollout_gauges_from_cache() -> None:
    m = ControllerMetrics()
    objs = [_ro("web", {"phase": "Paused", "currentStepIndex": 1, "availableReplicas": 5,
                        "canary": {"weights": {"canary": {"weight": 20}}}}),
            _ro("api", {"phase": "Degraded", "abort": True, "analysis": {"phase": "Failed", "metrics": [
                {"name": "error-rate", "phase": "Failed", "value": 0.05, "eValue": 42.0}]}})]
    m.register(RolloutCollector(lambda: objs))
    s = _samples(m)
    web = {("namespace", "shop"), ("rollout", "web")}
    api = {("namespace", "shop"), ("rollout", "api")}
    assert s[("rollout_info", frozenset(web | {("strategy", "canary"), ("traffic_router", "istio")}))] == 1
    assert s[("rollout_phase", frozenset(web | {("phase", "Paused")}))] == 1
    assert s[("rollout_phase", frozenset(web | {("phase", "Healthy")}))] == 0
    assert s[("rollout_current_step", frozenset(web))] == 1
    assert s[("rollout_step_count", frozenset(web))] == 2
    assert s[("rollout_canary_weight", frozenset(web))] == 20
    assert s[("rollout_replicas", frozenset(web | {("state", "available")}))] == 5
    assert s[("rollout_aborted", frozenset(api))] == 1
    assert s[("rollout_analysis_metric_phase", frozenset(api | {("metric", "error-rate"),
                                                                ("phase", "Failed")}))] == 1
    assert s[("rollout_analysis_metric_value", frozenset(api | {("metric", "error-rate")}))] == 0.05
    assert s[("rollout_analysis_metric_evalue", frozenset(api | {("metric", "error-rate")}))] == 42
    run = frozenset(api | {("kind", "analysis"), ("phase", "Failed")})
    assert s[("rollout_analysis_run_phase", run)] == 1
    objs.pop()  # a deleted rollout's series disappear at once
    assert not any(dict(k[1]).get("rollout") == "api" for k in _samples(m))


async def test_workqueue_and_reconcile_metrics_use_controller_runtime_names() -> None:
    q = WorkQueue()
    m = ControllerMetrics()
    m.register(WorkQueueCollector(q, m.in_flight))
    q.add("a/b")
    q.add("a/c")
    key, waited = await q.get()
    m.start_work(key, waited)
    s = _samples(m)
    name = frozenset({("name", "rollouts")})
    assert s[("workqueue_depth", name)] == 1
    assert s[("workqueue_adds_total", name)] == 2
    assert s[("workqueue_retries_total", name)] == 0
    assert s[("workqueue_longest_running_processor_seconds", name)] >= 0
    m.end_work(key, "error")
    m.sent("webhook", "hook")
    m.failed("slack", "chat", "retries_exhausted")
    s = _samples(m)
    assert s[("workqueue_work_duration_seconds_count", name)] == 1
    assert s[("workqueue_queue_duration_seconds_count", name)] == 1
    ctl = {("controller", "rollout")}
    assert s[("controller_runtime_reconcile_total", frozenset(ctl | {("result", "error")}))] == 1
    assert s[("controller_runtime_reconcile_errors_total", frozenset(ctl))] == 1
    assert s[("controller_runtime_reconcile_time_seconds_count", frozenset(ctl))] == 1
    assert s[("rollouts_notifications_sent_total",
              frozenset({("type", "webhook"), ("receiver", "hook")}))] == 1
    assert s[("rollouts_notifications_failed_total", frozenset(
        {("type", "slack"), ("receiver", "chat"), ("reason", "retries_exhausted")}))] == 1


def test_analysis_metrics_from_the_newest_analysis_run() -> None:
    def run(name: str, created: str, phase: str, value: str, e: float) -> dict[str, Any]:
        return {"metadata": {"namespace": "shop", "name": name, "creationTimestamp": created,
                             "ownerReferences": [{"kind": "Rollout", "name": "web"}]},
                "status": {"phase": phase, "metricResults": [
                    {"name": "errors", "phase": phase,
                     "measurements": [{"value": value, "metadata": {"eValue": str(e)}}]}]}}

    runs = [run("web-a-1", "2026-05-01T12:05:00Z", "Failed", "[0.07]", 55.0),
            run("web-a-0", "2026-05-01T12:00:00Z", "Successful", "[0.01]", 0.5)]
    m = ControllerMetrics()
    m.register(RolloutCollector(lambda: [_ro("web", {"phase": "Degraded"})], lambda: runs))
    s = _samples(m)
    web = {("namespace", "shop"), ("rollout", "web"), ("metric", "errors")}
    assert s[("rollout_analysis_metric_phase", frozenset(web | {("phase", "Failed")}))] == 1
    assert s[("rollout_analysis_metric_phase", frozenset(web | {("phase", "Successful")}))] == 0
    assert s[("rollout_analysis_metric_value", frozenset(web))] == 0.07
    assert s[("rollout_analysis_metric_evalue", frozenset(web))] == 55

"""Per-pod series of the traffic simulator: a `pod` label per pod (as Prometheus' kubernetes-pods
job adds it to each sidecar's series), counters from 0 for a new or restarted pod, slow starts."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from testbed.simulator import Simulator
from testbed.simulator.model import (
    LABEL_NAMES,
    Behaviour,
    DestinationPlan,
    PlanBuilder,
    PodGroup,
    RoutePlan,
    parse_behaviour,
    ready_since,
)
from testbed.simulator.traffic import draw_tick
from tests.unit.test_simulator_traffic import SVC_A, demo_state, exposition, workload

WARM = {"simulator.rollouts.dev/warmup-seconds": "60",
        "simulator.rollouts.dev/warmup-latency-factor": "10",
        "simulator.rollouts.dev/warmup-error-rate": "0.5"}


def per_pod_counts(sim: Simulator) -> Counter[tuple[str, str]]:
    """(service, pod) -> requests, read from the /metrics exposition as Prometheus would."""
    out = Counter[tuple[str, str]]()
    for s in exposition(sim.metrics)["istio_requests"].samples:
        out[(s.labels["destination_service_name"], s.labels.get("pod", ""))] += int(s.value)
    return out


def test_every_pod_has_its_own_series_and_they_sum_to_the_workload() -> None:
    sim = Simulator(api_client=object(), seed=5, rps=500.0)  # type: ignore[arg-type]
    sim.state = demo_state(canary_weight=20)
    sim.step(50)
    counts = per_pod_counts(sim)
    assert set(counts) == {("demo-stable", "stable-0"), ("demo-stable", "stable-1"),
                           ("demo-stable", "stable-2"), ("demo-canary", "canary-0")}
    stable = [n for (svc, _), n in counts.items() if svc == "demo-stable"]
    assert min(stable) > 0.25 * sum(stable)  # requests spread uniformly over the pods
    assert sum(counts.values()) == sum(sim.metrics.totals().values())


def test_without_per_pod_the_exposition_has_no_pod_label() -> None:
    sim = Simulator(api_client=object(), seed=5, rps=500.0, per_pod=False)  # type: ignore[arg-type]
    sim.state = demo_state(canary_weight=20)
    sim.step(10)
    assert set(per_pod_counts(sim)) == {("demo-stable", ""), ("demo-canary", "")}
    assert all(len(k) == len(LABEL_NAMES) for k in sim.metrics.totals())


def test_a_new_pod_counts_from_zero_and_a_restarted_pod_resets_alone() -> None:
    sim = Simulator(api_client=object(), seed=5, rps=500.0)  # type: ignore[arg-type]
    sim.state = demo_state(canary_weight=20)
    sim.step(50)
    before = per_pod_counts(sim)
    new: dict[str, Any] = {"metadata": {"name": "stable-3", "namespace": "shop",
                                        "labels": {"app": "demo", "track": "stable"}},
                           "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    sim.state.pods[("shop", "stable-3")] = new
    pod0 = sim.state.pods[("shop", "stable-0")]
    pod0["metadata"]["annotations"] = {"simulator.rollouts.dev/restarts": "1"}
    sim._changed()
    sim.step(5)
    after = per_pod_counts(sim)
    assert 0 < after[("demo-stable", "stable-3")] < before[("demo-stable", "stable-1")]
    # stable-0's counter went down (a reset), the other pods' only grew
    assert 0 < after[("demo-stable", "stable-0")] < before[("demo-stable", "stable-0")]
    for pod in ("stable-1", "stable-2"):
        assert after[("demo-stable", pod)] > before[("demo-stable", pod)]
    # no new reset while the token stays the same
    sim.step(5)
    assert per_pod_counts(sim)[("demo-stable", "stable-0")] > after[("demo-stable", "stable-0")]
    # a restartCount bump (a real container restart) resets it too
    pod0["status"]["containerStatuses"] = [{"name": "app", "restartCount": 1}]
    sim._changed()
    mid = per_pod_counts(sim)[("demo-stable", "stable-0")]
    sim.step(1)
    assert per_pod_counts(sim)[("demo-stable", "stable-0")] < mid


def test_a_pod_is_slow_and_errs_during_its_warm_up_only() -> None:
    b = parse_behaviour(WARM, "pod", lambda m: None)
    assert b.at_age(10.0) == Behaviour(error_rate=0.5, latency_ms=500.0)
    assert b.at_age(61.0) is b and b.at_age(None) is b
    group = PodGroup(workload("a"), b, 1, "a-0", ready_since=1000.0)
    plan = [RoutePlan("shop", "vs", 1000.0, (DestinationPlan(SVC_A, 1.0, (group,)),))]
    rng = np.random.default_rng(1)

    def median_and_errors(now: float) -> tuple[float, float]:
        batches = draw_tick(rng, plan, 2.0, now=now)
        lat = np.concatenate([x.latencies_ms for x in batches])
        errs = sum(x.count for x in batches if x.label("response_code") == "500")
        return float(np.median(lat)), errs / lat.size

    med, err = median_and_errors(1030.0)
    assert 400 < med < 600 and 0.4 < err < 0.6
    med, err = median_and_errors(1061.0)
    assert 40 < med < 60 and err == 0
    assert draw_tick(rng, plan, 2.0)[0].label("pod") == "a-0"


def test_ready_time_comes_from_the_ready_condition() -> None:
    pod: dict[str, Any] = {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
           "status": {"startTime": "2026-01-01T00:00:05Z", "conditions": [
               {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:09Z"}]}}
    assert ready_since(pod) == 1767225609.0
    del pod["status"]["conditions"]
    assert ready_since(pod) == 1767225605.0
    assert ready_since({"metadata": {}}) is None


def test_pods_warming_up_are_grouped_by_age_without_per_pod_series() -> None:
    s = demo_state(canary_weight=20)
    for i, t in enumerate(("00:00:09", "00:00:09", "00:00:30")):
        p = s.pods[("shop", f"stable-{i}")]
        p["metadata"]["annotations"] = WARM
        p["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "stable-aaa", "controller": True}]
        p["status"]["conditions"][0]["lastTransitionTime"] = f"2026-01-01T{t}Z"
    (plan,) = PlanBuilder(100.0).build(s)
    stable = next(d for d in plan.destinations if dict(d.service_labels)["destination_service_name"]
                  == "demo-stable")
    assert sorted((g.pods, g.ready_since) for g in stable.groups) == [(1, 1767225630.0), (2, 1767225609.0)]


def test_requests_no_pod_answered_are_reported_by_the_gateway_with_per_pod_series() -> None:
    """A real mesh has no destination proxy to report a 503 UH: only the source (gateway)
    does, so a per-pod query on reporter="destination" never meets a series without a pod."""
    for per_pod, reporter, pod in ((True, "source", "istio-ingressgateway"), (False, "destination", "")):
        sim = Simulator(api_client=object(), seed=5, rps=500.0, per_pod=per_pod)  # type: ignore[arg-type]
        sim.state = demo_state(canary_weight=20)
        del sim.state.pods[("shop", "canary-0")]
        sim.step(10)
        fam = exposition(sim.metrics)["istio_requests"]
        uh = [s.labels for s in fam.samples if s.labels["response_flags"] == "UH"]
        assert uh and all(x["reporter"] == reporter and x.get("pod", "") == pod for x in uh), uh
        ok = [s.labels for s in fam.samples if s.labels["response_code"] == "200"]
        assert ok and all(x["reporter"] == "destination" for x in ok)

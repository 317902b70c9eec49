"""Traffic simulator: drawing requests, seeding, metric exposition, the tick step."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from testbed.simulator import Simulator
from testbed.simulator.metrics import DURATION_BUCKETS_MS, IstioMetrics, MetricsServer, format_le
from testbed.simulator.model import (
    LABEL_NAMES,
    Behaviour,
    ClusterState,
    DestinationPlan,
    PodGroup,
    RoutePlan,
)
from testbed.simulator.traffic import Batch, draw_latencies, draw_tick

DEFAULT = Behaviour()

SVC_A = (
    ("destination_service", "a.ns.svc.cluster.local"),
    ("destination_service_name", "a"),
    ("destination_service_namespace", "ns"),
)
SVC_B = (
    ("destination_service", "b.ns.svc.cluster.local"),
    ("destination_service_name", "b"),
    ("destination_service_namespace", "ns"),
)


def workload(name: str) -> tuple[tuple[str, str], ...]:
    return (
        ("destination_workload", name),
        ("destination_workload_namespace", "ns"),
        ("destination_principal", "spiffe://cluster.local/ns/ns/sa/default"),
        ("destination_app", "demo"),
        ("destination_version", "unknown"),
        ("destination_canonical_service", "demo"),
        ("destination_canonical_revision", "latest"),
    )


def plan(
    weights: tuple[float, float] = (80, 20),
    rps: float = 1000.0,
    b_behaviour: Behaviour = DEFAULT,
    b_pods: int = 1,
) -> list[RoutePlan]:
    a = DestinationPlan(SVC_A, weights[0], (PodGroup(workload("a"), Behaviour(), 3),))
    b = DestinationPlan(SVC_B, weights[1], (PodGroup(workload("b"), b_behaviour, b_pods),))
    return [RoutePlan("ns", "vs", rps, (a, b))]


def by(batches: list[Batch], *names: str) -> Counter[tuple[str, ...]]:
    out: Counter[tuple[str, ...]] = Counter()
    for b in batches:
        out[tuple(b.label(n) for n in names)] += b.count
    return out


def run(plans: list[RoutePlan], seconds: float, seed: int = 7, dt: float = 0.2) -> list[Batch]:
    rng = np.random.default_rng(seed)
    out: list[Batch] = []
    for _ in range(round(seconds / dt)):
        out.extend(draw_tick(rng, plans, dt))
    return out


def test_request_count_is_poisson_around_rps() -> None:
    batches = run(plan(rps=500.0), seconds=20)
    total = sum(b.count for b in batches)
    assert abs(total - 10_000) < 5 * math.sqrt(10_000)


def test_weights_split_requests() -> None:
    counts = by(run(plan((80, 20)), seconds=30), "destination_service_name")
    share = counts[("b",)] / (counts[("a",)] + counts[("b",)])
    assert abs(share - 0.20) < 0.01


def test_zero_weight_gets_nothing() -> None:
    counts = by(run(plan((100, 0)), seconds=5), "destination_service_name")
    assert counts[("b",)] == 0 and counts[("a",)] > 0


def test_error_rate_is_drawn_per_pod_group() -> None:
    batches = run(plan((50, 50), b_behaviour=Behaviour(error_rate=0.05)), seconds=40)
    counts = by(batches, "destination_service_name", "response_code")
    assert counts[("a", "500")] == 0
    b_total = counts[("b", "200")] + counts[("b", "500")]
    assert abs(counts[("b", "500")] / b_total - 0.05) < 0.005
    assert all(b.label("response_flags") == "-" for b in batches)


def test_pods_are_picked_uniformly() -> None:
    group_1 = PodGroup(workload("old"), Behaviour(), 3)
    group_2 = PodGroup(workload("new"), Behaviour(), 1)
    plans = [RoutePlan("ns", "vs", 1000.0, (DestinationPlan(SVC_A, 1, (group_1, group_2)),))]
    counts = by(run(plans, seconds=20), "destination_workload")
    assert abs(counts[("new",)] / (counts[("old",)] + counts[("new",)]) - 0.25) < 0.015


def test_latency_is_lognormal_around_median() -> None:
    rng = np.random.default_rng(1)
    lat = draw_latencies(rng, Behaviour(latency_ms=80, latency_sigma=0.5), 50_000)
    assert abs(np.median(lat) - 80) < 2
    assert abs(np.std(np.log(lat)) - 0.5) < 0.01
    const = draw_latencies(rng, Behaviour(latency_ms=30, latency_sigma=0), 100)
    assert np.all(const == 30)


def test_tail_regression_moves_only_the_tail() -> None:
    rng = np.random.default_rng(2)
    b = Behaviour(latency_ms=50, latency_sigma=0.1, tail_fraction=0.02, tail_extra_ms=2000)
    lat = draw_latencies(rng, b, 100_000)
    assert abs(np.median(lat) - 50) < 1
    assert abs(np.mean(lat > 1000) - 0.02) < 0.002
    assert np.percentile(lat, 99.5) > 1900


def test_destination_without_pods_answers_503_uh() -> None:
    dead = DestinationPlan(SVC_B, 50, (), "UH")
    nc = DestinationPlan(SVC_A, 50, (), "NC")
    batches = run([RoutePlan("ns", "vs", 200.0, (dead, nc))], seconds=2)
    counts = by(batches, "destination_service_name", "response_code", "response_flags")
    assert set(counts) == {("b", "503", "UH"), ("a", "503", "NC")}
    assert all(b.label("destination_workload") == "unknown" for b in batches)


def test_zero_rps_and_empty_routes_send_nothing() -> None:
    assert run(plan(rps=0.0), seconds=1) == []
    assert run([RoutePlan("ns", "vs", 100.0, ())], seconds=1) == []


def test_same_seed_same_draws_other_seed_differs() -> None:
    def fingerprint(seed: int) -> list[tuple[tuple[str, ...], int, float]]:
        beh = Behaviour(error_rate=0.1)
        return [
            (b.labels, b.count, float(b.latencies_ms.sum()))
            for b in run(plan(b_behaviour=beh), 5, seed)
        ]

    assert fingerprint(3) == fingerprint(3)
    assert fingerprint(3) != fingerprint(4)


def test_istio_labels_are_complete() -> None:
    (batch, *_) = run(plan(), seconds=0.2)
    labels = dict(zip(LABEL_NAMES, batch.labels, strict=True))
    assert labels["reporter"] == "destination"
    assert labels["source_workload"] == "istio-ingressgateway"
    assert labels["source_workload_namespace"] == "istio-system"
    assert labels["request_protocol"] == "http"
    assert labels["connection_security_policy"] == "mutual_tls"
    assert "pod" not in labels and "pod_name" not in labels


# --------------------------------------------------------------------------- metrics


def exposition(metrics: IstioMetrics) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry, generate_latest

    reg = CollectorRegistry(auto_describe=False)
    reg.register(metrics)
    text = generate_latest(reg).decode()
    return {f.name: f for f in text_string_to_metric_families(text)} | {"_text": text}


def test_exposition_counter_and_histogram() -> None:
    m = IstioMetrics()
    labels = run(plan(), seconds=0.2)[0].labels
    m.record([Batch(labels, np.array([0.3, 0.5, 3.0, 50.0, 51.0, 5e6]))])
    fams = exposition(m)
    text = fams["_text"]
    assert "istio_requests_total{" in text
    assert 'le="250"' in text and 'le="0.5"' in text and 'le="3600000"' in text
    (sample,) = fams["istio_requests"].samples
    assert sample.value == 6 and sample.labels["destination_service_name"] == "a"
    buckets = {
        s.labels["le"]: s.value
        for s in fams["istio_request_duration_milliseconds"].samples
        if s.name.endswith("_bucket")
    }
    assert buckets["0.5"] == 2  # le is inclusive
    assert buckets["5"] == 3
    assert buckets["50"] == 4
    assert buckets["100"] == 5
    assert buckets["3600000"] == 5
    assert buckets["+Inf"] == 6
    assert len(buckets) == len(DURATION_BUCKETS_MS) + 1
    sums = [
        s for s in fams["istio_request_duration_milliseconds"].samples if s.name.endswith("_sum")
    ]
    assert sums[0].value == pytest.approx(0.3 + 0.5 + 3 + 50 + 51 + 5e6)


def test_series_survive_weight_changes() -> None:
    m = IstioMetrics()
    rng = np.random.default_rng(0)
    for _ in range(10):
        m.record(draw_tick(rng, plan((50, 50)), 0.2))
    before = m.totals()
    for _ in range(10):
        m.record(draw_tick(rng, plan((100, 0)), 0.2))
    after = m.totals()
    assert set(before) <= set(after)
    assert all(after[k] >= v for k, v in before.items())


def test_format_le() -> None:
    assert [format_le(b) for b in (0.5, 1, 25.0, 1800000)] == ["0.5", "1", "25", "1800000"]


async def test_metrics_server_on_free_port() -> None:
    m = IstioMetrics()
    m.record(run(plan(), seconds=0.2))
    server = MetricsServer(m, "127.0.0.1", 0)
    await server.start()
    try:
        assert server.port > 0
        async with httpx.AsyncClient() as http:
            r = await http.get(f"http://127.0.0.1:{server.port}/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "istio_request_duration_milliseconds_bucket{" in r.text
    finally:
        await server.stop()


# --------------------------------------------------------------------------- simulator


def demo_state(canary_weight: int) -> ClusterState:
    s = ClusterState()
    for track, replicas in (("stable", 3), ("canary", 1)):
        svc = f"demo-{track}"
        sel = {"app": "demo", "track": track}
        s.services[("shop", svc)] = {
            "metadata": {"name": svc, "namespace": "shop"},
            "spec": {"selector": sel},
        }
        for i in range(replicas):
            name = f"{track}-{i}"
            s.pods[("shop", name)] = {
                "metadata": {"name": name, "namespace": "shop", "labels": sel},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            }
    route = [
        {"destination": {"host": "demo-stable"}, "weight": 100 - canary_weight},
        {"destination": {"host": "demo-canary"}, "weight": canary_weight},
    ]
    s.virtual_services[("shop", "demo")] = {
        "metadata": {"name": "demo", "namespace": "shop"},
        "spec": {"http": [{"route": route}]},
    }
    return s


def test_simulator_step_from_cluster_state() -> None:
    """The whole pipeline minus the API server: state -> plan -> draws -> metrics."""
    sim = Simulator(api_client=object(), seed=5, rps=500.0)  # type: ignore[arg-type]
    sim.state = demo_state(canary_weight=20)
    sim.step(100)  # 20 s of traffic in one draw
    totals = Counter[str]()
    for labels, n in sim.metrics.totals().items():
        totals[dict(zip(sim.metrics.label_names, labels, strict=True))["destination_service_name"]] += n
    share = totals["demo-canary"] / sum(totals.values())
    assert abs(share - 0.2) < 0.02

    # A watched change marks the plan dirty; the next step follows it.
    sim.state.virtual_services[("shop", "demo")]["spec"]["http"][0]["route"][1]["weight"] = 100
    sim.state.virtual_services[("shop", "demo")]["spec"]["http"][0]["route"][0]["weight"] = 0
    sim._changed()
    before = sim.metrics.totals()
    sim.step(10)
    grown = Counter[str]()
    for labels, n in sim.metrics.totals().items():
        name = dict(zip(sim.metrics.label_names, labels, strict=True))["destination_service_name"]
        grown[name] += n - before.get(labels, 0)
    assert grown["demo-stable"] == 0 and grown["demo-canary"] > 0


@pytest.mark.parametrize("listen", ["127.0.0.1", "nohost:", ":80", "h:99999"])
def test_bad_listen_is_rejected(listen: str) -> None:
    with pytest.raises(ValueError):
        Simulator(api_client=object(), listen=listen)  # type: ignore[arg-type]

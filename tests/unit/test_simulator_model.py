"""Routing logic of the traffic simulator: resolution, weights, pods, behaviour."""

from __future__ import annotations

from typing import Any

import pytest

from testbed.simulator.model import (
    Behaviour,
    ClusterState,
    PlanBuilder,
    RouteDestination,
    first_route_destinations,
    parse_behaviour,
    pod_is_ready,
    resolve_host,
    workload_labels,
    workload_name,
)

NS = "shop"


def pod(
    name: str,
    labels: dict[str, str],
    *,
    ns: str = NS,
    ready: bool = True,
    rs: str | None = None,
    annotations: dict[str, str] | None = None,
    terminating: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": labels}
    if rs:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": rs, "controller": True}]
    if annotations:
        meta["annotations"] = annotations
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    cond = {"type": "Ready", "status": "True" if ready else "False"}
    return {"metadata": meta, "spec": {}, "status": {"conditions": [cond]}}


def service(name: str, selector: dict[str, str], ns: str = NS) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"selector": selector}}


def vs(
    name: str, route: list[dict[str, Any]], ns: str = NS, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "annotations": annotations or {}}
    return {"metadata": meta, "spec": {"hosts": ["x"], "http": [{"route": route}]}}


def dest(host: str, weight: int | None = None, subset: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"destination": {"host": host}}
    if subset:
        d["destination"]["subset"] = subset
    if weight is not None:
        d["weight"] = weight
    return d


def put(store: dict[tuple[str, str], Any], *objs: dict[str, Any]) -> None:
    for o in objs:
        store[(o["metadata"]["namespace"], o["metadata"]["name"])] = o


def demo_state(canary_weight: int = 20) -> ClusterState:
    s = ClusterState()
    put(s.services, service("demo-stable", {"app": "demo", "track": "stable"}))
    put(s.services, service("demo-canary", {"app": "demo", "track": "canary"}))
    for i in range(3):
        lbl = {"app": "demo", "track": "stable", "pod-template-hash": "aaa"}
        put(s.pods, pod(f"stable-aaa-{i}", lbl, rs="stable-aaa"))
    canary_lbl = {"app": "demo", "track": "canary", "pod-template-hash": "bbb", "version": "v2"}
    put(
        s.pods,
        pod("canary-bbb-0", canary_lbl, rs="canary-bbb", annotations=err(0.05)),
    )
    put(
        s.virtual_services,
        vs(
            "demo",
            [dest("demo-stable", 100 - canary_weight), dest("demo-canary", canary_weight)],
        ),
    )
    return s


def err(rate: float) -> dict[str, str]:
    return {"simulator.rollouts.dev/error-rate": str(rate)}


# --------------------------------------------------------------------------- hosts


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("reviews", ("reviews", NS)),
        ("reviews.prod", ("reviews", "prod")),
        ("reviews.prod.svc", ("reviews", "prod")),
        ("reviews.prod.svc.cluster.local", ("reviews", "prod")),
        ("reviews.prod.svc.cluster.local.", ("reviews", "prod")),
        ("api.example.com", None),
        ("*.prod.svc.cluster.local", None),
        ("", None),
    ],
)
def test_resolve_host(host: str, expected: tuple[str, str] | None) -> None:
    assert resolve_host(host, NS) == expected


# --------------------------------------------------------------------------- weights


def test_single_destination_without_weight_gets_everything() -> None:
    assert first_route_destinations(vs("v", [dest("a")])) == [RouteDestination("a", None, 1.0)]


def test_weights_are_read_and_missing_weight_is_zero() -> None:
    got = first_route_destinations(vs("v", [dest("a", 80), dest("b", 20, "v2"), dest("c")]))
    assert [(d.host, d.subset, d.weight) for d in got] == [
        ("a", None, 80.0),
        ("b", "v2", 20.0),
        ("c", None, 0.0),
    ]


def test_all_zero_weights_split_evenly() -> None:
    got = first_route_destinations(vs("v", [dest("a", 0), dest("b", 0)]))
    assert [d.weight for d in got] == [1.0, 1.0]


def test_only_first_http_route_is_used() -> None:
    v = vs("v", [dest("a")])
    v["spec"]["http"].append({"route": [dest("b")]})
    assert [d.host for d in first_route_destinations(v)] == ["a"]


def test_no_http_routes() -> None:
    assert first_route_destinations({"metadata": {}, "spec": {"tcp": []}}) == []


# --------------------------------------------------------------------------- pods


def test_pod_readiness() -> None:
    assert pod_is_ready(pod("p", {}))
    assert not pod_is_ready(pod("p", {}, ready=False))
    assert not pod_is_ready(pod("p", {}, terminating=True))
    assert not pod_is_ready({"metadata": {"name": "p"}, "status": {}})


@pytest.mark.parametrize(
    ("labels", "rs", "expected"),
    [
        ({"pod-template-hash": "abc12"}, "web-abc12", "web"),
        ({"rollouts-pod-template-hash": "f00"}, "web-f00", "web"),
        ({}, "web-abc12", "web-abc12"),  # no hash label: keep the ReplicaSet name
        ({"pod-template-hash": "zzz"}, "web-abc12", "web-abc12"),
        ({}, None, "lonely"),  # a bare pod is its own workload
    ],
)
def test_workload_name(labels: dict[str, str], rs: str | None, expected: str) -> None:
    assert workload_name(pod("lonely", labels, rs=rs)) == expected


def test_workload_name_of_other_owner_kinds() -> None:
    p = pod("db-0", {})
    p["metadata"]["ownerReferences"] = [{"kind": "StatefulSet", "name": "db", "controller": True}]
    assert workload_name(p) == "db"


def test_canonical_labels_fall_back_like_istio() -> None:
    p = pod("w-h-1", {"pod-template-hash": "h"}, rs="w-h")
    got = workload_labels(p)
    assert got["destination_canonical_service"] == "w"
    assert got["destination_canonical_revision"] == "latest"
    assert got["destination_version"] == "unknown"
    assert got["destination_app"] == "unknown"
    assert got["destination_principal"] == f"spiffe://cluster.local/ns/{NS}/sa/default"

    p = pod("w-h-1", {"app": "shop", "version": "v3"}, rs="w-h")
    got = workload_labels(p)
    assert (got["destination_canonical_service"], got["destination_canonical_revision"]) == (
        "shop",
        "v3",
    )
    p = pod(
        "w-h-1",
        {
            "app": "shop",
            "version": "v3",
            "app.kubernetes.io/name": "shop-k8s",
            "app.kubernetes.io/version": "1.2",
            "service.istio.io/canonical-name": "shop-istio",
            "service.istio.io/canonical-revision": "r9",
        },
    )
    got = workload_labels(p)
    assert (got["destination_canonical_service"], got["destination_canonical_revision"]) == (
        "shop-istio",
        "r9",
    )


# --------------------------------------------------------------------------- behaviour


def test_behaviour_defaults_and_values() -> None:
    warnings: list[str] = []
    assert parse_behaviour({}, "p", warnings.append) == Behaviour()
    got = parse_behaviour(
        {
            "simulator.rollouts.dev/error-rate": "0.05",
            "simulator.rollouts.dev/latency-ms": "120",
            "simulator.rollouts.dev/latency-sigma": "0.2",
            "simulator.rollouts.dev/tail-fraction": "0.01",
            "simulator.rollouts.dev/tail-extra-ms": " 900 ",
            "other.io/x": "y",
        },
        "p",
        warnings.append,
    )
    assert got == Behaviour(0.05, 120.0, 0.2, 0.01, 900.0)
    assert warnings == []


@pytest.mark.parametrize("value", ["lots", "1.5", "-0.1", "nan", "inf", ""])
def test_invalid_behaviour_warns_and_uses_default(value: str) -> None:
    warnings: list[str] = []
    got = parse_behaviour(
        {"simulator.rollouts.dev/error-rate": value, "simulator.rollouts.dev/latency-ms": "80"},
        "pod shop/p",
        warnings.append,
    )
    assert got == Behaviour(latency_ms=80.0)
    assert len(warnings) == 1 and "error-rate" in warnings[0] and "shop/p" in warnings[0]


# --------------------------------------------------------------------------- plans


def test_plan_for_weighted_route() -> None:
    (plan,) = PlanBuilder(100.0).build(demo_state())
    assert (plan.namespace, plan.name, plan.rps) == (NS, "demo", 100.0)
    stable, canary = plan.destinations
    assert stable.weight == 80 and canary.weight == 20
    assert dict(stable.service_labels) == {
        "destination_service": f"demo-stable.{NS}.svc.cluster.local",
        "destination_service_name": "demo-stable",
        "destination_service_namespace": NS,
    }
    (sg,) = stable.groups
    assert sg.pods == 3 and dict(sg.labels)["destination_workload"] == "stable"
    (cg,) = canary.groups
    assert cg.pods == 1 and cg.behaviour.error_rate == 0.05
    assert dict(cg.labels)["destination_workload"] == "canary"
    assert dict(cg.labels)["destination_version"] == "v2"
    assert stable.failure_flag is None and canary.failure_flag is None


def test_unready_and_terminating_pods_are_not_endpoints() -> None:
    s = demo_state()
    lbl = {"app": "demo", "track": "stable", "pod-template-hash": "aaa"}
    put(s.pods, pod("stable-aaa-0", lbl, rs="stable-aaa", ready=False))
    put(s.pods, pod("stable-aaa-1", lbl, rs="stable-aaa", terminating=True))
    (plan,) = PlanBuilder(100.0).build(s)
    assert plan.destinations[0].groups[0].pods == 1


def test_no_ready_pods_gives_uh() -> None:
    s = demo_state()
    del s.pods[(NS, "canary-bbb-0")]
    (plan,) = PlanBuilder(100.0).build(s)
    canary = plan.destinations[1]
    assert canary.groups == () and canary.failure_flag == "UH"
    assert dict(canary.service_labels)["destination_service_name"] == "demo-canary"


def test_unknown_service_gives_nc() -> None:
    s = demo_state()
    del s.services[(NS, "demo-canary")]
    (plan,) = PlanBuilder(100.0).build(s)
    assert plan.destinations[1].failure_flag == "NC"


def test_pods_in_other_namespaces_do_not_match() -> None:
    s = demo_state()
    put(s.pods, pod("x", {"app": "demo", "track": "canary"}, ns="elsewhere"))
    (plan,) = PlanBuilder(100.0).build(s)
    assert plan.destinations[1].groups[0].pods == 1


def test_cross_namespace_host() -> None:
    s = demo_state()
    put(s.services, service("api", {"app": "api"}, ns="backend"))
    put(s.pods, pod("api-1", {"app": "api"}, ns="backend"))
    put(s.virtual_services, vs("to-api", [dest("api.backend.svc.cluster.local")]))
    plans = {p.name: p for p in PlanBuilder(100.0).build(s)}
    (d,) = plans["to-api"].destinations
    assert dict(d.service_labels)["destination_service_namespace"] == "backend"
    assert d.groups[0].pods == 1


def subset_state() -> ClusterState:
    s = ClusterState()
    put(s.services, service("demo", {"app": "demo"}))
    put(s.pods, pod("a", {"app": "demo", "track": "stable"}))
    put(s.pods, pod("b", {"app": "demo", "track": "stable"}))
    put(s.pods, pod("c", {"app": "demo", "track": "canary"}))
    put(s.pods, pod("d", {"app": "other", "track": "canary"}))
    dr = {
        "metadata": {"name": "demo", "namespace": NS},
        "spec": {
            "host": "demo",
            "subsets": [
                {"name": "stable", "labels": {"track": "stable"}},
                {"name": "canary", "labels": {"track": "canary"}},
                {"name": "contradiction", "labels": {"app": "nope"}},
            ],
        },
    }
    put(s.destination_rules, dr)
    return s


def test_subsets_via_destination_rule_and_service_selector() -> None:
    s = subset_state()
    put(
        s.virtual_services,
        vs(
            "demo",
            [
                dest("demo", 90, "stable"),
                dest("demo.shop.svc.cluster.local", 10, "canary"),
                dest("demo", 0, "missing"),
                dest("demo", 0, "contradiction"),
            ],
        ),
    )
    (plan,) = PlanBuilder(100.0).build(s)
    stable, canary, missing, contradiction = plan.destinations
    assert sum(g.pods for g in stable.groups) == 2
    assert sum(g.pods for g in canary.groups) == 1  # pod "d" fails the Service selector
    assert missing.failure_flag == "NC"
    assert contradiction.failure_flag == "UH"


def test_rps_annotation_and_invalid_value_warns_once() -> None:
    warnings: list[str] = []
    s = demo_state()
    s.virtual_services[(NS, "demo")]["metadata"]["annotations"] = {
        "simulator.rollouts.dev/rps": "1000"
    }
    builder = PlanBuilder(100.0, warnings.append)
    assert builder.build(s)[0].rps == 1000.0
    s.virtual_services[(NS, "demo")]["metadata"]["annotations"] = {
        "simulator.rollouts.dev/rps": "fast"
    }
    assert builder.build(s)[0].rps == 100.0
    assert builder.build(s)[0].rps == 100.0
    assert len(warnings) == 1 and "rps" in warnings[0]


def test_plans_are_sorted_for_reproducibility() -> None:
    s = demo_state()
    put(s.virtual_services, vs("aaa", [dest("demo-stable")]))
    put(s.virtual_services, vs("zzz", [dest("demo-stable")], ns="a-first"))
    names = [(p.namespace, p.name) for p in PlanBuilder(1.0).build(s)]
    assert names == sorted(names)

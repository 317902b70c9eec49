"""The simulator follows every router: NGINX canary Ingress (weight, weight total, header,
pattern, always/never), ALB actions (case-insensitive keys, header conditions), SMI
TrafficSplit, Gateway API HTTPRoute (default weight 1, header rules first), and exports
ingress-nginx's series with its names, labels and default buckets."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from testbed.simulator.metrics import NGINX_DURATION_BUCKETS_S, IstioMetrics, NginxMetrics
from testbed.simulator.model import Clients, ClusterState, PlanBuilder, RoutePlan
from testbed.simulator.routers import NGINX_LABEL_NAMES
from testbed.simulator.traffic import draw_tick

NS = "shop"
NGINX = "nginx.ingress.kubernetes.io/"
ALB = "alb.ingress.kubernetes.io/"
JSON = dict[str, Any]


def pod(name: str, app: str, error_rate: str = "0") -> JSON:
    return {"metadata": {"name": name, "namespace": NS, "labels": {"app": app},
                         "annotations": {"simulator.rollouts.dev/error-rate": error_rate}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def service(name: str, app: str, annotations: dict[str, str] | None = None) -> JSON:
    return {"metadata": {"name": name, "namespace": NS, "annotations": annotations or {}},
            "spec": {"selector": {"app": app}}}


def ingress(name: str, svc: str, annotations: dict[str, str] | None = None,
            port: JSON | None = None, paths: list[JSON] | None = None) -> JSON:
    backend = {"service": {"name": svc, "port": port or {"number": 80}}}
    return {"metadata": {"name": name, "namespace": NS, "annotations": annotations or {}},
            "spec": {"rules": [{"host": "shop.example.com", "http": {"paths": paths or [
                {"path": "/", "pathType": "Prefix", "backend": backend}]}}]}}


def state(*extra: tuple[str, JSON]) -> ClusterState:
    s = ClusterState()
    for name, app in (("stable", "v1"), ("canary", "v2"), ("root", "v1")):
        s.services[(NS, name)] = service(name, app)
    s.pods[(NS, "p1")] = pod("p1", "v1", "0.01")
    s.pods[(NS, "p2")] = pod("p2", "v2", "0.2")
    stores = {"ingress": s.ingresses, "split": s.traffic_splits, "route": s.http_routes,
              "service": s.services}
    for kind, obj in extra:
        stores[kind][(NS, obj["metadata"]["name"])] = obj
    return s


def plans(s: ClusterState, clients: Clients | None = None) -> list[RoutePlan]:
    return PlanBuilder(100.0, per_pod=True, clients=clients).build(s)


def split_of(p: RoutePlan, header: bool = False) -> dict[tuple[str, str], float]:
    """{(service label, canary label) or (destination_service_name, ""): share}."""
    dests = p.header_destinations if header else p.destinations
    total = sum(d.weight for d in dests)
    out = {}
    for d in dests:
        lbl = dict(d.service_labels)
        key = ((lbl["service"], lbl["canary"]) if p.family == "nginx"
               else (lbl["destination_service_name"], ""))
        out[key] = d.weight / total
    return out


def canary_ingress(**ann: str) -> JSON:
    return ingress("demo-web-canary", "canary", {NGINX + "canary": "true", **{
        NGINX + k.replace("_", "-"): v for k, v in ann.items()}})


# --------------------------------------------------------------------------- NGINX


def test_nginx_canary_ingress_merges_into_the_stable_location_by_weight() -> None:
    s = state(("ingress", ingress("web", "stable")), ("ingress", canary_ingress(canary_weight="20")))
    [p] = plans(s)  # the canary Ingress is no entry point of its own
    assert (p.kind, p.name, p.family) == ("Ingress", "web", "nginx")
    # ingress-nginx labels both with the location's Service; canary names the upstream
    assert split_of(p) == {("stable", ""): 0.8, ("stable", "shop-canary-80"): 0.2}
    canary_dest = next(d for d in p.destinations if dict(d.service_labels)["canary"])
    assert [g.pod for g in canary_dest.groups] == ["p2"]  # served by the canary Service's pods
    assert dict(canary_dest.service_labels) == {
        "method": "GET", "path": "/", "namespace": NS, "ingress": "web", "service": "stable",
        "canary": "shop-canary-80", "host": "shop.example.com"}


@pytest.mark.parametrize("ann, share", [
    ({"canary_weight": "30", "canary_weight_total": "200"}, 0.15),
    ({"canary_weight": "30", "canary_weight_total": "50"}, 0.30),  # balancer.lua: total > 100 only
    ({"canary_weight": "0"}, 0.0),
    ({}, 0.0),
    ({"canary_weight": "100"}, 1.0),
])
def test_nginx_weight_over_the_weight_total(ann: dict[str, str], share: float) -> None:
    [p] = plans(state(("ingress", ingress("web", "stable")), ("ingress", canary_ingress(**ann))))
    assert split_of(p).get(("stable", "shop-canary-80"), 0.0) == pytest.approx(share)


def test_nginx_without_canary_or_other_host_sends_all_to_stable() -> None:
    other = canary_ingress(canary_weight="50")
    other["spec"]["rules"][0]["host"] = "other.example.com"
    [p] = plans(state(("ingress", ingress("web", "stable")), ("ingress", other)))
    assert split_of(p) == {("stable", ""): 1.0}


@pytest.mark.parametrize("ann, sent, to_canary", [
    ({"canary_by_header": "X-Canary", "canary_by_header_value": "yes"}, "yes", True),
    ({"canary_by_header": "X-Canary", "canary_by_header_value": "yes"}, "no", False),
    ({"canary_by_header": "x-canary", "canary_by_header_pattern": "^be.a"}, "beta-1", True),
    ({"canary_by_header": "X-Canary", "canary_by_header_pattern": "^be.a"}, "alpha", False),
    ({"canary_by_header": "X-Canary"}, "always", True),
    ({"canary_by_header": "X-Canary"}, "never", False),
])
def test_nginx_header_clients_go_all_to_the_canary(ann: dict[str, str], sent: str, to_canary: bool) -> None:
    s = state(("ingress", ingress("web", "stable")),
              ("ingress", canary_ingress(canary_weight="10", **ann)))
    [p] = plans(s, Clients((("X-Canary", sent),), 0.25))
    assert split_of(p) == {("stable", ""): 0.9, ("stable", "shop-canary-80"): pytest.approx(0.1)}
    if to_canary:
        assert p.header_share == 0.25 and split_of(p, header=True) == {("stable", "shop-canary-80"): 1.0}
    elif sent == "never":  # "never" skips the weight: all to stable
        assert split_of(p, header=True) == {("stable", ""): 1.0}
    else:  # no match: the weight decides, as for everyone
        assert p.header_share == 0.0 and p.header_destinations == ()


def test_header_share_of_requests_reaches_the_canary_in_the_draw() -> None:
    s = state(("ingress", ingress("web", "stable")),
              ("ingress", canary_ingress(canary_weight="0", canary_by_header="X-Canary",
                                         canary_by_header_value="yes")))
    batches = draw_tick(np.random.default_rng(1), plans(s, Clients((("X-Canary", "yes"),), 0.3)), 100.0)
    counts: Counter[str] = Counter()
    for b in batches:
        counts[b.label("canary")] += b.count
    assert abs(counts["shop-canary-80"] / sum(counts.values()) - 0.3) < 0.02


# --------------------------------------------------------------------------- ALB


def alb_ingress(action: JSON, conditions: dict[str, Any] | None = None) -> JSON:
    ann = {ALB + "actions.root": json.dumps(action)}
    paths = [{"path": "/", "pathType": "Prefix", "backend": {"service": {
        "name": "root", "port": {"name": "use-annotation"}}}}]
    for name, cond in (conditions or {}).items():
        ann[ALB + f"actions.{name}"] = json.dumps({"type": "forward", "forwardConfig": {
            "targetGroups": [{"serviceName": "canary", "servicePort": "80", "weight": 100}]}})
        ann[ALB + f"conditions.{name}"] = json.dumps(cond)
        paths.insert(0, {"path": "/*", "pathType": "ImplementationSpecific", "backend": {
            "service": {"name": name, "port": {"name": "use-annotation"}}}})
    return ingress("web", "root", ann, paths=paths)


def test_alb_forward_action_weights_with_any_key_case() -> None:
    upper = {"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"ServiceName": "canary", "ServicePort": "80", "Weight": 30},
        {"ServiceName": "stable", "ServicePort": "80", "Weight": 70}]}}
    [p] = plans(state(("ingress", alb_ingress(upper))))
    assert p.family == "nginx"
    assert split_of(p) == {("canary", ""): 0.3, ("stable", ""): 0.7}


def test_alb_header_condition_takes_matching_clients_only() -> None:
    action = {"type": "forward", "forwardConfig": {"targetGroups": [
        {"serviceName": "canary", "servicePort": "80", "weight": 0},
        {"serviceName": "stable", "servicePort": "80", "weight": 100}]}}
    cond = [{"field": "http-header", "httpHeaderConfig": {"httpHeaderName": "X-Canary",
                                                          "values": ["be*"]}}]
    [p] = plans(state(("ingress", alb_ingress(action, {"canary-header": cond}))),
                Clients((("x-canary", "beta"),), 0.5))
    assert split_of(p) == {("stable", ""): 1.0}
    assert p.header_share == 0.5 and split_of(p, header=True) == {("canary", ""): 1.0}
    [p] = plans(state(("ingress", alb_ingress(action, {"canary-header": cond}))),
                Clients((("x-canary", "alpha"),), 0.5))
    assert p.header_share == 0.0


# --------------------------------------------------------------------------- SMI, Gateway API


def test_smi_traffic_split_weights_and_root_service_rps() -> None:
    split = {"metadata": {"name": "demo", "namespace": NS}, "spec": {"service": "root", "backends": [
        {"service": "canary", "weight": "250m"}, {"service": "stable", "weight": "750m"}]}}
    s = state(("split", split), ("service", service("root", "v1", {"simulator.rollouts.dev/rps": "7"})))
    [p] = plans(s)
    assert (p.kind, p.family, p.rps) == ("TrafficSplit", "istio", 7.0)
    assert split_of(p) == {("canary", ""): 0.25, ("stable", ""): 0.75}


def httproute(rules: list[JSON]) -> JSON:
    return {"metadata": {"name": "demo", "namespace": NS}, "spec": {"rules": rules}}


def ref(name: str, weight: int | None = None) -> JSON:
    return {"name": name, "port": 80, **({} if weight is None else {"weight": weight})}


def test_httproute_weights_default_1_and_header_rules_first() -> None:
    header_rule = {"name": "canary-header", "matches": [{"path": {"type": "PathPrefix", "value": "/"},
                   "headers": [{"name": "X-Canary", "type": "Exact", "value": "yes"}]}],
                   "backendRefs": [ref("canary")]}
    primary = {"backendRefs": [ref("stable"), ref("canary", 3)]}
    [p] = plans(state(("route", httproute([primary, header_rule]))), Clients((("x-canary", "yes"),), 0.1))
    assert (p.kind, p.family) == ("HTTPRoute", "istio")
    assert split_of(p) == {("stable", ""): 0.25, ("canary", ""): 0.75}
    assert split_of(p, header=True) == {("canary", ""): 1.0} and p.header_share == 0.1


def test_httproute_with_every_weight_zero_answers_500() -> None:
    [p] = plans(state(("route", httproute([{"backendRefs": [ref("stable", 0), ref("canary", 0)]}]))))
    [d] = p.destinations
    assert (d.failure_code, d.groups) == ("500", ())


# --------------------------------------------------------------------------- metrics


def test_nginx_series_names_labels_and_default_buckets() -> None:
    assert NginxMetrics().text() == b""  # no family before the first request
    s = state(("ingress", ingress("web", "stable")), ("ingress", canary_ingress(canary_weight="50")))
    batches = draw_tick(np.random.default_rng(3), plans(s), 20.0)
    nginx, istio = NginxMetrics(), IstioMetrics(per_pod=True)
    nginx.record(batches)
    istio.record(batches)
    assert istio.totals() == {}  # Ingress traffic feeds ingress-nginx's series only
    text = nginx.text().decode()
    # the Go client's names: the counter without prometheus_client's "_total"
    assert "# TYPE nginx_ingress_controller_requests counter" in text
    assert "# TYPE nginx_ingress_controller_request_duration_seconds histogram" in text
    assert "_total" not in text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    samples = fams["nginx_ingress_controller_requests"].samples
    assert len(samples) >= 4
    lines = [ln for ln in text.splitlines() if ln.startswith("nginx_ingress_controller_requests{")]
    assert len(lines) == len(samples)
    assert {frozenset(x.labels) for x in samples} == {frozenset(
        {*NGINX_LABEL_NAMES, "controller_namespace", "controller_class", "controller_pod"})}
    by = Counter({(x.labels["canary"], x.labels["status"]): x.value for x in samples})
    total = sum(by.values())
    canary = by[("shop-canary-80", "500")] + by[("shop-canary-80", "200")]
    assert abs(canary / total - 0.5) < 0.05
    # the canary's pod fails 20 %, the stable's 1 %
    assert abs(by[("shop-canary-80", "500")] / canary - 0.2) < 0.03
    assert abs(by[("", "500")] / (by[("", "500")] + by[("", "200")]) - 0.01) < 0.01
    assert all(x.labels["service"] == "stable" and x.labels["ingress"] == "web" for x in samples)
    hist = fams["nginx_ingress_controller_request_duration_seconds"]
    les = sorted({x.labels["le"] for x in hist.samples if x.name.endswith("_bucket")},
                 key=lambda v: float(v))
    assert [float(v) for v in les[:-1]] == list(NGINX_DURATION_BUCKETS_S) and les[-1] == "+Inf"
    assert 'le="0.005"' in text and 'le="10"' in text  # written as ingress-nginx (Go) writes it
    sums = [x.value for x in hist.samples if x.name.endswith("_sum")]
    counts = [x.value for x in hist.samples if x.name.endswith("_count")]
    assert 0.03 < sum(sums) / sum(counts) < 0.1  # seconds: median 50 ms


def test_cli_header_flags_and_bad_share() -> None:
    from testbed.simulator.__main__ import parse_args

    args = parse_args(["--header", "X-Canary=yes", "--header", "x-user=beta=1", "--header-share", "0.3"])
    assert args.headers == {"X-Canary": "yes", "x-user": "beta=1"} and args.header_share == 0.3
    with pytest.raises(SystemExit):
        parse_args(["--header", "novalue"])
    with pytest.raises(ValueError, match="header share"):
        Clients((("X-Canary", "yes"),), 1.5)


def test_no_header_clients_draw_exactly_as_before() -> None:
    """Header routes configured but no header clients: the same draws as a plan without them
    (seeded runs of the Istio path are unchanged)."""
    s = state(("ingress", ingress("web", "stable")),
              ("ingress", canary_ingress(canary_weight="20", canary_by_header="X-Canary")))
    without = draw_tick(np.random.default_rng(9), plans(s), 5.0)
    with_share_0 = draw_tick(np.random.default_rng(9), plans(s, Clients((("X-Canary", "always"),), 0.0)), 5.0)
    assert [(b.labels, b.count) for b in without] == [(b.labels, b.count) for b in with_share_0]


def test_simulator_step_feeds_each_routers_family() -> None:
    from testbed.simulator import Simulator

    sim = Simulator(api_client=object(), seed=2, rps=200.0)  # type: ignore[arg-type]
    sim.state.ingresses[(NS, "web")] = ingress("web", "stable")
    sim.state.http_routes[(NS, "demo")] = httproute([{"backendRefs": [ref("canary")]}])
    sim.state.services.update(state().services)
    sim.state.pods.update(state().pods)
    sim.step(10)
    assert sum(sim.nginx_metrics.totals().values()) > 0
    names = {dict(zip(sim.metrics.label_names, k, strict=True))["destination_service_name"]
             for k in sim.metrics.totals()}
    assert names == {"canary"}  # the HTTPRoute's traffic; the Ingress's went to ingress-nginx's series
    # per-pod series for the mesh routers, as for a VirtualService (the per-pod judge's input)
    pods = {dict(zip(sim.metrics.label_names, k, strict=True))["pod"] for k in sim.metrics.totals()}
    assert pods == {"p2"}


def test_istio_header_route_first_takes_only_the_header_clients() -> None:
    """A setHeaderRoute step puts a header-matching route before the primary one: clients
    without the header take the primary's weights (they took the header route before, so
    every request went to the canary), those with it the header route."""
    s = state()
    s.virtual_services[(NS, "vs")] = {"metadata": {"name": "vs", "namespace": NS}, "spec": {"http": [
        {"name": "beta", "match": [{"headers": {"x-canary": {"prefix": "be"}}}],
         "route": [{"destination": {"host": "canary"}, "weight": 100}]},
        {"name": "primary", "route": [{"destination": {"host": "stable"}, "weight": 90},
                                      {"destination": {"host": "canary"}, "weight": 10}]}]}}
    [p] = plans(s)
    assert split_of(p) == {("stable", ""): 0.9, ("canary", ""): 0.1} and p.header_share == 0.0
    [p] = plans(s, Clients((("X-Canary", "beta"),), 0.2))
    assert split_of(p, header=True) == {("canary", ""): 1.0} and p.header_share == 0.2
    [p] = plans(s, Clients((("X-Canary", "alpha"),), 0.2))
    assert p.header_share == 0.0

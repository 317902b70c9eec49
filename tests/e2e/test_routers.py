"""A canary through each router beyond Istio, as a user checks it: the weight of each step
in the object the router owns or manages (the NGINX canary Ingress, the ALB actions
annotation, the SMI TrafficSplit, the HTTPRoute backendRefs), promote and abort bringing
all traffic back to one revision, the NGINX canary Ingress deleted when no canary is left,
and a hand edit put back with a Warning Event."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from rollouts.kube.apply import apply
from rollouts.kube.client import SERVICES, Kube
from rollouts.kube.signals import ROLLOUTS, request_action
from rollouts.traffic.owned import HTTP_ROUTES, INGRESSES, traffic_splits
from tests.e2e.kit import (
    VS,
    ControllerProcess,
    eventually,
    phase_is,
    rollout,
    services,
    set_image,
    virtual_service,
)
from tests.e2e.test_router_crds import routers_installed  # noqa: F401  (fixture)

JSON = dict[str, Any]
STEPS: list[JSON] = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]


def _ingress(name: str, service: str) -> JSON:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "demo.example.com", "http": {
                "paths": [{"path": "/", "pathType": "Prefix",
                           "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}}


def _route() -> JSON:
    def ref(name: str, w: int) -> JSON:
        return {"group": "", "kind": "Service", "name": name, "port": 80, "weight": w}
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "demo"},
            "spec": {"parentRefs": [{"name": "gw"}],
                     "rules": [{"backendRefs": [ref("demo-stable", 100), ref("demo-canary", 0)]}]}}


async def _nginx_weight(rkube: Kube, ns: str) -> int | None:
    obj = await rkube.get_or_none(INGRESSES.path(ns, "demo-demo-canary"))
    if obj is None:
        return None
    return int(obj["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"])


async def _alb_weight(rkube: Kube, ns: str) -> int | None:
    obj = await rkube.get(INGRESSES.path(ns, "demo"))
    raw = (obj["metadata"].get("annotations") or {}).get("alb.ingress.kubernetes.io/actions.demo-root")
    if raw is None:
        return None
    groups = json.loads(raw)["forwardConfig"]["targetGroups"]
    return next(int(g["weight"]) for g in groups if g["serviceName"] == "demo-canary")


async def _smi_weight(rkube: Kube, ns: str) -> int | None:
    obj = await rkube.get_or_none(traffic_splits("v1alpha1").path(ns, "demo"))
    if obj is None:
        return None
    return next(int(b["weight"]) for b in obj["spec"]["backends"] if b["service"] == "demo-canary")


async def _gateway_weight(rkube: Kube, ns: str) -> int | None:
    obj = await rkube.get(HTTP_ROUTES.path(ns, "demo"))
    refs = obj["spec"]["rules"][0]["backendRefs"]
    return next(int(r["weight"]) for r in refs if r["name"] == "demo-canary")


Reader = Callable[[Kube, str], Awaitable[int | None]]
ROUTERS: dict[str, tuple[JSON, Callable[[], list[JSON]], Reader]] = {
    "nginx": ({"nginx": {"stableIngress": "demo"}}, lambda: [_ingress("demo", "demo-stable")],
              _nginx_weight),
    "alb": ({"alb": {"ingress": "demo", "servicePort": 80, "rootService": "demo-root"}},
            lambda: [_ingress("demo", "demo-root"),
                     {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "demo-root"},
                      "spec": {"selector": {"app": "demo"}, "ports": [{"port": 80}]}}],
            _alb_weight),
    "smi": ({"smi": {"rootService": "demo", "trafficSplitName": "demo"}},
            lambda: [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "demo"},
                      "spec": {"selector": {"app": "demo"}, "ports": [{"port": 80}]}}],
            _smi_weight),
    "gatewayAPI": ({"gatewayAPI": {"httpRoute": "demo"}}, lambda: [_route()], _gateway_weight),
}


@pytest.mark.parametrize("router", list(ROUTERS))
async def test_weights_follow_the_steps_through_each_router(
        router: str, rkube: Kube, namespace: str, routers_installed: None,  # noqa: F811
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    config, objects, weight = ROUTERS[router]
    start_controller()
    for obj in [*services(), *objects()]:
        await apply(rkube, obj, ns)
    ro = rollout(STEPS)
    ro["spec"]["strategy"]["canary"]["trafficRouting"] = config
    await apply(rkube, ro, ns)
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy Healthy")

    await set_image(rkube, ns, "demo:2")
    await eventually(lambda: _paused_at(rkube, ns, 1), 60, "paused at setWeight 20")
    assert await weight(rkube, ns) == 20
    await request_action(rkube, ns, "demo", "promote", user="e2e")
    await eventually(lambda: _paused_at(rkube, ns, 3), 60, "paused at setWeight 60")
    assert await weight(rkube, ns) == 60

    await request_action(rkube, ns, "demo", "abort", user="e2e")
    await eventually(lambda: _weight_is(weight, rkube, ns, {0, None}), 60, "weight back to 0")
    # the status write follows the traffic write: wait for it (seen racing under load)
    ro = await eventually(lambda: phase_is(rkube, ns, "Degraded"), 30, "Degraded after the abort")
    stable = await rkube.get(SERVICES.path(ns, "demo-stable"))
    assert stable["spec"]["selector"]["rollouts-pod-template-hash"] == ro["status"]["stableRS"]
    if router == "nginx":  # no canary left: the canary Ingress is gone
        await eventually(lambda: _weight_is(weight, rkube, ns, {None}), 30, "canary Ingress deleted")

    await request_action(rkube, ns, "demo", "promote", user="e2e", full=True)
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 90, "promoted in full")
    assert await weight(rkube, ns) in ({None} if router == "nginx" else {0})


async def _paused_at(rkube: Kube, ns: str, idx: int) -> JSON | None:
    ro = await phase_is(rkube, ns, "Paused")
    return ro if ro is not None and ro["status"].get("currentStepIndex") == idx else None


async def _weight_is(weight: Reader, rkube: Kube, ns: str, want: set[int | None]) -> bool:
    return await weight(rkube, ns) in want


async def test_a_hand_edited_canary_ingress_is_put_back_with_an_event(
        rkube: Kube, namespace: str, routers_installed: None,  # noqa: F811
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    start_controller()
    for obj in [*services(), _ingress("demo", "demo-stable")]:
        await apply(rkube, obj, ns)
    ro = rollout(STEPS)
    ro["spec"]["strategy"]["canary"]["trafficRouting"] = {"nginx": {"stableIngress": "demo"}}
    await apply(rkube, ro, ns)
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy Healthy")
    await set_image(rkube, ns, "demo:2")
    await eventually(lambda: _paused_at(rkube, ns, 1), 60, "paused at setWeight 20")
    await rkube.merge_patch(INGRESSES.path(ns, "demo-demo-canary"), {"metadata": {"annotations": {
        "nginx.ingress.kubernetes.io/canary-weight": "90"}}})
    # the next look (a resync, or any change) puts it back
    await request_action(rkube, ns, "demo", "pause", user="e2e")
    await eventually(lambda: _weight_is(_nginx_weight, rkube, ns, {20}), 60, "weight put back")

    async def event() -> JSON | None:
        evs = (await rkube.get_list(f"/api/v1/namespaces/{ns}/events"))["items"]
        return next((e for e in evs if e.get("reason") == "TrafficRoutingRestored"), None)

    ev = await eventually(event, 30, "a TrafficRoutingRestored Event")
    assert ev["type"] == "Warning" and "edited by hand" in ev["message"]


async def _vs_routes(rkube: Kube, ns: str) -> list[str | None]:
    vs = await rkube.get(VS.path(ns, "demo"))
    return [r.get("name") for r in vs["spec"]["http"]]


async def _routes_are(rkube: Kube, ns: str, want: list[str | None]) -> bool:
    return await _vs_routes(rkube, ns) == want


async def test_istio_header_and_mirror_steps_put_managed_routes_first_and_remove_them(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    start_controller()
    for obj in [*services(), virtual_service()]:
        await apply(rkube, obj, ns)
    steps: list[JSON] = [
        {"setWeight": 10},
        {"setHeaderRoute": {"name": "beta", "match": [
            {"headerName": "x-beta", "headerValue": {"exact": "on"}}]}},
        {"setMirrorRoute": {"name": "shadow", "percentage": 25, "match": [
            {"path": {"prefix": "/api"}}]}},
        {"pause": {}},
        {"setHeaderRoute": {"name": "beta"}},  # no match: the route goes
        {"pause": {}}]
    ro = rollout(steps)
    ro["spec"]["strategy"]["canary"]["trafficRouting"]["managedRoutes"] = [
        {"name": "beta"}, {"name": "shadow"}]
    await apply(rkube, ro, ns)
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy Healthy")
    await set_image(rkube, ns, "demo:2")
    await eventually(lambda: _paused_at(rkube, ns, 3), 60, "paused after the route steps")
    vs = await rkube.get(VS.path(ns, "demo"))
    http = vs["spec"]["http"]
    assert [r.get("name") for r in http] == ["beta", "shadow", "primary"]
    assert http[0]["match"] == [{"headers": {"x-beta": {"exact": "on"}}}]
    assert http[0]["route"] == [{"destination": {"host": "demo-canary"}, "weight": 100}]
    assert http[1]["mirror"] == {"host": "demo-canary"}
    assert http[1]["mirrorPercentage"] == {"value": 25}
    assert [d["weight"] for d in http[2]["route"]] == [90, 10]
    await request_action(rkube, ns, "demo", "promote", user="e2e")
    await eventually(lambda: _paused_at(rkube, ns, 5), 60, "header route removed")
    assert await _vs_routes(rkube, ns) == ["shadow", "primary"]
    await request_action(rkube, ns, "demo", "promote", user="e2e")
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "promoted")
    await eventually(lambda: _routes_are(rkube, ns, ["primary"]), 30, "managed routes gone")


async def test_gateway_api_header_step_routes_matching_requests_to_the_canary(
        rkube: Kube, namespace: str, routers_installed: None,  # noqa: F811
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    start_controller()
    for obj in [*services(), _route()]:
        await apply(rkube, obj, ns)
    ro = rollout([{"setWeight": 10}, {"setHeaderRoute": {"name": "beta", "match": [
        {"headerName": "x-beta", "headerValue": {"exact": "on"}}]}}, {"pause": {}}])
    ro["spec"]["strategy"]["canary"]["trafficRouting"] = {
        "gatewayAPI": {"httpRoute": "demo"},
        "managedRoutes": [{"name": "beta"}]}
    await apply(rkube, ro, ns)
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy Healthy")
    await set_image(rkube, ns, "demo:2")
    await eventually(lambda: _paused_at(rkube, ns, 2), 60, "paused after the header step")
    route = await rkube.get(HTTP_ROUTES.path(ns, "demo"))
    rules = route["spec"]["rules"]
    assert rules[0].get("name") == "beta"
    assert [b["name"] for b in rules[0]["backendRefs"]] == ["demo-canary"]
    assert any(m.get("headers") for m in rules[0]["matches"])
    await request_action(rkube, ns, "demo", "abort", user="e2e")

    async def header_rule_gone() -> bool:
        r = await rkube.get(HTTP_ROUTES.path(ns, "demo"))
        return all(rule.get("name") != "beta" for rule in r["spec"]["rules"])

    await eventually(header_rule_gone, 60, "header rule removed after abort")


async def test_removing_a_router_from_the_spec_takes_back_what_it_wrote(
        rkube: Kube, namespace: str, routers_installed: None,  # noqa: F811
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    start_controller()
    for obj in [*services(), virtual_service(), _ingress("demo", "demo-stable")]:
        await apply(rkube, obj, ns)
    ro = rollout(STEPS)
    ro["spec"]["strategy"]["canary"]["trafficRouting"] = {
        "nginx": {"stableIngress": "demo"},
        "istio": {"virtualService": {"name": "demo", "routes": ["primary"]}}}
    await apply(rkube, ro, ns)
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy Healthy")
    await set_image(rkube, ns, "demo:2")
    await eventually(lambda: _paused_at(rkube, ns, 1), 60, "paused at setWeight 20")
    assert await _nginx_weight(rkube, ns) == 20
    vs = await rkube.get(VS.path(ns, "demo"))
    assert [d["weight"] for d in vs["spec"]["http"][0]["route"]] == [80, 20]
    # the user drops the NGINX router mid-canary: its canary Ingress must not keep routing 20 %
    await rkube.json_patch(ROLLOUTS.path(ns, "demo"), [
        {"op": "remove", "path": "/spec/strategy/canary/trafficRouting/nginx"}])
    await eventually(lambda: _weight_is(_nginx_weight, rkube, ns, {None}), 60, "canary Ingress gone")
    vs = await rkube.get(VS.path(ns, "demo"))
    assert [d["weight"] for d in vs["spec"]["http"][0]["route"]] == [80, 20]  # Istio stays
    # and then Istio too: the VirtualService is handed back with all traffic on the stable
    await rkube.json_patch(ROLLOUTS.path(ns, "demo"), [
        {"op": "remove", "path": "/spec/strategy/canary/trafficRouting"}])

    async def vs_on_stable() -> bool:
        v = await rkube.get(VS.path(ns, "demo"))
        return [d["weight"] for d in v["spec"]["http"][0]["route"]] == [100, 0]

    await eventually(vs_on_stable, 60, "VirtualService back on the stable")

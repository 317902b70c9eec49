"""Gateway API router: backendRef weights on HTTPRoute/GRPCRoute/TCPRoute rules, header
and mirror routes as managed rules placed first (literal expected rules), their removal,
hand edits put back, and the router against an in-memory API server."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from rollouts.api.routing import (
    GatewayAPIConfig,
    GatewayRouteRef,
    HeaderMatch,
    HeaderRoute,
    MirrorRoute,
    RouteMatch,
    StringMatch,
)
from rollouts.kube.client import KubeError
from rollouts.traffic.gateway import GatewayAPIRouter, is_managed, plan_route, weight_of
from rollouts.traffic.owned import GRPC_ROUTES, HTTP_ROUTES, TCP_ROUTES, Target
from tests.unit.router_fake import FakeApi, apply_json_patch, cache, meta

NS = "shop"
T = Target(rollout="web", uid="uid-1", stable_service="web-stable", canary_service="web-canary")
MANAGED = ("hdr", "mirror")


def ref(name: str, weight: int, port: int = 80) -> dict[str, Any]:
    return {"group": "", "kind": "Service", "name": name, "port": port, "weight": weight}


def primary(canary: int = 0) -> dict[str, Any]:
    return {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
            "filters": [{"type": "RequestHeaderModifier",
                         "requestHeaderModifier": {"set": [{"name": "x-via", "value": "gw"}]}}],
            "backendRefs": [ref("web-stable", 100 - canary), ref("web-canary", canary)]}


OTHER = {"matches": [{"path": {"type": "PathPrefix", "value": "/docs"}}],
         "backendRefs": [ref("docs", 1)]}


def http_route(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": meta("web"), "spec": {"parentRefs": [{"name": "gw"}], "rules": list(rules)}}


def apply(route: dict[str, Any], kind: str = "http", **kw: Any) -> dict[str, Any]:
    p, errors = plan_route(route, kind, T, managed_routes=MANAGED, **kw)
    assert errors == []
    out = copy.deepcopy(route)
    apply_json_patch(out, p.ops)
    return out


def test_weights_go_on_every_rule_with_the_services_and_nothing_else() -> None:
    stable_only = {"matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                   "backendRefs": [ref("web-stable", 1)]}
    route = http_route(primary(), OTHER, stable_only)
    p, errors = plan_route(route, "http", T, canary_weight=30)
    assert errors == [] and p.put_back == ()
    assert p.ops == [{"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
                     {"op": "replace", "path": "/spec/rules", "value": [primary(30), OTHER, stable_only]}]
    route = http_route(primary(), OTHER)
    assert weight_of(apply(route, canary_weight=30), T) == 30
    assert plan_route(http_route(primary(30), OTHER), "http", T, canary_weight=30)[0].ops == []


def test_max_traffic_weight_scales_the_stable_share() -> None:
    out = apply(http_route(primary()), canary_weight=5, total=1000)
    assert [r["weight"] for r in out["spec"]["rules"][0]["backendRefs"]] == [995, 5]
    assert weight_of(out, T, total=1000) == 5 and weight_of(out, T) is None


@pytest.mark.parametrize("rules, expected", [
    ([OTHER], "HTTPRoute web has no rule with backendRefs to the stable Service web-stable and the "
              "canary Service web-canary (trafficRouting.gatewayAPI.httpRoute)"),
    ([primary(), {"backendRefs": [ref("web-canary", 1)]}],
     "HTTPRoute web spec.rules[1] references the canary Service web-canary without the stable "
     "Service web-stable"),
    ([{"backendRefs": [ref("web-stable", 1)]}],
     "HTTPRoute web has no rule with backendRefs to the stable Service web-stable and the "
     "canary Service web-canary (trafficRouting.gatewayAPI.httpRoute)"),
])
def test_route_errors_name_the_object_and_field(rules: list[dict[str, Any]], expected: str) -> None:
    p, errors = plan_route(http_route(*rules), "http", T, canary_weight=10)
    assert p.ops == [] and errors == [expected]


def test_header_route_is_a_rule_before_the_primary_with_the_header_added() -> None:
    route = http_route(primary(20), OTHER)
    hr = HeaderRoute("hdr", (HeaderMatch("X-Canary", StringMatch(exact="yes")),
                             HeaderMatch("User-Agent", StringMatch(prefix="Mozilla/5"))))
    out = apply(route, canary_weight=20, header_routes=(hr,))
    assert out["spec"]["rules"] == [
        {"name": "hdr",
         "matches": [{"path": {"type": "PathPrefix", "value": "/api"},
                      "headers": [{"name": "X-Canary", "type": "Exact", "value": "yes"},
                                  {"name": "User-Agent", "type": "RegularExpression",
                                   "value": "^Mozilla/5.*"}]}],
         "backendRefs": [{"group": "", "kind": "Service", "name": "web-canary", "port": 80, "weight": 1}],
         "filters": primary()["filters"]},
        primary(20), OTHER]
    # a later weight leaves the header rule alone; clearing the route takes it out
    out = apply(out, canary_weight=40, header_routes=(hr,))
    assert out["spec"]["rules"][0]["name"] == "hdr" and out["spec"]["rules"][1] == primary(40)
    out = apply(out, canary_weight=40, header_routes=(HeaderRoute("hdr"),))
    assert out["spec"]["rules"] == [primary(40), OTHER]


def test_header_routes_skip_routes_without_use_header_routes_and_tcp() -> None:
    hr = HeaderRoute("hdr", (HeaderMatch("X", StringMatch(exact="1")),))
    out = apply(http_route(primary()), canary_weight=0, header_routes=(hr,), use_header_routes=False)
    assert not any(is_managed(r, MANAGED) for r in out["spec"]["rules"])
    tcp = {"metadata": meta("db"), "spec": {"rules": [{"backendRefs": [ref("web-stable", 100),
                                                                       ref("web-canary", 0)]}]}}
    out = apply(tcp, "tcp", canary_weight=10, header_routes=(hr,))
    assert out["spec"]["rules"] == [{"backendRefs": [ref("web-stable", 90), ref("web-canary", 10)]}]


def test_mirror_route_copies_the_backends_and_mirrors_to_the_canary() -> None:
    mr = MirrorRoute("mirror", (RouteMatch(method=StringMatch(exact="GET"),
                                           path=StringMatch(prefix="/api/v2")),), 25)
    hr = HeaderRoute("hdr", (HeaderMatch("X", StringMatch(exact="1")),))
    out = apply(http_route(primary(10)), canary_weight=10, header_routes=(hr,), mirror_routes=(mr,))
    rules = out["spec"]["rules"]
    assert [r.get("name") for r in rules] == ["hdr", "mirror", None]  # managedRoutes order first
    assert rules[1] == {
        "name": "mirror",
        "matches": [{"path": {"type": "PathPrefix", "value": "/api/v2"}, "method": "GET"}],
        "filters": [*primary()["filters"],
                    {"type": "RequestMirror", "requestMirror": {
                        "backendRef": {"group": "", "kind": "Service", "name": "web-canary", "port": 80},
                        "percent": 25}}],
        "backendRefs": [ref("web-stable", 90), ref("web-canary", 10)]}
    # the mirror rule's weights follow the steps (no hand edit), and it is not a weight source
    p, _ = plan_route(out, "http", T, canary_weight=50, header_routes=(hr,), mirror_routes=(mr,),
                      managed_routes=MANAGED)
    assert p.put_back == ()
    assert weight_of(out, T, managed_routes=MANAGED) == 10
    bad = MirrorRoute("mirror", (RouteMatch(method=StringMatch(regex="G.*")),))
    assert plan_route(out, "http", T, canary_weight=0, mirror_routes=(bad,), managed_routes=MANAGED)[1] == [
        "setMirrorRoute mirror: an HTTPRoute matches a method exactly only"]


def test_a_hand_edited_managed_rule_is_put_back_and_said() -> None:
    hr = HeaderRoute("hdr", (HeaderMatch("X", StringMatch(exact="1")),))
    out = apply(http_route(primary()), canary_weight=0, header_routes=(hr,))
    out["spec"]["rules"][0]["backendRefs"][0]["name"] = "web-stable"
    p, errors = plan_route(out, "http", T, canary_weight=0, header_routes=(hr,), managed_routes=MANAGED)
    assert errors == [] and p.put_back == ("hdr",)


def test_grpc_header_route() -> None:
    grpc = {"metadata": meta("rpc"), "spec": {"rules": [{
        "matches": [{"method": {"type": "Exact", "service": "shop.Cart"}}],
        "backendRefs": [ref("web-stable", 100, 9000), ref("web-canary", 0, 9000)]}]}}
    hr = HeaderRoute("hdr", (HeaderMatch("x-canary", StringMatch(regex="y.*")),))
    out = apply(grpc, "grpc", canary_weight=0, header_routes=(hr,))
    assert out["spec"]["rules"][0] == {
        "name": "hdr",
        "matches": [{"method": {"type": "Exact", "service": "shop.Cart"},
                     "headers": [{"name": "x-canary", "type": "RegularExpression", "value": "y.*"}]}],
        "backendRefs": [{"group": "", "kind": "Service", "name": "web-canary", "port": 9000, "weight": 1}]}


# --- the router against an in-memory API server ----------------------------------------------


def routes_api() -> FakeApi:
    grpc = {"metadata": meta("rpc", "gw"), "spec": {"rules": [
        {"backendRefs": [ref("web-stable", 100, 9000), ref("web-canary", 0, 9000)]}]}}
    tcp = {"metadata": meta("db", "gw"), "spec": {"rules": [
        {"backendRefs": [ref("web-stable", 100, 5432), ref("web-canary", 0, 5432)]}]}}
    web = http_route(primary(), OTHER)
    web["metadata"]["namespace"] = "gw"
    return FakeApi({HTTP_ROUTES.path("gw", "web"): web, GRPC_ROUTES.path("gw", "rpc"): grpc,
                    TCP_ROUTES.path("gw", "db"): tcp})


CFG = GatewayAPIConfig(http_routes=(GatewayRouteRef("web", True),),
                       grpc_routes=(GatewayRouteRef("rpc", False),),
                       tcp_routes=(GatewayRouteRef("db"),), namespace="gw")


async def test_router_sets_weights_everywhere_and_removal_returns_to_stable() -> None:
    api = routes_api()
    router = GatewayAPIRouter(cache(api), CFG, managed_routes=MANAGED)
    assert await router.check(NS, T) == []
    assert await router.current_weight(NS, T) == 0
    hr = HeaderRoute("hdr", (HeaderMatch("X", StringMatch(exact="1")),))
    assert await router.apply(NS, T, canary_weight=25, header_routes=(hr,)) == []
    assert await GatewayAPIRouter(cache(api), CFG, managed_routes=MANAGED).current_weight(NS, T) == 25
    web = api.objects[HTTP_ROUTES.path("gw", "web")]["spec"]["rules"]
    assert [r.get("name") for r in web] == ["hdr", None, None]
    rpc = api.objects[GRPC_ROUTES.path("gw", "rpc")]["spec"]["rules"]
    assert len(rpc) == 1  # useHeaderRoutes false: weights only
    n = len(api.writes)
    await GatewayAPIRouter(cache(api), CFG, managed_routes=MANAGED).apply(
        NS, T, canary_weight=25, header_routes=(hr,))
    assert len(api.writes) == n  # idempotent

    web[0]["matches"] = []  # a hand edit of the managed rule
    notes = await GatewayAPIRouter(cache(api), CFG, managed_routes=MANAGED).apply(
        NS, T, canary_weight=25, header_routes=(hr,))
    assert notes == ["managed route hdr in HTTPRoute web was edited by hand; put back"]

    written = await GatewayAPIRouter(cache(api), CFG, managed_routes=MANAGED).remove(NS, T)
    assert written == ["HTTPRoute web", "GRPCRoute rpc", "TCPRoute db"]
    assert api.objects[HTTP_ROUTES.path("gw", "web")]["spec"]["rules"] == [primary(0), OTHER]
    assert await GatewayAPIRouter(cache(api), CFG, managed_routes=MANAGED).current_weight(NS, T) == 0


async def test_router_check_names_missing_routes_and_bad_input_writes_nothing() -> None:
    api = routes_api()
    del api.objects[TCP_ROUTES.path("gw", "db")]
    router = GatewayAPIRouter(cache(api), CFG, managed_routes=MANAGED)
    assert await router.check(NS, T) == ["TCPRoute db (trafficRouting.gatewayAPI.tcpRoute) not found"]
    bad = MirrorRoute("mirror", (RouteMatch(method=StringMatch(prefix="G")),))
    with pytest.raises(KubeError):
        await GatewayAPIRouter(cache(api), CFG, managed_routes=MANAGED).apply(
            NS, T, canary_weight=10, mirror_routes=(bad,))
    assert api.writes == []


async def test_a_racing_writer_is_retried_on_the_fresh_route() -> None:
    api = routes_api()
    raced: list[str] = []

    def race(a: FakeApi, p: str) -> None:
        if p == HTTP_ROUTES.path("gw", "web") and not raced:
            raced.append(p)
            a.objects[p]["spec"]["rules"].append({"backendRefs": [ref("late", 1)]})
            a.objects[p]["metadata"]["resourceVersion"] = "555"

    api.patch_hook = race
    await GatewayAPIRouter(cache(api), CFG, managed_routes=MANAGED).apply(NS, T, canary_weight=5)
    rules = api.objects[HTTP_ROUTES.path("gw", "web")]["spec"]["rules"]
    assert raced and rules == [primary(5), OTHER, {"backendRefs": [ref("late", 1)]}]

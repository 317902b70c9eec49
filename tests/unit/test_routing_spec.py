"""Parsing the routers beyond Istio and the header/mirror step payloads: typed values, and
errors that name the field a user must fix (nothing half-parsed)."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.api.routing import (
    ALBConfig,
    GatewayAPIConfig,
    GatewayRouteRef,
    HeaderMatch,
    HeaderRoute,
    MirrorRoute,
    NginxConfig,
    RouteMatch,
    SMIConfig,
    Stickiness,
    StringMatch,
    parse_header_route,
    parse_mirror_route,
    parse_routers,
)

P = "spec.strategy.canary.trafficRouting"


def routers(tr: dict[str, Any]) -> tuple[Any, list[str]]:
    errors: list[str] = []
    return parse_routers(tr, errors, path=P), errors


def test_every_router_parses_with_argo_field_names_and_defaults() -> None:
    cfg, errors = routers({
        "nginx": {"stableIngress": "web", "additionalIngressAnnotations": {"canary-by-cookie": "c"},
                  "canaryIngressAnnotations": {"x/y": "z"}},
        "alb": {"ingresses": ["a", "b"], "servicePort": 443, "rootService": "root",
                "stickinessConfig": {"enabled": True, "durationSeconds": 3600}},
        "smi": {"trafficSplitName": "ts"},
        "gatewayAPI": {"httpRoute": "web", "grpcRoutes": [{"name": "g", "useHeaderRoutes": True}],
                       "tcpRoutes": [{"name": "t"}], "namespace": "gw"},
        "managedRoutes": [{"name": "h1"}, {"name": "m1"}],
        "maxTrafficWeight": 1000,
    })
    assert errors == []
    assert cfg.nginx == NginxConfig(("web",), "nginx.ingress.kubernetes.io",
                                    (("canary-by-cookie", "c"),), (("x/y", "z"),))
    assert cfg.alb == ALBConfig(("a", "b"), 443, "root", "alb.ingress.kubernetes.io",
                                Stickiness(True, 3600))
    assert cfg.smi == SMIConfig(None, "ts")
    assert cfg.gateway_api == GatewayAPIConfig(
        http_routes=(GatewayRouteRef("web", True),), grpc_routes=(GatewayRouteRef("g", True),),
        tcp_routes=(GatewayRouteRef("t", False),), namespace="gw")
    assert cfg.managed_routes == ("h1", "m1") and cfg.max_traffic_weight == 1000
    assert cfg.any


def test_no_router_beyond_istio_parses_to_nothing() -> None:
    cfg, errors = routers({"istio": {"virtualService": {"name": "x"}}})
    assert errors == [] and not cfg.any


@pytest.mark.parametrize("tr, expected", [
    ({"nginx": {}}, f"{P}.nginx.stableIngress is required (or {P}.nginx.stableIngresses)"),
    ({"nginx": {"stableIngress": "a", "stableIngresses": ["b"]}},
     f"{P}.nginx: set stableIngress or stableIngresses, not both"),
    ({"nginx": {"stableIngresses": ["a", "a"]}}, f"{P}.nginx.stableIngresses names an object twice"),
    ({"nginx": {"stableIngress": "a", "annotationPrefix": "a/b"}},
     f"{P}.nginx.annotationPrefix must be a DNS prefix without '/', got 'a/b'"),
    ({"nginx": {"stableIngress": "a", "canaryIngressAnnotations": {"k": 1}}},
     f"{P}.nginx.canaryIngressAnnotations must map strings to strings"),
    ({"alb": {"ingress": "a"}}, f"{P}.alb.servicePort is required"),
    ({"alb": {"ingress": "a", "servicePort": 0}}, f"{P}.alb.servicePort must be an integer 1..65535, got 0"),
    ({"alb": {"ingress": "a", "servicePort": 80, "stickinessConfig": {"enabled": True}}},
     f"{P}.alb.stickinessConfig.durationSeconds is required when enabled (1..604800)"),
    ({"alb": {"ingress": "a", "servicePort": 80,
              "stickinessConfig": {"enabled": True, "durationSeconds": 604801}}},
     f"{P}.alb.stickinessConfig.durationSeconds must be an integer 1..604800, got 604801"),
    ({"smi": {"rootService": 3}}, f"{P}.smi.rootService must be a string, got 3"),
    ({"smi": "x"}, f"{P}.smi must be an object, got str"),
    ({"gatewayAPI": {}}, f"{P}.gatewayAPI names no route: set httpRoute(s), grpcRoute(s) or tcpRoute(s)"),
    ({"gatewayAPI": {"httpRoutes": [{"useHeaderRoutes": True}]}},
     f"{P}.gatewayAPI.httpRoutes[0].name is required"),
    ({"gatewayAPI": {"httpRoute": "a", "httpRoutes": [{"name": "b"}]}},
     f"{P}.gatewayAPI: set httpRoute or httpRoutes, not both"),
    ({"gatewayAPI": {"tcpRoutes": [{"name": "a"}, {"name": "a"}]}},
     f"{P}.gatewayAPI.tcpRoutes[1].name 'a' is listed twice"),
    ({"managedRoutes": ["h"]}, f"{P}.managedRoutes[0].name is required"),
    ({"maxTrafficWeight": 0}, f"{P}.maxTrafficWeight must be an integer 1..2147483647, got 0"),
    ({"nginx": {"stableIngresses": ["a", "web"]}, "alb": {"ingress": "web", "servicePort": 80}},
     f"{P}: nginx and alb both name Ingress web; one router per Ingress"),
])
def test_bad_router_config_names_the_field(tr: dict[str, Any], expected: str) -> None:
    cfg, errors = routers(tr)
    assert expected in errors, errors
    key = next(iter(tr))
    attr = {"gatewayAPI": "gateway_api"}.get(key, key)
    if hasattr(cfg, attr) and key not in ("managedRoutes", "maxTrafficWeight"):
        assert getattr(cfg, attr) is None  # nothing half-parsed is ever used


def test_header_route_step() -> None:
    errors: list[str] = []
    r = parse_header_route({"name": "h", "match": [
        {"headerName": "X-Canary", "headerValue": {"exact": "yes"}},
        {"headerName": "User-Agent", "headerValue": {"regex": ".*Android.*"}}]},
        errors, path="spec.strategy.canary.steps[1].setHeaderRoute", managed_routes=("h",))
    assert errors == []
    assert r == HeaderRoute("h", (HeaderMatch("X-Canary", StringMatch(exact="yes")),
                                  HeaderMatch("User-Agent", StringMatch(regex=".*Android.*"))))
    # no match: the step removes the route
    assert parse_header_route({"name": "h"}, errors, path="p", managed_routes=("h",)) == HeaderRoute("h")


@pytest.mark.parametrize("raw, expected", [
    ({"name": "x"}, "p.name 'x' must be listed in trafficRouting.managedRoutes"),
    ({"match": []}, "p.name is required"),
    ({"name": "h", "match": [{"headerValue": {"exact": "a"}}]}, "p.match[0].headerName is required"),
    ({"name": "h", "match": [{"headerName": "a"}]},
     "p.match[0].headerValue is required (one of exact, prefix, regex)"),
    ({"name": "h", "match": [{"headerName": "a", "headerValue": {"exact": "a", "prefix": "b"}}]},
     "p.match[0].headerValue must set exactly one of exact, prefix, regex"),
])
def test_bad_header_route_names_the_field(raw: dict[str, Any], expected: str) -> None:
    errors: list[str] = []
    assert parse_header_route(raw, errors, path="p", managed_routes=("h",)) is None
    assert expected in errors, errors


def test_mirror_route_step() -> None:
    errors: list[str] = []
    r = parse_mirror_route({"name": "m", "percentage": 35, "match": [
        {"method": {"exact": "GET"}, "path": {"prefix": "/api"},
         "headers": {"x-b": {"exact": "1"}, "x-a": {"regex": "a+"}}}]},
        errors, path="p", managed_routes=("m",))
    assert errors == []
    assert r == MirrorRoute("m", (RouteMatch(StringMatch(exact="GET"), StringMatch(prefix="/api"),
                                             (("x-a", StringMatch(regex="a+")),
                                              ("x-b", StringMatch(exact="1")))),), 35)
    assert parse_mirror_route({"name": "m"}, errors, path="p", managed_routes=("m",)) == MirrorRoute("m")
    assert parse_mirror_route({"name": "m", "percentage": 101}, errors, path="p",
                              managed_routes=("m",)) is None
    assert errors == ["p.percentage must be an integer 0..100, got 101"]
    errors.clear()
    assert parse_mirror_route({"name": "m", "match": [{}]}, errors, path="p", managed_routes=("m",)) is None
    assert errors == ["p.match[0] must match a method, path or headers"]

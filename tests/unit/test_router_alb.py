"""AWS ALB router: the action and condition annotations as literal JSON in the format the
AWS Load Balancer Controller documents, the rule rewritten to read the action, header
route paths, and the router against an in-memory API server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rollouts.api.routing import ALBConfig, HeaderMatch, HeaderRoute, Stickiness, StringMatch
from rollouts.kube.client import KubeError
from rollouts.traffic.alb import (
    MANAGED,
    ALBRouter,
    forward_action,
    header_values,
    plan_ingress,
    weight_of,
)
from rollouts.traffic.owned import INGRESSES, Target
from tests.unit.router_fake import FakeApi, apply_json_patch, cache, meta

NS = "shop"
T = Target(rollout="web", uid="uid-1", stable_service="web-stable", canary_service="web-canary")
CFG = ALBConfig(("web",), 80, root_service="web-root")
A = "alb.ingress.kubernetes.io"


def path(svc: str, port: dict[str, Any], p: str = "/") -> dict[str, Any]:
    return {"path": p, "pathType": "Prefix", "backend": {"service": {"name": svc, "port": port}}}


def ingress() -> dict[str, Any]:
    return {"metadata": meta("web", annotations={f"{A}/scheme": "internet-facing"}),
            "spec": {"ingressClassName": "alb", "rules": [
                {"host": "web.example.com", "http": {"paths": [path("web-root", {"number": 80}),
                                                               path("docs", {"number": 80}, "/docs")]}}]}}


def test_forward_action_is_the_documented_json() -> None:
    # The load balancer controller's documented forward action: type, forwardConfig,
    # targetGroups of serviceName / servicePort (a string) / weight.
    assert forward_action(CFG, T, 25) == (
        '{"type":"forward","forwardConfig":{"targetGroups":['
        '{"serviceName":"web-canary","servicePort":"80","weight":25},'
        '{"serviceName":"web-stable","servicePort":"80","weight":75}]}}')
    sticky = ALBConfig(("web",), 443, stickiness=Stickiness(True, 3600))
    assert forward_action(sticky, T, 0) == (
        '{"type":"forward","forwardConfig":{"targetGroups":['
        '{"serviceName":"web-canary","servicePort":"443","weight":0},'
        '{"serviceName":"web-stable","servicePort":"443","weight":100}],'
        '"targetGroupStickinessConfig":{"enabled":true,"durationSeconds":3600}}}')
    # stickiness disabled is not written (Argo writes it only when enabled)
    assert "Stickiness" not in forward_action(ALBConfig(("w",), 80, stickiness=Stickiness(False, 0)), T, 1)


def test_header_condition_is_the_documented_json() -> None:
    route = HeaderRoute("h", (HeaderMatch("X-Canary", StringMatch(exact="yes")),
                              HeaderMatch("X-Canary", StringMatch(prefix="beta")),
                              HeaderMatch("X-Team", StringMatch(exact="shop"))))
    assert header_values(route) == (
        '[{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"X-Canary",'
        '"values":["yes","beta*"]}},'
        '{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"X-Team","values":["shop"]}}]', [])
    bad = HeaderRoute("h", (HeaderMatch("X", StringMatch(regex="a|b")),))
    assert header_values(bad)[1] == ["setHeaderRoute h: the ALB matches header values exactly or "
                                     "with wildcards, not by regex (X)"]


def test_plan_writes_the_action_the_managed_record_and_the_use_annotation_port() -> None:
    ing = ingress()
    ops, errors = plan_ingress(ing, CFG, T, canary_weight=10)
    assert errors == []
    assert ops == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "add", "path": f"/metadata/annotations/{A}~1actions.web-root",
         "value": forward_action(CFG, T, 10)},
        {"op": "add", "path": "/metadata/annotations/rollouts.dev~1managed-alb-annotations",
         "value": '{"web":["alb.ingress.kubernetes.io/actions.web-root"]}'},
        {"op": "add", "path": "/spec/rules/0/http/paths/0/backend/service/port",
         "value": {"name": "use-annotation"}},
    ]
    apply_json_patch(ing, ops)
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"] == {
        "name": "web-root", "port": {"name": "use-annotation"}}
    assert ing["spec"]["rules"][0]["http"]["paths"][1]["backend"]["service"]["port"] == {"number": 80}
    assert ing["metadata"]["annotations"][f"{A}/scheme"] == "internet-facing"
    assert plan_ingress(ing, CFG, T, canary_weight=10) == ([], [])  # nothing more to do
    assert weight_of(ing, CFG, T) == 10


def test_without_root_service_the_stable_service_carries_the_action() -> None:
    ing = ingress()
    ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "web-stable"
    cfg = ALBConfig(("web",), 80)
    ops, _ = plan_ingress(ing, cfg, T, canary_weight=30)
    assert ops[1]["path"] == f"/metadata/annotations/{A}~1actions.web-stable"


def test_an_ingress_without_the_root_service_is_an_error_naming_it() -> None:
    ops, errors = plan_ingress(ingress(), ALBConfig(("web",), 80, root_service="nope"), T,
                               canary_weight=10)
    assert ops == []
    assert errors == ["Ingress web (trafficRouting.alb.ingress) has no rule whose backend is "
                      "Service nope (rootService; spec.rules[].http.paths[].backend.service.name)"]


def test_header_route_adds_action_condition_and_first_path_and_removal_takes_them_out() -> None:
    ing = ingress()
    route = HeaderRoute("canary-hdr", (HeaderMatch("X-Canary", StringMatch(exact="yes")),))
    ops, errors = plan_ingress(ing, CFG, T, canary_weight=0, header_routes=(route,),
                               managed_routes=("canary-hdr",))
    assert errors == []
    apply_json_patch(ing, ops)
    ann = ing["metadata"]["annotations"]
    assert ann[f"{A}/actions.canary-hdr"] == (
        '{"type":"forward","forwardConfig":{"targetGroups":['
        '{"serviceName":"web-canary","servicePort":"80","weight":100}]}}')
    assert ann[f"{A}/conditions.canary-hdr"] == (
        '[{"field":"http-header","httpHeaderConfig":{"httpHeaderName":"X-Canary","values":["yes"]}}]')
    assert json.loads(ann[MANAGED]) == {"web": [f"{A}/actions.web-root", f"{A}/actions.canary-hdr",
                                                f"{A}/conditions.canary-hdr"]}
    assert ing["spec"]["rules"][0]["http"]["paths"][0] == {
        "path": "/*", "pathType": "ImplementationSpecific",
        "backend": {"service": {"name": "canary-hdr", "port": {"name": "use-annotation"}}}}
    # the step clears it (or promotion): annotations, record and path go
    ops, _ = plan_ingress(ing, CFG, T, canary_weight=0, managed_routes=("canary-hdr",))
    apply_json_patch(ing, ops)
    ann = ing["metadata"]["annotations"]
    assert not any("canary-hdr" in k for k in ann)
    assert json.loads(ann[MANAGED]) == {"web": [f"{A}/actions.web-root"]}
    assert [p["backend"]["service"]["name"] for p in ing["spec"]["rules"][0]["http"]["paths"]] == [
        "web-root", "docs"]


def test_weight_is_read_from_an_argo_written_action_too() -> None:
    ing = ingress()
    ing["metadata"]["annotations"][f"{A}/actions.web-root"] = json.dumps({
        "Type": "forward", "ForwardConfig": {"TargetGroups": [
            {"ServiceName": "web-canary", "ServicePort": "80", "Weight": 40},
            {"ServiceName": "web-stable", "ServicePort": "80", "Weight": 60}]}})
    assert weight_of(ing, CFG, T) == 40
    ing["metadata"]["annotations"][f"{A}/actions.web-root"] = "{not json"
    assert weight_of(ing, CFG, T) is None
    assert weight_of(None, CFG, T) is None


async def test_router_sets_weights_on_every_ingress_and_remove_returns_to_stable() -> None:
    other = ingress()
    other["metadata"] = meta("api")
    api = FakeApi({INGRESSES.path(NS, "web"): ingress(), INGRESSES.path(NS, "api"): other})
    cfg = ALBConfig(("web", "api"), 80, root_service="web-root")
    router = ALBRouter(cache(api), cfg)
    assert await router.check(NS, T) == []
    assert await router.current_weight(NS, T) is None  # no action yet: unknown, never 0
    await router.apply(NS, T, canary_weight=20)
    assert await ALBRouter(cache(api), cfg).current_weight(NS, T) == 20
    n = len(api.writes)
    await ALBRouter(cache(api), cfg).apply(NS, T, canary_weight=20)
    assert len(api.writes) == n
    assert await ALBRouter(cache(api), cfg).remove(NS, T) == ["web", "api"]
    assert await ALBRouter(cache(api), cfg).current_weight(NS, T) == 0


async def test_router_check_names_a_missing_ingress_and_writes_nothing_on_bad_input() -> None:
    api = FakeApi({INGRESSES.path(NS, "web"): ingress()})
    router = ALBRouter(cache(api), ALBConfig(("web", "gone"), 80, root_service="web-root"))
    assert await router.check(NS, T) == ["Ingress gone (trafficRouting.alb.ingress) not found"]
    bad = HeaderRoute("h", (HeaderMatch("X", StringMatch(regex="a|b")),))
    with pytest.raises(KubeError):
        await ALBRouter(cache(api), CFG).apply(NS, T, canary_weight=5, header_routes=(bad,))
    assert api.writes == []

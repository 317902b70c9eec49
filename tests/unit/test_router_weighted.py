"""The routers beyond Istio behind one interface: built from a parsed ``trafficRouting``,
each carries a step's weight, reads it back, and after ``remove`` sends everything to
stable, through the same four calls the reconciler makes."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.api.routing import RoutersConfig, parse_routers
from rollouts.kube.client import SERVICES
from rollouts.traffic import weighted
from rollouts.traffic.owned import HTTP_ROUTES, INGRESSES, Target
from tests.unit.router_fake import FakeApi, cache, meta

NS = "shop"
T = Target(rollout="web", uid="uid-1", stable_service="web-stable", canary_service="web-canary")


def cfg(tr: dict[str, Any]) -> RoutersConfig:
    errors: list[str] = []
    c = parse_routers(tr, errors, path="trafficRouting")
    assert errors == []
    return c


def objects() -> dict[str, Any]:
    def ingress(name: str, svc: str) -> dict[str, Any]:
        return {"metadata": meta(name), "spec": {"rules": [{"http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": svc, "port": {"number": 80}}}}]}}]}}

    return {
        INGRESSES.path(NS, "web"): ingress("web", "web-stable"),
        INGRESSES.path(NS, "web-alb"): ingress("web-alb", "web-stable"),
        SERVICES.path(NS, "web-stable"): {"metadata": meta("web-stable"), "spec": {}},
        HTTP_ROUTES.path(NS, "web"): {"metadata": meta("web"), "spec": {"rules": [{"backendRefs": [
            {"group": "", "kind": "Service", "name": "web-stable", "port": 80, "weight": 100},
            {"group": "", "kind": "Service", "name": "web-canary", "port": 80, "weight": 0}]}]}},
    }


ALL = {"nginx": {"stableIngress": "web"}, "alb": {"ingress": "web-alb", "servicePort": 80},
       "smi": {}, "gatewayAPI": {"httpRoute": "web"}}


@pytest.mark.parametrize("key", list(ALL))
async def test_every_router_follows_the_steps_and_returns_to_stable(key: str) -> None:
    api = FakeApi(objects())
    routers = weighted.build(cache(api), cfg({key: ALL[key]}))
    assert [k for k, _ in routers] == [key]
    (_, router), = routers
    assert await router.check(NS, T) == []
    for w in (10, 50, 100):
        assert await router.apply(NS, T, canary_weight=w) == []
        (_, fresh), = weighted.build(cache(api), cfg({key: ALL[key]}))
        assert await fresh.current_weight(NS, T) == w
    (_, fresh), = weighted.build(cache(api), cfg({key: ALL[key]}))
    assert await fresh.remove(NS, T) != []
    (_, fresh), = weighted.build(cache(api), cfg({key: ALL[key]}))
    # gone (NGINX: no canary Ingress is 0; SMI: no TrafficSplit is unknown) or back at 0
    assert await fresh.current_weight(NS, T) in ((None,) if key == "smi" else (0,))


def test_several_routers_on_one_rollout_and_what_they_express() -> None:
    c = cfg({**ALL, "managedRoutes": [{"name": "h"}]})
    assert [k for k, _ in weighted.build(cache(FakeApi()), c)] == ["nginx", "alb", "smi", "gatewayAPI"]
    assert weighted.support(c) == (True, True)
    assert weighted.support(cfg({"smi": {}})) == (False, False)
    assert weighted.support(cfg({"nginx": {"stableIngress": "a"}})) == (True, False)

"""setHeaderRoute / setMirrorRoute: which routes are active after which steps, what the
decision carries, and the VirtualService layout Istio gets (Argo's: managed routes first,
in managedRoutes order)."""

from __future__ import annotations

import copy
from typing import Any

from rollouts.api.spec import parse_spec
from rollouts.controller.decide import SetTraffic
from rollouts.controller.managed_routes import active_routes
from rollouts.traffic.istio import managed_http
from tests.unit.test_decide import Cluster, h, rollout_spec

MANAGED = [{"name": "hdr"}, {"name": "mirror"}]
HDR = {"setHeaderRoute": {"name": "hdr", "match": [
    {"headerName": "x-canary", "headerValue": {"exact": "yes"}}]}}
MIRROR = {"setMirrorRoute": {"name": "mirror", "percentage": 30, "match": [
    {"method": {"exact": "GET"}, "path": {"prefix": "/api"}}]}}


def spec_with(steps: list[Any]) -> dict[str, Any]:
    s = rollout_spec(steps=steps)
    s["strategy"]["canary"]["trafficRouting"]["managedRoutes"] = copy.deepcopy(MANAGED)
    return s


def test_routes_stay_until_a_step_of_the_same_name_removes_them() -> None:
    steps = [{"setWeight": 10}, HDR, MIRROR, {"pause": {}},
             {"setHeaderRoute": {"name": "hdr"}}, {"pause": {}}]
    spec, errors = parse_spec(spec_with(steps))
    assert spec is not None, errors
    s = spec.canary_strategy.steps
    assert active_routes(s, 1) == ((), ())
    headers, mirrors = active_routes(s, 3)
    assert [r.name for r in headers] == ["hdr"] and [r.name for r in mirrors] == ["mirror"]
    headers, mirrors = active_routes(s, 5)
    assert headers == () and [r.name for r in mirrors] == ["mirror"]


def test_a_route_step_needs_a_router_that_can_express_it_and_a_managed_name() -> None:
    bad = spec_with([HDR])
    bad["strategy"]["canary"]["trafficRouting"]["managedRoutes"] = [{"name": "other"}]
    _, errors = parse_spec(bad)
    assert any("setHeaderRoute" in e and "managedRoutes" in e for e in errors), errors
    smi = rollout_spec(steps=[MIRROR])
    smi["strategy"]["canary"]["trafficRouting"] = {"smi": {"rootService": "shop"},
                                                   "managedRoutes": [{"name": "mirror"}]}
    _, errors = parse_spec(smi)
    assert any("setMirrorRoute needs a traffic router that can express it" in e for e in errors)


def test_the_decision_carries_the_routes_while_the_canary_runs_and_drops_them_after() -> None:
    c = Cluster(spec_with([{"setWeight": 10}, HDR, MIRROR, {"pause": {}}]))
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    c.run_until(lambda: c.status.get("phase") == "Paused")
    t = c.traffic
    assert t is not None and t.canary_weight == 10
    assert [r.name for r in t.header_routes] == ["hdr"]
    assert [r.name for r in t.mirror_routes] == ["mirror"]
    c.record("abort")
    c.run_until(lambda: c.canary_weight() == 0)
    assert c.traffic == SetTraffic(v1, v1, 0)  # aborted: no routes left
    c.record("retry")
    c.run_until(lambda: c.status.get("phase") == "Paused")
    c.record("promote")
    c.run_until(lambda: c.status.get("phase") == "Healthy")
    assert c.traffic == SetTraffic(h("shop:2"), h("shop:2"), 0)


def _vs() -> dict[str, Any]:
    return {"metadata": {"name": "shop", "resourceVersion": "7"},
            "spec": {"hosts": ["shop"], "http": [{"name": "primary", "route": [
                {"destination": {"host": "shop-stable"}, "weight": 80},
                {"destination": {"host": "shop-canary"}, "weight": 20}]}]}}


def test_istio_gets_the_managed_routes_first_in_managed_order() -> None:
    spec, errors = parse_spec(spec_with([HDR, MIRROR]))
    assert spec is not None, errors
    ref = spec.canary_strategy.istio.virtual_services[0]  # type: ignore[union-attr]
    headers, mirrors = active_routes(spec.canary_strategy.steps, 2)
    new, errs = managed_http(_vs(), spec, "ns", ref, header_routes=headers, mirror_routes=mirrors)
    assert errs == [] and new is not None
    assert [r["name"] for r in new] == ["hdr", "mirror", "primary"]
    assert new[0] == {"name": "hdr", "match": [{"headers": {"x-canary": {"exact": "yes"}}}],
                      "route": [{"destination": {"host": "shop-canary"}, "weight": 100}]}
    assert new[1]["match"] == [{"method": {"exact": "GET"}, "uri": {"prefix": "/api"}}]
    assert new[1]["mirror"] == {"host": "shop-canary"}
    assert new[1]["mirrorPercentage"] == {"value": 30.0}
    assert new[1]["route"] == _vs()["spec"]["http"][0]["route"]  # its matches keep the weights
    # applied again: nothing to write; with no routes active: the managed ones go
    vs = _vs()
    vs["spec"]["http"] = new
    assert managed_http(vs, spec, "ns", ref, header_routes=headers, mirror_routes=mirrors) == (None, [])
    gone, _ = managed_http(vs, spec, "ns", ref, header_routes=(), mirror_routes=())
    assert gone == _vs()["spec"]["http"]


def test_a_changed_traffic_routing_takes_the_old_routers_writes_back_first() -> None:
    from rollouts.controller.decide import RemoveRouting
    c = Cluster(rollout_spec(steps=[{"setWeight": 20}, {"pause": {}}]))
    c.deploy_stable()
    c.set_image("shop:2")
    c.run_until(lambda: c.status.get("phase") == "Paused")
    old = copy.deepcopy(c.spec["strategy"]["canary"]["trafficRouting"])
    assert c.status["trafficRouting"] == old
    assert not any(isinstance(a, RemoveRouting) for a in c.last.actions)  # type: ignore[union-attr]
    c.edit(lambda s: s["strategy"]["canary"].pop("trafficRouting"))  # to a basic canary
    d = c.reconcile()
    removes = [i for i, a in enumerate(d.actions) if isinstance(a, RemoveRouting)]
    traffic = [i for i, a in enumerate(d.actions) if isinstance(a, SetTraffic)]
    assert removes and removes[0] < traffic[0]
    assert d.actions[removes[0]] == RemoveRouting(previous=old, current=None)
    assert "trafficRouting" not in c.status
    c.reconcile()
    assert not any(isinstance(a, RemoveRouting) for a in c.last.actions)  # type: ignore[union-attr]

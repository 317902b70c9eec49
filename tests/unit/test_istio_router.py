"""Istio routing: which routes are managed (http, tls, tcp), the patches, and the order in
which the router moves selectors and weights.

Route planning is pure. The write order and the retries are checked against an in-memory
API server double that records every write (with the state of the objects at that moment),
which is what a user's traffic would have followed.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from rollouts.api.spec import RolloutSpec, parse_spec
from rollouts.kube.client import DESTINATION_RULES, SERVICES, VIRTUAL_SERVICES, KubeError
from rollouts.traffic.istio import plan_routes, subset_patch, weight_patch
from rollouts.traffic.router import TrafficRouter

NS = "shop"
HASH = "rollouts-pod-template-hash"


def spec(subsets: bool = False, **vs_ref: Any) -> RolloutSpec:
    istio: dict[str, Any] = {"virtualService": {"name": "shop", **vs_ref}}
    canary: dict[str, Any] = {"steps": [], "trafficRouting": {"istio": istio}}
    if subsets:
        istio["destinationRule"] = {"name": "shop", "canarySubsetName": "canary",
                                    "stableSubsetName": "stable"}
    else:
        canary.update(canaryService="shop-canary", stableService="shop-stable")
    s, errors = parse_spec({"replicas": 2, "selector": {"matchLabels": {"app": "shop"}},
                            "template": {"metadata": {"labels": {"app": "shop"}},
                                         "spec": {"containers": [{"name": "a", "image": "a"}]}},
                            "strategy": {"canary": canary}})
    assert s is not None, errors
    return s


def dests(canary: int, subsets: bool = False) -> list[dict[str, Any]]:
    if subsets:
        return [{"destination": {"host": "shop", "subset": "stable"}, "weight": 100 - canary},
                {"destination": {"host": "shop", "subset": "canary"}, "weight": canary}]
    return [{"destination": {"host": "shop-stable"}, "weight": 100 - canary},
            {"destination": {"host": "shop-canary"}, "weight": canary}]


def vs(subsets: bool = False, **sections: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": "shop", "resourceVersion": "1"},
            "spec": {"hosts": ["shop"], **sections}}


def tls(port: int, *hosts: str, canary: int = 0, subsets: bool = False) -> dict[str, Any]:
    return {"match": [{"port": port, "sniHosts": list(hosts)}], "route": dests(canary, subsets)}


def tcp(port: int, canary: int = 0) -> dict[str, Any]:
    return {"match": [{"port": port}], "route": dests(canary)}


# --- tls and tcp routes (Argo's tlsRoutes / tcpRoutes) ---------------------------------


def test_tls_and_tcp_routes_are_found_by_port_and_sni_hosts_and_shifted_like_http() -> None:
    s = spec(routes=["primary"], tlsRoutes=[{"port": 443, "sniHosts": ["shop.example.com"]}],
             tcpRoutes=[{"port": 3306}])
    v = vs(http=[{"name": "primary", "route": dests(0)}],
           tls=[tls(443, "other.example.com"), tls(443, "shop.example.com")],
           tcp=[tcp(5432), tcp(3306)])
    plans, errors = plan_routes(v, s, NS, s.canary.istio.virtual_services[0])
    assert errors == []
    assert [(p.kind, p.index) for p in plans] == [("http", 0), ("tls", 1), ("tcp", 1)]
    ops = weight_patch(v, plans, 30)
    assert ops[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "1"}
    assert {o["path"]: o["value"] for o in ops[1:]} == {
        "/spec/http/0/route/0/weight": 70, "/spec/http/0/route/1/weight": 30,
        "/spec/tls/1/route/0/weight": 70, "/spec/tls/1/route/1/weight": 30,
        "/spec/tcp/1/route/0/weight": 70, "/spec/tcp/1/route/1/weight": 30}


def test_a_virtual_service_with_only_tls_routes_is_managed() -> None:
    s = spec(tlsRoutes=[{"port": 443, "sniHosts": ["b.example.com", "a.example.com"]}])
    v = vs(tls=[tls(443, "a.example.com", "b.example.com", canary=20)])
    plans, errors = plan_routes(v, s, NS, s.canary.istio.virtual_services[0])
    assert errors == [] and [(p.kind, p.canary_weight) for p in plans] == [("tls", 20)]


def test_a_single_route_of_a_kind_is_managed_without_naming_it() -> None:
    s = spec()
    v = vs(tcp=[tcp(3306, canary=10)])
    plans, errors = plan_routes(v, s, NS, s.canary.istio.virtual_services[0])
    assert errors == [] and [(p.kind, p.index, p.canary_weight) for p in plans] == [("tcp", 0, 10)]


@pytest.mark.parametrize("ref, sections, expected", [
    ({"tlsRoutes": [{"port": 8443, "sniHosts": ["shop.example.com"]}]},
     {"tls": [tls(443, "shop.example.com")]}, "no tls route with port 8443"),
    ({"tlsRoutes": [{"port": 443, "sniHosts": ["x.example.com"]}]},
     {"tls": [tls(443, "shop.example.com")]}, "sniHosts ['x.example.com']"),
    ({"tcpRoutes": [{"port": 1}]}, {"http": [{"route": dests(0)}]}, "no tcp route with port 1"),
    ({}, {"tls": [tls(443, "a.example.com"), tls(443, "b.example.com")]},
     "has 2 tls routes: name the ones to manage in trafficRouting.istio.virtualService.tlsRoutes"),
    ({}, {"tcp": [{"match": [{"port": 1}], "route": [{"destination": {"host": "db"}}]}]},
     "tcp[0] must route to exactly the hosts"),
    ({}, {}, "has no http, tls or tcp routes"),
])
def test_tls_and_tcp_route_errors_say_what_is_wrong(ref: dict[str, Any], sections: dict[str, Any],
                                                    expected: str) -> None:
    s = spec(**ref)
    plans, errors = plan_routes(vs(**sections), s, NS, s.canary.istio.virtual_services[0])
    assert plans == [] and any(expected in e for e in errors), errors


def test_a_route_matching_two_ports_is_never_a_match() -> None:
    s = spec(tcpRoutes=[{"port": 3306}])
    route = {"match": [{"port": 3306}, {"port": 3307}], "route": dests(0)}
    _, errors = plan_routes(vs(tcp=[route]), s, NS, s.canary.istio.virtual_services[0])
    assert errors == ["no tcp route with port 3306 in VirtualService shop"]


def test_subset_patch_points_only_the_subsets_asked_for() -> None:
    dr = {"metadata": {"name": "shop", "resourceVersion": "7"},
          "spec": {"subsets": [{"name": "stable", "labels": {"app": "shop", HASH: "old"}},
                               {"name": "canary", "labels": {"app": "shop", HASH: "new"}}]}}
    ops, errors = subset_patch(dr, {"stable": "new"})
    assert errors == []
    assert ops[1:] == [{"op": "add", "path": "/spec/subsets/0/labels/rollouts-pod-template-hash",
                        "value": "new"}]
    assert subset_patch(dr, {"canary": "new"}) == ([], [])
    assert subset_patch(dr, {"nope": "x"})[1] == ["subset 'nope' not found in DestinationRule shop"]


# --- the router against an in-memory API server -------------------------------------------


class FakeApi:
    """Objects by path; JSON patches honour the resourceVersion test; every write is logged
    with a snapshot of all objects right after it (what traffic would follow)."""

    def __init__(self, objects: dict[str, dict[str, Any]]) -> None:
        self.objects = objects
        self.rv = 100
        self.writes: list[tuple[str, dict[str, dict[str, Any]]]] = []
        self.fail_patches: dict[str, KubeError] = {}

    async def get_or_none(self, path: str) -> dict[str, Any] | None:
        obj = self.objects.get(path)
        return copy.deepcopy(obj) if obj is not None else None

    def _write(self, path: str) -> dict[str, Any]:
        self.rv += 1
        self.objects[path]["metadata"]["resourceVersion"] = str(self.rv)
        self.writes.append((path, copy.deepcopy(self.objects)))
        return copy.deepcopy(self.objects[path])

    async def merge_patch(self, path: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.objects[path]["spec"]["selector"].update(body["spec"]["selector"])
        return self._write(path)

    async def json_patch(self, path: str, ops: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        if path in self.fail_patches:
            raise self.fail_patches[path]
        obj = self.objects[path]
        for op in ops:
            parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
            if op["op"] == "test":
                if obj["metadata"]["resourceVersion"] != op["value"]:
                    raise KubeError(422, "the test operation failed")
                continue
            target: Any = obj
            for p in parts[:-1]:
                target = target[int(p)] if isinstance(target, list) else target[p]
            target[parts[-1]] = op["value"]
        return self._write(path)


def svc(name: str, h: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": "1"},
            "spec": {"selector": {"app": "shop", HASH: h}}}


def host_level(canary: int, stable_hash: str, canary_hash: str) -> FakeApi:
    return FakeApi({
        SERVICES.path(NS, "shop-stable"): svc("shop-stable", stable_hash),
        SERVICES.path(NS, "shop-canary"): svc("shop-canary", canary_hash),
        VIRTUAL_SERVICES.path(NS, "shop"): vs(http=[{"name": "primary", "route": dests(canary)}]),
    })


def subset_level(canary: int, stable_hash: str, canary_hash: str) -> FakeApi:
    return FakeApi({
        DESTINATION_RULES.path(NS, "shop"): {
            "metadata": {"name": "shop", "resourceVersion": "1"},
            "spec": {"subsets": [{"name": "stable", "labels": {HASH: stable_hash}},
                                 {"name": "canary", "labels": {HASH: canary_hash}}]}},
        VIRTUAL_SERVICES.path(NS, "shop"): vs(http=[{"name": "primary",
                                                     "route": dests(canary, subsets=True)}]),
    })


def served(snapshot: dict[str, dict[str, Any]], subsets: bool) -> dict[str, int]:
    """Pod template hash -> % of traffic, as Istio would route with these objects."""
    route = snapshot[VIRTUAL_SERVICES.path(NS, "shop")]["spec"]["http"][0]["route"]
    out: dict[str, int] = {}
    for d in route:
        if subsets:
            subs = snapshot[DESTINATION_RULES.path(NS, "shop")]["spec"]["subsets"]
            h = next(s["labels"][HASH] for s in subs if s["name"] == d["destination"]["subset"])
        else:
            h = snapshot[SERVICES.path(NS, d["destination"]["host"])]["spec"]["selector"][HASH]
        out[h] = out.get(h, 0) + d["weight"]
    return {h: w for h, w in out.items() if w}


@pytest.mark.parametrize("subsets", [False, True])
async def test_promotion_moves_the_stable_selector_before_the_weights(subsets: bool) -> None:
    # dynamicStableScale after setWeight 100: the old stable "old" has no pods left. At
    # promotion, no moment may send traffic to "old".
    api = (subset_level if subsets else host_level)(100, "old", "new")
    router = TrafficRouter(api)  # type: ignore[arg-type]
    await router.apply(NS, spec(subsets=subsets, routes=["primary"]), stable_hash="new",
                       canary_hash="new", canary_weight=0, previous_weight=100)
    assert api.writes, "nothing was written"
    for path, snapshot in api.writes:
        assert served(snapshot, subsets) == {"new": 100}, (path, served(snapshot, subsets))


@pytest.mark.parametrize("subsets", [False, True])
async def test_abort_points_the_canary_back_at_stable_after_its_weight_left(subsets: bool) -> None:
    api = (subset_level if subsets else host_level)(50, "stable1", "canary2")
    router = TrafficRouter(api)  # type: ignore[arg-type]
    await router.apply(NS, spec(subsets=subsets, routes=["primary"]), stable_hash="stable1",
                       canary_hash="stable1", canary_weight=0, previous_weight=50)
    seen = [served(snap, subsets) for _, snap in api.writes]
    # the canary keeps its share until the weights moved; then its selector is the stable's
    assert seen[-1] == {"stable1": 100}
    assert all(set(s) <= {"stable1", "canary2"} for s in seen)
    final = api.writes[-1][1]
    if subsets:
        labels = {s["name"]: s["labels"][HASH]
                  for s in final[DESTINATION_RULES.path(NS, "shop")]["spec"]["subsets"]}
        assert labels == {"stable": "stable1", "canary": "stable1"}
    else:
        assert final[SERVICES.path(NS, "shop-canary")]["spec"]["selector"][HASH] == "stable1"
    # idempotent: nothing more to write
    n = len(api.writes)
    await TrafficRouter(api).apply(  # type: ignore[arg-type]
        NS, spec(subsets=subsets, routes=["primary"]), stable_hash="stable1",
        canary_hash="stable1", canary_weight=0, previous_weight=0)
    assert len(api.writes) == n


async def test_a_new_canary_gets_its_selector_before_any_weight() -> None:
    api = host_level(0, "s", "s")
    await TrafficRouter(api).apply(  # type: ignore[arg-type]
        NS, spec(routes=["primary"]), stable_hash="s", canary_hash="c", canary_weight=20,
        previous_weight=0)
    assert [served(snap, False) for _, snap in api.writes] == [{"s": 100}, {"s": 80, "c": 20}]


async def test_a_destination_rule_write_that_keeps_failing_raises() -> None:
    # A conflict on every attempt: the router must say so, or status would claim a subset
    # switch that did not happen (the second retry loop used to end silently).
    api = subset_level(0, "s", "s")
    api.fail_patches[DESTINATION_RULES.path(NS, "shop")] = KubeError(409, "conflict")
    with pytest.raises(KubeError) as err:
        await TrafficRouter(api).apply(  # type: ignore[arg-type]
            NS, spec(subsets=True, routes=["primary"]), stable_hash="s", canary_hash="c",
            canary_weight=20, previous_weight=0)
    assert err.value.status == 409
    # and the weights were not moved towards a subset that does not select the canary
    assert api.objects[VIRTUAL_SERVICES.path(NS, "shop")]["spec"]["http"][0]["route"][1]["weight"] == 0


async def test_a_stale_resource_version_is_re_read_and_retried() -> None:
    api = subset_level(0, "s", "s")
    router = TrafficRouter(api)  # type: ignore[arg-type]
    s = spec(subsets=True, routes=["primary"])
    await router.check(NS, s, {"app": "shop"})  # caches the objects
    api.objects[DESTINATION_RULES.path(NS, "shop")]["metadata"]["resourceVersion"] = "99"
    await router.apply(NS, s, stable_hash="s", canary_hash="c", canary_weight=20, previous_weight=0)
    labels = {x["name"]: x["labels"][HASH]
              for x in api.objects[DESTINATION_RULES.path(NS, "shop")]["spec"]["subsets"]}
    assert labels == {"stable": "s", "canary": "c"}


def test_spec_reads_tls_and_tcp_routes_and_rejects_malformed_ones() -> None:
    s = spec(tlsRoutes=[{"port": 443, "sniHosts": ["a.example.com"]}, {"sniHosts": ["b"]}],
             tcpRoutes=[{"port": 3306}, {}])
    ref = s.canary.istio.virtual_services[0]
    assert [(t.port, t.sni_hosts) for t in ref.tls_routes] == [(443, ("a.example.com",)), (0, ("b",))]
    assert [t.port for t in ref.tcp_routes] == [3306, 0]
    base = {"replicas": 1, "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}},
                         "spec": {"containers": [{"name": "a", "image": "a"}]}}}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tlsRoutes": {"port": 443}}, "tlsRoutes must be a list of objects"),
        ({"tlsRoutes": [{"port": 443, "sniHosts": "a"}]}, "sniHosts must be a list"),
        ({"tcpRoutes": [{"port": 70000}]}, "tcpRoutes[0].port must be 0..65535"),
        ({"tcpRoutes": [{"port": "x"}]}, "tcpRoutes[0].port must be an integer")]
    for bad, expected in cases:
        raw = {**base, "strategy": {"canary": {
            "canaryService": "c", "stableService": "s",
            "trafficRouting": {"istio": {"virtualService": {"name": "v", **bad}}}}}}
        parsed, errors = parse_spec(raw)
        assert parsed is None and any(expected in e for e in errors), errors

"""NGINX ingress router: the canary Ingress as a function of the stable Ingress (literal
expected objects), its header annotations, and the router's create/update/put-back/delete
against an in-memory API server."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from rollouts.api.routing import HeaderMatch, HeaderRoute, NginxConfig, StringMatch
from rollouts.kube.client import KubeError
from rollouts.traffic.nginx import (
    FINGERPRINT,
    MANAGED_ANNOTATIONS,
    NginxRouter,
    canary_ingress_name,
    plan_canary_ingress,
    plan_update,
)
from rollouts.traffic.owned import INGRESSES, Target
from tests.unit.router_fake import FakeApi, cache, meta

NS = "shop"
T = Target(rollout="web", uid="uid-1", stable_service="web-stable", canary_service="web-canary")
P = "nginx.ingress.kubernetes.io"
OWNER = {"apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout", "name": "web", "uid": "uid-1",
         "controller": True, "blockOwnerDeletion": True}


def path(svc: str, p: str = "/", port: int = 80) -> dict[str, Any]:
    return {"path": p, "pathType": "Prefix",
            "backend": {"service": {"name": svc, "port": {"number": port}}}}


def stable_ingress(name: str = "web") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": meta(name, annotations={"kubernetes.io/ingress.class": "nginx",
                                                "unrelated": "x"}),
            "spec": {"ingressClassName": "nginx",
                     "tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}],
                     "rules": [{"host": "web.example.com",
                                "http": {"paths": [path("web-stable"), path("docs", "/docs")]}},
                               {"host": "other.example.com", "http": {"paths": [path("other")]}}]}}


CFG = NginxConfig(("web",), additional_ingress_annotations=(("canary-by-cookie", "beta"),),
                  canary_ingress_annotations=(("example.com/team", "shop"),))


def test_canary_ingress_name_is_argos() -> None:
    assert canary_ingress_name("web", "web-ing") == "web-web-ing-canary"
    long = canary_ingress_name("r" * 200, "i" * 100)
    assert len(long) == 253 and long.endswith("-canary")


def test_canary_ingress_copies_the_stable_rules_pointing_at_the_canary_service() -> None:
    body, errors = plan_canary_ingress(stable_ingress(), cfg=CFG, target=T, canary_weight=20)
    assert errors == []
    assert body is not None
    ann = body["metadata"].pop("annotations")
    assert body == {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web-web-canary", "namespace": "shop", "ownerReferences": [OWNER]},
        "spec": {"ingressClassName": "nginx",
                 "tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}],
                 # only the rule that reaches the stable Service, its other paths kept as Argo
                 "rules": [{"host": "web.example.com",
                            "http": {"paths": [path("web-canary"), path("docs", "/docs")]}}]}}
    fp = ann.pop(FINGERPRINT)
    assert len(fp) == 16
    assert ann == {
        "kubernetes.io/ingress.class": "nginx",
        f"{P}/canary-by-cookie": "beta",  # additional annotations get the prefix
        "example.com/team": "shop",  # canary annotations are written as given
        f"{P}/canary": "true",
        f"{P}/canary-weight": "20",
        MANAGED_ANNOTATIONS: ",".join(sorted([
            "kubernetes.io/ingress.class", f"{P}/canary-by-cookie", "example.com/team",
            f"{P}/canary", f"{P}/canary-weight"])),
    }


def test_weight_total_and_annotation_prefix() -> None:
    cfg = NginxConfig(("web",), annotation_prefix="custom.io")
    body, _ = plan_canary_ingress(stable_ingress(), cfg=cfg, target=T, canary_weight=5,
                                  max_weight=1000)
    assert body is not None
    ann = body["metadata"]["annotations"]
    assert ann["custom.io/canary"] == "true" and ann["custom.io/canary-weight"] == "5"
    assert ann["custom.io/canary-weight-total"] == "1000"


@pytest.mark.parametrize("value, expected", [
    (StringMatch(exact="yes"), {f"{P}/canary-by-header": "X-Canary",
                                f"{P}/canary-by-header-value": "yes"}),
    (StringMatch(regex="^(a|b)$"), {f"{P}/canary-by-header": "X-Canary",
                                    f"{P}/canary-by-header-pattern": "^(a|b)$"}),
    (StringMatch(prefix="v1.2"), {f"{P}/canary-by-header": "X-Canary",
                                  f"{P}/canary-by-header-pattern": "^v1\\.2"}),
])
def test_header_route_becomes_canary_by_header(value: StringMatch, expected: dict[str, str]) -> None:
    route = HeaderRoute("h", (HeaderMatch("X-Canary", value),))
    body, errors = plan_canary_ingress(stable_ingress(), cfg=NginxConfig(("web",)), target=T,
                                       canary_weight=0, header_routes=(route,))
    assert errors == [] and body is not None
    ann = body["metadata"]["annotations"]
    assert {k: v for k, v in ann.items() if "by-header" in k} == expected


def test_two_header_matches_cannot_be_expressed() -> None:
    route = HeaderRoute("h", (HeaderMatch("a", StringMatch(exact="1")),
                              HeaderMatch("b", StringMatch(exact="2"))))
    body, errors = plan_canary_ingress(stable_ingress(), cfg=CFG, target=T, canary_weight=0,
                                       header_routes=(route,))
    assert body is None
    assert errors == ["NGINX routes to the canary on one header only: setHeaderRoute h asks for "
                      "2 header matches"]
    # a cleared header route (no match) is nothing to express
    body, errors = plan_canary_ingress(stable_ingress(), cfg=CFG, target=T, canary_weight=0,
                                       header_routes=(HeaderRoute("h"),))
    assert errors == [] and body is not None


def test_stable_ingress_without_the_stable_service() -> None:
    ing = stable_ingress()
    ing["spec"]["rules"] = [{"http": {"paths": [path("other")]}}, {"host": "no-http"}]
    body, errors = plan_canary_ingress(ing, cfg=CFG, target=T, canary_weight=0)
    assert body is None
    assert errors == ["Ingress web (trafficRouting.nginx.stableIngress) has no rule whose backend "
                      "is the stable Service web-stable (spec.rules[].http.paths[].backend.service.name)"]


def desired(weight: int, **kw: Any) -> dict[str, Any]:
    body, _ = plan_canary_ingress(stable_ingress(), cfg=CFG, target=T, canary_weight=weight, **kw)
    assert body is not None
    return body


def live(body: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(body)
    obj["metadata"]["resourceVersion"] = "7"
    return obj


def test_update_changes_the_weight_only_and_is_not_a_hand_edit() -> None:
    u = plan_update(live(desired(10)), desired(30))
    assert not u.edited_by_hand
    assert u.ops[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "7"}
    assert u.ops[1] == {"op": "add", "value": "30",
                        "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1canary-weight"}
    assert [o["path"] for o in u.ops[2:]] == ["/metadata/annotations/rollouts.dev~1managed-fingerprint"]
    assert plan_update(live(desired(30)), desired(30)).ops == []


def test_a_hand_edit_is_put_back_and_said() -> None:
    actual = live(desired(30))
    actual["metadata"]["annotations"][f"{P}/canary-weight"] = "100"
    actual["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "evil"
    u = plan_update(actual, desired(30))
    assert u.edited_by_hand
    assert u.differs == ("spec", f"annotation {P}/canary-weight")
    assert u.ops[1] == {"op": "replace", "path": "/spec", "value": desired(30)["spec"]}
    # an annotation someone else added is left alone and is no hand edit of ours
    other = live(desired(30))
    other["metadata"]["annotations"]["team.example.com/owner"] = "me"
    assert plan_update(other, desired(30)) == plan_update(live(desired(30)), desired(30))


def test_a_cleared_header_route_removes_its_annotations() -> None:
    route = HeaderRoute("h", (HeaderMatch("X-Canary", StringMatch(exact="yes")),))
    u = plan_update(live(desired(0, header_routes=(route,))), desired(0))
    assert not u.edited_by_hand
    removed = sorted(o["path"] for o in u.ops if o["op"] == "remove")
    assert removed == ["/metadata/annotations/nginx.ingress.kubernetes.io~1canary-by-header",
                       "/metadata/annotations/nginx.ingress.kubernetes.io~1canary-by-header-value"]


# --- the router against an in-memory API server ----------------------------------------------


def api_with_stable() -> FakeApi:
    return FakeApi({INGRESSES.path(NS, "web"): stable_ingress()})


CANARY = INGRESSES.path(NS, "web-web-canary")


async def test_router_creates_updates_puts_back_and_deletes_the_canary_ingress() -> None:
    api = api_with_stable()
    router = NginxRouter(cache(api), CFG)
    assert await router.check(NS, T) == []
    assert await router.current_weight(NS, T) == 0  # no canary Ingress: nothing on the canary
    assert await router.apply(NS, T, canary_weight=10) == []
    assert [w[0] for w in api.writes] == ["create"]
    assert api.objects[CANARY]["metadata"]["annotations"][f"{P}/canary-weight"] == "10"
    assert await NginxRouter(cache(api), CFG).current_weight(NS, T) == 10

    await NginxRouter(cache(api), CFG).apply(NS, T, canary_weight=40)
    assert api.objects[CANARY]["metadata"]["annotations"][f"{P}/canary-weight"] == "40"
    n = len(api.writes)
    await NginxRouter(cache(api), CFG).apply(NS, T, canary_weight=40)
    assert len(api.writes) == n  # idempotent

    # someone sets the weight to 100 by hand: put back, and the caller hears of it
    api.objects[CANARY]["metadata"]["annotations"][f"{P}/canary-weight"] = "100"
    notes = await NginxRouter(cache(api), CFG).apply(NS, T, canary_weight=40)
    assert notes == ["canary Ingress web-web-canary was edited by hand "
                     f"(annotation {P}/canary-weight); put back"]
    assert api.objects[CANARY]["metadata"]["annotations"][f"{P}/canary-weight"] == "40"

    assert await NginxRouter(cache(api), CFG).remove(NS, T) == ["web-web-canary"]
    assert CANARY not in api.objects and INGRESSES.path(NS, "web") in api.objects
    assert await NginxRouter(cache(api), CFG).remove(NS, T) == []


async def test_a_stable_ingress_change_is_followed_without_a_hand_edit_note() -> None:
    api = api_with_stable()
    await NginxRouter(cache(api), CFG).apply(NS, T, canary_weight=10)
    api.objects[INGRESSES.path(NS, "web")]["spec"]["rules"][0]["http"]["paths"].append(
        path("web-stable", "/v2"))
    assert await NginxRouter(cache(api), CFG).apply(NS, T, canary_weight=10) == []
    paths = api.objects[CANARY]["spec"]["rules"][0]["http"]["paths"]
    assert [p["backend"]["service"]["name"] for p in paths] == ["web-canary", "docs", "web-canary"]


async def test_check_names_missing_objects_and_foreign_canary_ingress() -> None:
    api = FakeApi({CANARY: {"metadata": meta("web-web-canary", ownerReferences=[
        {"kind": "Rollout", "name": "other", "uid": "uid-2", "controller": True}])}})
    errors = await NginxRouter(cache(api), NginxConfig(("web", "gone"))).check(NS, T)
    assert errors == ["Ingress web (trafficRouting.nginx.stableIngress) not found",
                      "Ingress gone (trafficRouting.nginx.stableIngress) not found"]
    api.objects[INGRESSES.path(NS, "web")] = stable_ingress()
    errors = await NginxRouter(cache(api), CFG).check(NS, T)
    assert errors == ["canary Ingress web-web-canary exists and is not owned by Rollout web "
                      "(controller uid uid-2): rename or delete it"]
    with pytest.raises(KubeError):
        await NginxRouter(cache(api), CFG).apply(NS, T, canary_weight=10)
    assert api.writes == []  # nothing written over someone else's object
    assert await NginxRouter(cache(api), CFG).remove(NS, T) == []  # and never deleted
    assert CANARY in api.objects


async def test_a_racing_writer_is_retried_with_the_fresh_object() -> None:
    api = api_with_stable()
    await NginxRouter(cache(api), CFG).apply(NS, T, canary_weight=10)
    raced = []

    def race(a: FakeApi, p: str) -> None:
        if not raced:
            raced.append(p)
            a.objects[p]["metadata"]["labels"] = {"someone": "else"}
            a.objects[p]["metadata"]["resourceVersion"] = "999"

    api.patch_hook = race
    await NginxRouter(cache(api), CFG).apply(NS, T, canary_weight=50)
    assert raced and api.objects[CANARY]["metadata"]["annotations"][f"{P}/canary-weight"] == "50"
    assert api.objects[CANARY]["metadata"]["labels"] == {"someone": "else"}


async def test_header_route_and_its_removal_through_the_router() -> None:
    api = api_with_stable()
    route = HeaderRoute("h", (HeaderMatch("X-Canary", StringMatch(exact="yes")),))
    await NginxRouter(cache(api), CFG).apply(NS, T, canary_weight=0, header_routes=(route,))
    ann = api.objects[CANARY]["metadata"]["annotations"]
    assert ann[f"{P}/canary-by-header"] == "X-Canary" and ann[f"{P}/canary-weight"] == "0"
    assert await NginxRouter(cache(api), CFG).apply(NS, T, canary_weight=0) == []
    assert not any("by-header" in k for k in api.objects[CANARY]["metadata"]["annotations"])

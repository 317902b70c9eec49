"""The routers beyond Istio against a real API server: the Gateway API route kinds
(standard channel, sigs.k8s.io/gateway-api) and SMI's TrafficSplit are installed on the
test bed, and every object each router writes is accepted by the API server's schemas,
reads back as written (a second pass writes nothing: no fight with defaulting), and is
cleaned up by ``remove``.

What a user would check: ``kubectl get trafficsplit,httproute,grpcroute,tcproute,ingress``
shows the weights of the step, the canary Ingress owned by the Rollout, the header rule
first in the HTTPRoute, and nothing of ours left after removal.
"""

from __future__ import annotations

from pathlib import Path
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
    StringMatch,
)
from rollouts.kube.apply import apply_files, wait_established
from rollouts.kube.client import SERVICES, Kube, KubeError
from rollouts.traffic.alb import ALBRouter
from rollouts.traffic.gateway import GatewayAPIRouter
from rollouts.traffic.nginx import NginxRouter
from rollouts.traffic.objects import ObjectCache
from rollouts.traffic.owned import GRPC_ROUTES, HTTP_ROUTES, INGRESSES, TCP_ROUTES, Target, traffic_splits
from rollouts.traffic.smi import SMIRouter
from testbed.cluster import CACHE_ROOT, TestBed, router_crd_files
from tests.e2e.kit import rollout

pytestmark = pytest.mark.e2e

CRDS = ("httproutes.gateway.networking.k8s.io", "grpcroutes.gateway.networking.k8s.io",
        "tcproutes.gateway.networking.k8s.io", "trafficsplits.split.smi-spec.io")


def _cache(testbed: TestBed) -> Path:
    cache = getattr(testbed, "cache", None)
    if cache is not None:
        return Path(cache)
    # an attached bed: the build dir that names the router CRDs
    dirs = [d for d in CACHE_ROOT.glob("k8s-*") if (d / "router-crds-dir").is_file()]
    if len(dirs) != 1:
        pytest.fail(f"no single test-bed cache with router-crds-dir under {CACHE_ROOT}: {dirs}")
    return dirs[0]


@pytest.fixture
async def routers_installed(testbed: TestBed, rkube: Kube, installed: None) -> None:
    """A bed started before the router CRDs were part of it gets them here (idempotent)."""
    crd = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
    if all([await rkube.get_or_none(crd + n) for n in CRDS]):
        return
    applied = await apply_files(rkube, router_crd_files(_cache(testbed)))
    await wait_established(rkube, applied)


async def _target(rkube: Kube, ns: str) -> Target:
    ro = await rkube.create(f"/apis/rollouts.dev/v1alpha1/namespaces/{ns}/rollouts",
                            rollout([], app="web", replicas=1))
    for role in ("stable", "canary"):
        await rkube.create(SERVICES.path(ns), {"metadata": {"name": f"web-{role}"}, "spec": {
            "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    await rkube.create(SERVICES.path(ns), {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    return Target("web", ro["metadata"]["uid"], "web-stable", "web-canary")


def _ref(name: str, port: int, weight: int) -> dict[str, Any]:
    return {"name": name, "port": port, "weight": weight}


async def _rv(rkube: Kube, path: str) -> str:
    return str((await rkube.get(path))["metadata"]["resourceVersion"])


async def test_router_crds_are_installed_and_serve_the_versions_the_routers_write(
        rkube: Kube, routers_installed: None) -> None:
    for n in CRDS:
        crd = await rkube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{n}")
        served = {v["name"] for v in crd["spec"]["versions"] if v["served"]}
        want = {"v1alpha1", "v1alpha2", "v1alpha3"} if n.startswith("trafficsplits") else {"v1"}
        assert want <= served, (n, served)
        if not n.startswith("trafficsplits"):
            assert crd["metadata"]["annotations"]["gateway.networking.k8s.io/channel"] == "standard"


@pytest.mark.parametrize("version", ["v1alpha1", "v1alpha2", "v1alpha3"])
async def test_smi_traffic_split_lifecycle(rkube: Kube, namespace: str, routers_installed: None,
                                           version: str) -> None:
    t = await _target(rkube, namespace)
    cfg = SMIConfig(root_service="web")
    assert await SMIRouter(ObjectCache(rkube), cfg, api_version=version).check(namespace, t) == []
    await SMIRouter(ObjectCache(rkube), cfg, api_version=version).apply(namespace, t, canary_weight=30)
    path = traffic_splits(version).path(namespace, "web")
    ts = await rkube.get(path)
    assert ts["spec"] == {"service": "web", "backends": [{"service": "web-canary", "weight": 30},
                                                         {"service": "web-stable", "weight": 70}]}
    assert ts["metadata"]["ownerReferences"][0]["uid"] == t.uid
    rv = await _rv(rkube, path)
    assert await SMIRouter(ObjectCache(rkube), cfg, api_version=version).apply(
        namespace, t, canary_weight=30) == []
    assert await _rv(rkube, path) == rv  # read back as written: nothing rewritten
    assert await SMIRouter(ObjectCache(rkube), cfg, api_version=version).current_weight(namespace, t) == 30
    assert await SMIRouter(ObjectCache(rkube), cfg, api_version=version).remove(namespace, t) == ["web"]
    assert await rkube.get_or_none(path) is None


async def test_gateway_api_routes_accept_weights_header_and_mirror_rules(
        rkube: Kube, namespace: str, routers_installed: None) -> None:
    t = await _target(rkube, namespace)
    parent = {"parentRefs": [{"name": "gw"}]}
    await rkube.create(HTTP_ROUTES.path(namespace), {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "web"},
        "spec": {**parent, "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
             "backendRefs": [_ref("web-stable", 80, 100), _ref("web-canary", 80, 0)]}]}})
    await rkube.create(GRPC_ROUTES.path(namespace), {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute", "metadata": {"name": "rpc"},
        "spec": {**parent, "rules": [{"backendRefs": [_ref("web-stable", 80, 100),
                                                      _ref("web-canary", 80, 0)]}]}})
    await rkube.create(TCP_ROUTES.path(namespace), {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "TCPRoute", "metadata": {"name": "db"},
        "spec": {**parent, "rules": [{"backendRefs": [_ref("web-stable", 80, 100),
                                                      _ref("web-canary", 80, 0)]}]}})
    cfg = GatewayAPIConfig(http_routes=(GatewayRouteRef("web", True),),
                           grpc_routes=(GatewayRouteRef("rpc", True),), tcp_routes=(GatewayRouteRef("db"),))
    managed = ("hdr", "mirror")
    hr = HeaderRoute("hdr", (HeaderMatch("X-Canary", StringMatch(exact="yes")),
                             HeaderMatch("User-Agent", StringMatch(prefix="Mozilla"))))
    mr = MirrorRoute("mirror", (RouteMatch(method=StringMatch(exact="GET"),
                                           path=StringMatch(prefix="/api/v2")),), 25)

    def router() -> GatewayAPIRouter:
        return GatewayAPIRouter(ObjectCache(rkube), cfg, managed_routes=managed)

    assert await router().check(namespace, t, header_routes=(hr,), mirror_routes=(mr,)) == []
    await router().apply(namespace, t, canary_weight=20, header_routes=(hr,), mirror_routes=(mr,))
    web = await rkube.get(HTTP_ROUTES.path(namespace, "web"))
    assert [r.get("name") for r in web["spec"]["rules"]] == ["hdr", "mirror", None]
    assert [b["weight"] for b in web["spec"]["rules"][2]["backendRefs"]] == [80, 20]
    assert web["spec"]["rules"][1]["filters"][-1]["requestMirror"]["percent"] == 25
    rpc = await rkube.get(GRPC_ROUTES.path(namespace, "rpc"))
    assert [r.get("name") for r in rpc["spec"]["rules"]] == ["hdr", None]
    assert await router().current_weight(namespace, t) == 20

    paths = [HTTP_ROUTES.path(namespace, "web"), GRPC_ROUTES.path(namespace, "rpc"),
             TCP_ROUTES.path(namespace, "db")]
    before = [await _rv(rkube, p) for p in paths]
    assert await router().apply(namespace, t, canary_weight=20, header_routes=(hr,),
                                mirror_routes=(mr,)) == []
    assert [await _rv(rkube, p) for p in paths] == before  # the API server's defaults match ours

    assert await router().remove(namespace, t) == ["HTTPRoute web", "GRPCRoute rpc", "TCPRoute db"]
    web = await rkube.get(HTTP_ROUTES.path(namespace, "web"))
    assert [(r.get("name"), [b["weight"] for b in r["backendRefs"]]) for r in web["spec"]["rules"]] == [
        (None, [100, 0])]


def _ingress(name: str, service: str) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "web.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}}


async def test_nginx_canary_ingress_and_alb_annotations_on_real_ingresses(
        rkube: Kube, namespace: str, routers_installed: None) -> None:
    t = await _target(rkube, namespace)
    await rkube.create(INGRESSES.path(namespace), _ingress("web", "web-stable"))
    await rkube.create(INGRESSES.path(namespace), _ingress("web-alb", "web"))
    hr = HeaderRoute("hdr", (HeaderMatch("X-Canary", StringMatch(exact="yes")),))
    ncfg = NginxConfig(("web",))
    await NginxRouter(ObjectCache(rkube), ncfg).apply(namespace, t, canary_weight=10, header_routes=(hr,))
    canary = INGRESSES.path(namespace, "web-web-canary")
    obj = await rkube.get(canary)
    ann = obj["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/canary-weight"] == "10"
    assert ann["nginx.ingress.kubernetes.io/canary-by-header"] == "X-Canary"
    assert obj["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "web-canary"
    assert obj["metadata"]["ownerReferences"][0]["uid"] == t.uid
    rv = await _rv(rkube, canary)
    assert await NginxRouter(ObjectCache(rkube), ncfg).apply(
        namespace, t, canary_weight=10, header_routes=(hr,)) == []
    assert await _rv(rkube, canary) == rv
    # a hand edit is put back
    await rkube.merge_patch(canary, {"metadata": {"annotations": {
        "nginx.ingress.kubernetes.io/canary-weight": "100"}}})
    notes = await NginxRouter(ObjectCache(rkube), ncfg).apply(namespace, t, canary_weight=10,
                                                              header_routes=(hr,))
    assert len(notes) == 1 and "edited by hand" in notes[0]
    assert (await rkube.get(canary))["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/canary-weight"] == "10"
    assert await NginxRouter(ObjectCache(rkube), ncfg).remove(namespace, t) == ["web-web-canary"]
    assert await rkube.get_or_none(canary) is None

    acfg = ALBConfig(("web-alb",), 80, root_service="web")
    await ALBRouter(ObjectCache(rkube), acfg, managed_routes=("hdr",)).apply(
        namespace, t, canary_weight=40, header_routes=(hr,))
    alb = await rkube.get(INGRESSES.path(namespace, "web-alb"))
    paths = alb["spec"]["rules"][0]["http"]["paths"]
    assert [(p["backend"]["service"]["name"], p["backend"]["service"]["port"]) for p in paths] == [
        ("hdr", {"name": "use-annotation"}), ("web", {"name": "use-annotation"})]
    assert await ALBRouter(ObjectCache(rkube), acfg).current_weight(namespace, t) == 40
    rv = await _rv(rkube, INGRESSES.path(namespace, "web-alb"))
    await ALBRouter(ObjectCache(rkube), acfg, managed_routes=("hdr",)).apply(
        namespace, t, canary_weight=40, header_routes=(hr,))
    assert await _rv(rkube, INGRESSES.path(namespace, "web-alb")) == rv
    # an Ingress of the canary's name that the Rollout does not own is refused, left alone
    await rkube.create(INGRESSES.path(namespace), _ingress("web-web-canary", "x"))
    rv = await _rv(rkube, canary)
    errors = await NginxRouter(ObjectCache(rkube), ncfg).check(namespace, t)
    assert errors == ["canary Ingress web-web-canary exists and is not owned by Rollout web "
                      "(no controller): rename or delete it"]
    with pytest.raises(KubeError):
        await NginxRouter(ObjectCache(rkube), ncfg).apply(namespace, t, canary_weight=10)
    assert await NginxRouter(ObjectCache(rkube), ncfg).remove(namespace, t) == []
    assert await _rv(rkube, canary) == rv

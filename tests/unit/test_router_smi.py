"""SMI router: the TrafficSplit as a literal object, and create/update/put-back/delete
against an in-memory API server."""

from __future__ import annotations

import pytest

from rollouts.api.routing import SMIConfig
from rollouts.kube.client import SERVICES, KubeError
from rollouts.traffic.owned import Target, traffic_splits
from rollouts.traffic.smi import SMIRouter, plan_traffic_split, weight_of
from tests.unit.router_fake import FakeApi, cache, meta

NS = "shop"
T = Target(rollout="web", uid="uid-1", stable_service="web-stable", canary_service="web-canary")
OWNER = {"apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout", "name": "web", "uid": "uid-1",
         "controller": True, "blockOwnerDeletion": True}


def test_traffic_split_literal() -> None:
    assert plan_traffic_split(SMIConfig(root_service="web"), T, canary_weight=30,
                              api_version="v1alpha2") == {
        "apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit",
        "metadata": {"name": "web", "ownerReferences": [OWNER]},
        "spec": {"service": "web", "backends": [{"service": "web-canary", "weight": 30},
                                                {"service": "web-stable", "weight": 70}]}}
    # defaults: Argo's v1alpha1, the split named after the Rollout, root = stable Service
    ts = plan_traffic_split(SMIConfig(traffic_split_name="ts"), T, canary_weight=0)
    assert ts["apiVersion"] == "split.smi-spec.io/v1alpha1" and ts["metadata"]["name"] == "ts"
    assert ts["spec"]["service"] == "web-stable"


def test_weight_of_reads_v1alpha1_quantities() -> None:
    ts = plan_traffic_split(SMIConfig(), T, canary_weight=0)
    ts["spec"]["backends"][0]["weight"] = "25"
    assert weight_of(ts, T) == 25
    ts["spec"]["backends"][0]["weight"] = "250m"
    assert weight_of(ts, T) is None
    assert weight_of(None, T) is None


SPLIT = traffic_splits("v1alpha2").path(NS, "web")


def svc(name: str) -> dict[str, object]:
    return {"metadata": meta(name), "spec": {}}


async def test_router_lifecycle() -> None:
    api = FakeApi({SERVICES.path(NS, "web"): svc("web")})
    cfg = SMIConfig(root_service="web")
    router = SMIRouter(cache(api), cfg, api_version="v1alpha2")
    assert await router.check(NS, T) == []
    assert await router.current_weight(NS, T) is None
    assert await router.apply(NS, T, canary_weight=10) == []
    assert [w[:2] for w in api.writes] == [("create", SPLIT)]
    assert api.objects[SPLIT]["spec"]["backends"] == [{"service": "web-canary", "weight": 10},
                                                      {"service": "web-stable", "weight": 90}]
    assert api.objects[SPLIT]["metadata"]["ownerReferences"] == [OWNER]
    r = SMIRouter(cache(api), cfg, api_version="v1alpha2")
    assert await r.apply(NS, T, canary_weight=50) == []  # a step: no hand edit
    assert await r.current_weight(NS, T) == 50
    n = len(api.writes)
    assert await SMIRouter(cache(api), cfg, api_version="v1alpha2").apply(NS, T, canary_weight=50) == []
    assert len(api.writes) == n

    api.objects[SPLIT]["spec"]["backends"][1]["service"] = "elsewhere"
    notes = await SMIRouter(cache(api), cfg, api_version="v1alpha2").apply(NS, T, canary_weight=50)
    assert notes == ["TrafficSplit web was edited by hand; put back"]
    assert api.objects[SPLIT]["spec"]["backends"][1] == {"service": "web-stable", "weight": 50}

    assert await SMIRouter(cache(api), cfg, api_version="v1alpha2").remove(NS, T) == ["web"]
    assert SPLIT not in api.objects


async def test_check_names_the_missing_root_service_and_a_foreign_split() -> None:
    api = FakeApi({SPLIT: {"metadata": meta("web"), "spec": {}}})
    errors = await SMIRouter(cache(api), SMIConfig(root_service="web"), api_version="v1alpha2").check(NS, T)
    assert errors == [
        "Service web (trafficRouting.smi.rootService, the TrafficSplit's root) not found",
        "TrafficSplit web (trafficRouting.smi.trafficSplitName) exists and is not owned by Rollout "
        "web (no controller): rename or delete it"]
    with pytest.raises(KubeError):
        await SMIRouter(cache(api), SMIConfig(), api_version="v1alpha2").apply(NS, T, canary_weight=5)
    assert await SMIRouter(cache(api), SMIConfig(), api_version="v1alpha2").remove(NS, T) == []
    assert api.writes == []


def test_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError):
        SMIRouter(cache(FakeApi()), SMIConfig(), api_version="v1alpha4")

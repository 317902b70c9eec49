"""Review of the canary strategies of issue 13, end to end: what a user checks with kubectl
after the fixes found in review (pod labels of each role)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rollouts.kube.apply import apply
from rollouts.kube.client import PODS, Kube
from rollouts.kube.signals import request_action
from tests.e2e.kit import (
    ControllerProcess,
    eventually,
    phase_is,
    replica_sets,
    rollout,
    services,
    set_image,
    virtual_service,
)

JSON = dict[str, Any]


async def _role_by_hash(rkube: Kube, ns: str) -> dict[str, set[str | None]]:
    pods = await rkube.get_list(PODS.path(ns), labelSelector="app=demo")
    out: dict[str, set[str | None]] = {}
    for p in pods.get("items") or []:
        md = p["metadata"]
        if md.get("deletionTimestamp"):
            continue
        labels = md.get("labels") or {}
        out.setdefault(labels.get("rollouts-pod-template-hash", ""), set()).add(labels.get("role"))
    return out


async def test_after_promotion_only_the_new_stable_pods_claim_the_stable_role(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    # `kubectl get pods -l role=stable` must list the new stable's pods only, also while the
    # previous stable keeps its pods for scaleDownDelaySeconds (they lose the label at once).
    ns = namespace
    start_controller()
    for obj in [*services(), virtual_service()]:
        await apply(rkube, obj, ns)
    steps: list[JSON] = [{"setWeight": 50}, {"pause": {}}]
    await apply(rkube, rollout(steps, replicas=2, scaleDownDelaySeconds=60,
                               canaryMetadata={"labels": {"role": "canary"}},
                               stableMetadata={"labels": {"role": "stable"}}), ns)
    ro = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy Healthy")
    assert ro is not None
    v1 = ro["status"]["stableRS"]

    async def roles_are(want: dict[str, set[str | None]]) -> bool:
        return await _role_by_hash(rkube, ns) == want

    await eventually(lambda: roles_are({v1: {"stable"}}), 30, "stable pods labelled")
    await set_image(rkube, ns, "demo:2")
    ro = await eventually(lambda: phase_is(rkube, ns, "Paused"), 60, "paused at 50 %")
    assert ro is not None
    v2 = ro["status"]["currentPodHash"]
    await eventually(lambda: roles_are({v1: {"stable"}, v2: {"canary"}}), 30, "roles while paused")
    await request_action(rkube, ns, "demo", "promote", user="e2e")
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "promoted")
    # the previous stable still runs its 2 pods (scaleDownDelaySeconds) without the role
    await eventually(lambda: roles_are({v1: {None}, v2: {"stable"}}), 30, "roles after promotion")
    assert int((await replica_sets(rkube, ns))[v1]["spec"]["replicas"]) == 2

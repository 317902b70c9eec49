"""A canary without a service mesh (weights by pod counts), setCanaryScale and ephemeral pod
metadata end to end, as a user checks them: ReplicaSet sizes, pod labels, the Service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rollouts.kube.apply import apply
from rollouts.kube.client import PODS, Kube
from rollouts.kube.signals import ROLLOUTS, request_action
from tests.e2e.kit import (
    HASH,
    SERVICES,
    ControllerProcess,
    canary_weight,
    eventually,
    get_rollout,
    phase_is,
    replica_sets,
    rollout,
    services,
    set_image,
    virtual_service,
)

JSON = dict[str, Any]


def basic_rollout(steps: list[JSON], replicas: int, **canary: Any) -> JSON:
    ro = rollout(steps, replicas=replicas, **canary)
    c = ro["spec"]["strategy"]["canary"]
    for key in ("trafficRouting", "canaryService", "stableService"):
        c.pop(key, None)
    return ro


async def sizes(rkube: Kube, ns: str, *hashes: str) -> tuple[int, ...]:
    rss = await replica_sets(rkube, ns)
    return tuple(int(rss[h]["spec"]["replicas"]) if h in rss else 0 for h in hashes)


async def pod_roles(rkube: Kube, ns: str, h: str) -> set[str | None]:
    pods = await rkube.get_list(PODS.path(ns), labelSelector=f"{HASH}={h}")
    return {(p["metadata"].get("labels") or {}).get("role") for p in pods.get("items") or []
            if not p["metadata"].get("deletionTimestamp")}


async def paused_at(rkube: Kube, ns: str, idx: int) -> JSON | None:
    ro = await phase_is(rkube, ns, "Paused")
    return ro if ro is not None and ro["status"].get("currentStepIndex") == idx else None


async def test_canary_without_a_mesh_sizes_pods_by_weight_and_labels_their_roles(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    start_controller()
    # one Service for both revisions: the canary's share of traffic is its share of the pods
    await apply(rkube, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "demo"},
                        "spec": {"selector": {"app": "demo"}, "ports": [{"port": 80}]}}, ns)
    steps: list[JSON] = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]
    await apply(rkube, basic_rollout(steps, 4, maxSurge=1, maxUnavailable=0,
                                     canaryMetadata={"labels": {"role": "canary"}},
                                     stableMetadata={"labels": {"role": "stable"}}), ns)
    ro = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy Healthy")
    v1 = ro["status"]["stableRS"]
    await eventually(lambda: _roles_are(rkube, ns, v1, {"stable"}), 30, "stable pods labelled")

    await set_image(rkube, ns, "demo:2")
    ro = await eventually(lambda: paused_at(rkube, ns, 1), 60, "paused after setWeight 25")
    v2 = ro["status"]["currentPodHash"]
    assert await sizes(rkube, ns, v2, v1) == (1, 3)  # 25 % of 4 pods
    assert ro["status"]["canary"]["weights"]["canary"]["weight"] == 25
    await eventually(lambda: _roles_are(rkube, ns, v2, {"canary"}), 30, "canary pods labelled")
    assert await pod_roles(rkube, ns, v1) == {"stable"}

    # Scaling the Rollout while paused keeps the step's share: 25 % of 8 pods.
    await rkube.merge_patch(ROLLOUTS.path(ns, "demo"), {"spec": {"replicas": 8}})
    await eventually(lambda: _sizes_are(rkube, ns, (v2, v1), (2, 6)), 60, "2 + 6 pods")
    assert (await get_rollout(rkube, ns))["status"]["phase"] == "Paused"

    await request_action(rkube, ns, "demo", "promote", user="e2e")
    await eventually(lambda: paused_at(rkube, ns, 3), 60, "paused after setWeight 50")
    assert await sizes(rkube, ns, v2, v1) == (4, 4)
    await request_action(rkube, ns, "demo", "promote", user="e2e")
    ro = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 90, "promoted")
    assert ro["status"]["stableRS"] == v2
    assert await sizes(rkube, ns, v2, v1) == (8, 0)
    # the new stable's pods now carry the stable role
    await eventually(lambda: _roles_are(rkube, ns, v2, {"stable"}), 30, "roles swapped")


async def _roles_are(rkube: Kube, ns: str, h: str, want: set[str | None]) -> bool:
    return await pod_roles(rkube, ns, h) == want


async def _sizes_are(rkube: Kube, ns: str, hashes: tuple[str, ...], want: tuple[int, ...]) -> bool:
    return await sizes(rkube, ns, *hashes) == want


async def test_set_canary_scale_runs_canary_pods_apart_from_the_mesh_weight(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    start_controller()
    for obj in [*services(), virtual_service()]:
        await apply(rkube, obj, ns)
    steps: list[JSON] = [{"setCanaryScale": {"replicas": 3}}, {"setWeight": 20}, {"pause": {}},
                         {"setCanaryScale": {"matchTrafficWeight": True}}, {"pause": {}}]
    await apply(rkube, rollout(steps, replicas=5), ns)
    ro = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy Healthy")
    v1 = ro["status"]["stableRS"]
    await set_image(rkube, ns, "demo:2")
    ro = await eventually(lambda: paused_at(rkube, ns, 2), 60, "paused at step 2")
    v2 = ro["status"]["currentPodHash"]
    assert await canary_weight(rkube, ns) == 20
    assert await sizes(rkube, ns, v2, v1) == (3, 5)  # 3 canary pods for 20 % of traffic
    svc = await rkube.get(SERVICES.path(ns, "demo-canary"))
    assert svc["spec"]["selector"][HASH] == v2
    await request_action(rkube, ns, "demo", "promote", user="e2e")
    await eventually(lambda: paused_at(rkube, ns, 4), 60, "paused at step 4")
    assert await sizes(rkube, ns, v2, v1) == (1, 5)  # matchTrafficWeight: what 20 % needs


async def test_an_experiment_step_runs_baseline_and_canary_pods_then_goes_on(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    start_controller()
    for obj in [*services(), virtual_service()]:
        await apply(rkube, obj, ns)
    steps: list[JSON] = [
        {"setWeight": 20},
        {"experiment": {"duration": "4s", "templates": [
            {"name": "baseline", "specRef": "stable", "replicas": 1},
            {"name": "candidate", "specRef": "canary", "replicas": 2}]}},
        {"pause": {}}]
    await apply(rkube, rollout(steps, replicas=5), ns)
    ro = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy Healthy")
    v1 = ro["status"]["stableRS"]
    await set_image(rkube, ns, "demo:2")
    ro = await eventually(lambda: paused_at(rkube, ns, 2), 90, "past the experiment step")
    v2 = ro["status"]["currentPodHash"]
    exps = (await rkube.get_list(f"/apis/rollouts.dev/v1alpha1/namespaces/{ns}/experiments"))["items"]
    assert len(exps) == 1
    exp = exps[0]
    assert exp["status"]["phase"] == "Successful"
    assert exp["metadata"]["ownerReferences"][0]["name"] == "demo"
    by_name = {t["name"]: t for t in exp["spec"]["templates"]}
    images = {n: t["template"]["spec"]["containers"][0]["image"] for n, t in by_name.items()}
    assert images == {"baseline": "demo:1", "candidate": "demo:2"}
    # the experiment's pods are its own: the Rollout's ReplicaSets and weight are untouched
    assert set(await replica_sets(rkube, ns)) >= {v1, v2}
    assert await canary_weight(rkube, ns) == 20

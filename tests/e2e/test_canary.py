"""A canary rollout end to end, as a user watches it: weights, pods, phases, Services."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from rollouts.kube.apply import apply
from rollouts.kube.client import JSON, Kube
from rollouts.kube.signals import request_action
from tests.e2e.kit import (
    DR,
    HASH,
    SERVICES,
    ControllerProcess,
    WeightRecorder,
    canary_weight,
    destination_rule,
    eventually,
    get_rollout,
    phase_is,
    replica_sets,
    rollout,
    services,
    set_image,
    virtual_service,
)

STEPS: list[JSON] = [{"setWeight": 20}, {"pause": {"duration": "10s"}}, {"setWeight": 50},
                     {"pause": {}}, {"setWeight": 80}]
# The same steps for the tests that do not time the pause (only the first one checks
# that the 10 s held): 1 s, so they do not wait 10 s for nothing at each start.
SHORT_PAUSE: list[JSON] = [{"pause": {"duration": "1s"}} if s.get("pause") else s for s in STEPS]


async def _deploy(rkube: Kube, ns: str, subsets: bool = False, steps: list[JSON] = STEPS,
                  **extra: object) -> dict[str, str]:
    for obj in services() if not subsets else [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "demo"},
             "spec": {"selector": {"app": "demo"}, "ports": [{"port": 80}]}}]:
        await apply(rkube, obj, ns)
    if subsets:
        await apply(rkube, destination_rule(), ns)
    await apply(rkube, virtual_service(subsets=subsets), ns)
    await apply(rkube, rollout(steps, subsets=subsets, scaleDownDelaySeconds=5, **extra), ns)
    ro = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy Healthy")
    return {"stable": ro["status"]["stableRS"]}


async def _canary_pods(rkube: Kube, ns: str, h: str) -> int:
    rss = await replica_sets(rkube, ns)
    return int(rss[h]["spec"]["replicas"]) if h in rss else -1


async def test_canary_steps_pause_promote_and_scale_down(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    start_controller()
    first = await _deploy(rkube, ns)
    # The first deploy skips the steps: all traffic on stable, 5 pods.
    assert await canary_weight(rkube, ns) == 0
    assert (await replica_sets(rkube, ns))[first["stable"]]["status"]["availableReplicas"] == 5

    rec = WeightRecorder(rkube, ns).start()
    await set_image(rkube, ns, "demo:2")
    ro = await eventually(lambda: phase_is(rkube, ns, "Paused"), 60, "paused at step 3")
    await eventually(lambda: _at_step(rkube, ns, 3), 60, "indefinite pause at step 3")
    ro = await get_rollout(rkube, ns)
    new = ro["status"]["currentPodHash"]
    assert new != first["stable"]
    assert await canary_weight(rkube, ns) == 50
    assert await _canary_pods(rkube, ns, new) == 3  # ceil(5 * 50 %)
    # It stays there until a promote is recorded.
    await asyncio.sleep(3)
    assert await canary_weight(rkube, ns) == 50
    assert rec.sequence() == [0, 20, 50]
    assert rec.first_time(50) - rec.first_time(20) >= 9.5  # the 10 s pause held

    await request_action(rkube, ns, "demo", "promote", user="e2e-user")
    ro = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "promoted to Healthy")
    await rec.stop()
    assert rec.sequence() == [0, 20, 50, 80, 0]
    # Traffic moved only to canary pods that were ready: at least 1 pod for 20 %, 3 for 50 %,
    # 4 for 80 % (replicas 5), and all 5 before promotion.
    seen = rec.available_when(new)[1:]
    assert [w for w, _ in seen] == [20, 50, 80, 0]
    assert all(avail >= need for (_, avail), need in zip(seen, [1, 3, 4, 5], strict=True)), seen
    st = ro["status"]
    assert st["stableRS"] == new
    assert st["lastAction"]["user"] == "e2e-user" and st["lastAction"]["result"] == "Applied"
    stable_svc = await rkube.get(SERVICES.path(ns, "demo-stable"))
    assert stable_svc["spec"]["selector"][HASH] == new
    assert await canary_weight(rkube, ns) == 0
    # The old ReplicaSet is scaled to 0 only after scaleDownDelaySeconds (5 s).
    promoted_at = time.monotonic()
    await eventually(lambda: _scaled_to_zero(rkube, ns, first["stable"]), 30, "old RS at 0")
    assert time.monotonic() - promoted_at >= 3


async def _at_step(rkube: Kube, ns: str, idx: int) -> bool:
    st = (await get_rollout(rkube, ns)).get("status") or {}
    return st.get("currentStepIndex") == idx and st.get("phase") == "Paused"


async def _scaled_to_zero(rkube: Kube, ns: str, h: str) -> bool:
    rss = await replica_sets(rkube, ns)
    return rss[h]["spec"]["replicas"] == 0


async def test_subset_level_canary_via_destination_rule(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    start_controller()
    first = await _deploy(rkube, ns, subsets=True, steps=SHORT_PAUSE)
    dr = await rkube.get(DR.path(ns, "demo"))
    labels = {s["name"]: s["labels"] for s in dr["spec"]["subsets"]}
    assert labels["stable"][HASH] == first["stable"]

    await set_image(rkube, ns, "demo:2")
    await eventually(lambda: _at_step(rkube, ns, 3), 60, "indefinite pause at step 3")
    new = (await get_rollout(rkube, ns))["status"]["currentPodHash"]
    dr = await rkube.get(DR.path(ns, "demo"))
    labels = {s["name"]: s["labels"] for s in dr["spec"]["subsets"]}
    assert labels["canary"][HASH] == new and labels["stable"][HASH] == first["stable"]
    assert await canary_weight(rkube, ns) == 50

    await request_action(rkube, ns, "demo", "promote", user="e2e-user")
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "promoted")
    dr = await rkube.get(DR.path(ns, "demo"))
    labels = {s["name"]: s["labels"] for s in dr["spec"]["subsets"]}
    assert labels["stable"][HASH] == new
    assert await canary_weight(rkube, ns) == 0


async def test_abort_returns_traffic_to_stable_at_once(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    start_controller()
    first = await _deploy(rkube, ns, steps=SHORT_PAUSE)
    await set_image(rkube, ns, "demo:2")
    await eventually(lambda: _at_step(rkube, ns, 3), 60, "paused at step 3")
    assert await canary_weight(rkube, ns) == 50
    t0 = time.monotonic()
    await request_action(rkube, ns, "demo", "abort", user="e2e-user")
    await eventually(lambda: _weight_is(rkube, ns, 0), 10, "weight 0 after abort")
    assert time.monotonic() - t0 < 5  # one reconcile, not a step or a delay
    ro = await eventually(lambda: phase_is(rkube, ns, "Degraded"), 10, "Degraded")
    assert "aborted by e2e-user" in ro["status"]["message"]
    assert ro["status"]["stableRS"] == first["stable"]

    # retry restarts the steps from the beginning
    await request_action(rkube, ns, "demo", "retry", user="e2e-user")
    await eventually(lambda: _at_step(rkube, ns, 3), 60, "paused at step 3 again")
    assert await canary_weight(rkube, ns) == 50


async def _weight_is(rkube: Kube, ns: str, w: int) -> bool:
    return await canary_weight(rkube, ns) == w

"""Bad input gets a clear error and changes nothing; other rollouts are unaffected."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable

import pytest

from rollouts.kube.apply import apply
from rollouts.kube.client import Kube, KubeError
from tests.e2e.kit import (
    ControllerProcess,
    canary_weight,
    event_where,
    eventually,
    get_rollout,
    phase_is,
    rollout,
    services,
    set_image,
    virtual_service,
)

STEPS = [{"setWeight": 30}, {"pause": {}}]


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r["spec"]["strategy"]["canary"]["steps"].append({"setWeight": 150}), "100"),
    (lambda r: r["spec"]["strategy"]["canary"]["steps"].append({"pause": {"duration": "soon"}}),
     "pause duration"),
    (lambda r: r["spec"]["strategy"].update(blueGreen={"activeService": "x"}), "blueGreen"),
    (lambda r: r["spec"]["strategy"].pop("canary"), "canary"),
    (lambda r: r["spec"].update(strategy={"blueGreen": {"activeService": "a", "previewService": "a"}}),
     "activeService and previewService must be different"),
    (lambda r: r["spec"].update(strategy={"blueGreen": {"previewService": "a"}}), "activeService"),
    (lambda r: r["spec"]["strategy"]["canary"]["steps"].append({"setCanaryScale": {}}),
     "set exactly one of replicas, weight, matchTrafficWeight"),
    (lambda r: r["spec"]["strategy"]["canary"]["steps"].append({"setWeight": 10, "pause": {}}),
     "exactly one"),
    (lambda r: r["spec"]["strategy"]["canary"].pop("canaryService"), "canaryService"),
])
async def test_schema_rejects_statically_invalid_rollouts(
        rkube: Kube, namespace: str, installed: None, mutate: Callable[[dict[str, object]], None],
        expected: str) -> None:
    bad = rollout(copy.deepcopy(STEPS))
    mutate(bad)
    with pytest.raises(KubeError) as err:
        await apply(rkube, bad, namespace)
    assert err.value.status == 422
    assert expected in err.value.message
    with pytest.raises(KubeError) as missing:
        await get_rollout(rkube, namespace)
    assert missing.value.status == 404


async def test_invalid_spec_condition_changes_no_traffic_and_spares_other_rollouts(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    start_controller()
    # A valid rollout "good" and one whose VirtualService route does not exist.
    for obj in [*services("good"), virtual_service("good"), *services("bad"), virtual_service("bad")]:
        await apply(rkube, obj, ns)
    await apply(rkube, rollout(STEPS, app="good"), ns)
    broken = rollout(STEPS, app="bad")
    broken["spec"]["strategy"]["canary"]["trafficRouting"]["istio"]["virtualService"]["routes"] = ["nope"]
    await apply(rkube, broken, ns)

    ro = await eventually(lambda: phase_is(rkube, ns, "Degraded", "bad"), 30, "bad: Degraded")
    cond = next(c for c in ro["status"]["conditions"] if c["type"] == "InvalidSpec")
    assert cond["status"] == "True" and "route 'nope' not found in VirtualService bad" in cond["message"]
    await event_where(rkube, ns, "bad", lambda e: e["type"] == "Warning" and e["reason"] == "InvalidSpec")
    # Nothing was created or shifted for it.
    assert await canary_weight(rkube, ns, "bad") == 0
    rss = await rkube.get_list("/apis/apps/v1/namespaces/" + ns + "/replicasets",
                               labelSelector="app=bad")
    assert rss["items"] == []

    # The valid one proceeds in the same namespace.
    await eventually(lambda: phase_is(rkube, ns, "Healthy", "good"), 60, "good: Healthy")
    await set_image(rkube, ns, "demo:2", "good")
    await eventually(lambda: _weight(rkube, ns, "good", 30), 60, "good: weight 30")

    # Fixing the spec clears the condition.
    await rkube.merge_patch(f"/apis/rollouts.dev/v1alpha1/namespaces/{ns}/rollouts/bad",
                            {"spec": {"strategy": {"canary": {"trafficRouting": {"istio": {
                                "virtualService": {"name": "bad", "routes": ["primary"]}}}}}}})
    ro = await eventually(lambda: phase_is(rkube, ns, "Healthy", "bad"), 60, "bad: Healthy once fixed")
    assert not [c for c in ro["status"].get("conditions", []) if c["type"] == "InvalidSpec"]


async def test_malformed_status_does_not_crash_the_controller(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    ctl = start_controller()
    for obj in [*services(), virtual_service()]:
        await apply(rkube, obj, ns)
    await apply(rkube, rollout(STEPS), ns)
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "Healthy")
    await rkube.merge_patch(f"/apis/rollouts.dev/v1alpha1/namespaces/{ns}/rollouts/demo/status",
                            {"status": {"currentStepIndex": "two", "pauseConditions": "x",
                                        "canary": [1, 2], "pendingAction": {"action": "explode"}}})
    await asyncio.sleep(2)
    assert ctl.proc is not None and ctl.proc.poll() is None
    ro = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 30, "Healthy again")
    assert ro["status"]["lastAction"]["result"] == "Rejected"


async def _weight(rkube: Kube, ns: str, name: str, w: int) -> bool:
    return await canary_weight(rkube, ns, name) == w

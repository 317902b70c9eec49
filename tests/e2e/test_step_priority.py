"""Issue 14, step-first scheduling, as a platform team would check it under a tight API
budget: when every Rollout's pod template changes at once, the first rollout whose canary
pods are available gets its weight before the controller has even started the others'
new revisions (they wait for spare requests), and every rollout still gets there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from rollouts.kube.apply import apply
from rollouts.kube.client import REPLICASETS, Kube
from tests.e2e.kit import (
    ControllerProcess,
    canary_weight,
    eventually,
    phase_is,
    rollout,
    services,
    set_image,
    virtual_service,
)

APPS = [f"r{i}" for i in range(6)]


async def _new_revisions(rkube: Kube, ns: str) -> set[str]:
    """The rollouts whose demo:2 ReplicaSet exists."""
    items = (await rkube.get_list(REPLICASETS.path(ns)))["items"]
    return {o["name"] for rs in items
            if rs["spec"]["template"]["spec"]["containers"][0]["image"] == "demo:2"
            for o in rs["metadata"].get("ownerReferences") or [] if o.get("kind") == "Rollout"}


async def test_a_rollout_whose_pods_are_available_gets_its_weight_before_new_work_starts(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    for app in APPS:
        for obj in [*services(app), virtual_service(app)]:
            await apply(rkube, obj, ns)
        await apply(rkube, rollout([{"setWeight": 20}, {"pause": {}}], app=app, replicas=1), ns)
    first = start_controller()
    for app in APPS:
        await eventually(lambda app=app: phase_is(rkube, ns, "Healthy", app), 60, f"{app} Healthy")
    first.stop()

    # every pod template changed at once, then a controller allowed 2 requests a second
    # and one worker for new work (each new revision costs it a few seconds of requests)
    for app in APPS:
        await set_image(rkube, ns, "demo:2", name=app)
    t0 = time.monotonic()
    start_controller("--qps=2", "--burst=2", "--workers=1")
    seen: tuple[str, set[str], float] | None = None
    while seen is None and time.monotonic() - t0 < 60:
        weights = {app: await canary_weight(rkube, ns, app) for app in APPS}
        started = await _new_revisions(rkube, ns)  # read after the weights: never fewer
        at20 = [app for app, w in weights.items() if w == 20]
        if at20:
            seen = (at20[0], started, time.monotonic() - t0)
        else:
            await asyncio.sleep(0.2)
    assert seen is not None, "no rollout got its canary weight within 60 s"
    app, started, after = seen
    # Before: keys were served in order, so the first rollout's "pods available" waited
    # for every other rollout's new ReplicaSet (all six existed when it got its weight).
    assert len(started) <= len(APPS) - 2, (
        f"{app} got weight 20 after {after:.1f} s, when the new revisions of "
        f"{sorted(started)} had already been started")

    # no starvation: the rollouts started later all reach their pause too
    for other in APPS:
        await eventually(lambda other=other: phase_is(rkube, ns, "Paused", other), 90,
                         f"{other} paused at 20 %")
        assert await canary_weight(rkube, ns, other) == 20

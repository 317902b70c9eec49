"""Issue 14, what a platform team checks on a real control plane: an idle controller sends
nothing to the API server, a hand edit is put back at once without waiting for a resync,
and controllers split a namespace by --instance-id, each with its own Lease."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx

from rollouts.api.constants import INSTANCE_ID_LABEL
from rollouts.kube.apply import apply
from rollouts.kube.client import VIRTUAL_SERVICES, Kube
from tests.e2e.judgekit import free_port
from tests.e2e.kit import (
    ControllerProcess,
    canary_weight,
    eventually,
    get_rollout,
    phase_is,
    rollout,
    services,
    set_image,
    virtual_service,
)


async def _metrics(port: int) -> str:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
        return (await c.get("/metrics")).text


async def _reconciles(port: int) -> float:
    """Rollout reconciles so far, whatever their result (controller_runtime_reconcile_total)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in (await _metrics(port)).splitlines()
               if line.startswith("controller_runtime_reconcile_total{")
               and 'controller="rollout"' in line)


async def _requests(port: int) -> dict[str, float]:
    """The controller's own API requests so far by verb (rollouts_kube_api_requests_total)."""
    text = await _metrics(port)
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("rollouts_kube_api_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            verb = labels.split('verb="', 1)[1].split('"', 1)[0]
            resource = labels.split('resource="', 1)[1].split('"', 1)[0]
            out[f"{verb} {resource}"] = out.get(f"{verb} {resource}", 0) + float(value)
    return out


async def test_an_idle_controller_sends_nothing_and_puts_a_hand_edit_back_at_once(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    port = free_port()
    # a resync every 2 s: before informers, each one read the Services and the VirtualService
    start_controller(f"--metrics-listen=127.0.0.1:{port}", "--resync-seconds=2")
    for obj in [*services(), virtual_service()]:
        await apply(rkube, obj, ns)
    await apply(rkube, rollout([{"setWeight": 30}, {"pause": {}}], replicas=2), ns)
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy")
    await set_image(rkube, ns, "demo:2")
    await eventually(lambda: phase_is(rkube, ns, "Paused"), 60, "paused at setWeight 30")
    assert await canary_weight(rkube, ns) == 30

    await asyncio.sleep(3)  # the last writes' echoes settle
    before, reconciled = await _requests(port), await _reconciles(port)
    rv = (await get_rollout(rkube, ns))["metadata"]["resourceVersion"]
    await asyncio.sleep(10)  # five resyncs of a paused rollout
    after = await _requests(port)
    sent = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert not {k: v for k, v in sent.items() if not k.startswith("WATCH")}, \
        f"an idle controller sent {sent}"
    # a rollout at rest is passed by, but on every 4th pass (the safety net): before, each
    # of the five resyncs reconciled it in full
    assert reconciled > 0 and await _reconciles(port) - reconciled <= 2
    assert (await get_rollout(rkube, ns))["metadata"]["resourceVersion"] == rv, "status rewritten"

    # someone edits the weights by hand: the watch brings it, no resync needed
    vs = await rkube.get(VIRTUAL_SERVICES.path(ns, "demo"))
    vs["spec"]["http"][0]["route"][0]["weight"] = 10
    vs["spec"]["http"][0]["route"][1]["weight"] = 90
    await rkube.replace(VIRTUAL_SERVICES.path(ns, "demo"), vs)
    await eventually(lambda: _weight_is(rkube, ns, 30), 5, "the weight put back")


async def _weight_is(rkube: Kube, ns: str, w: int) -> bool:
    return await canary_weight(rkube, ns) == w


async def test_controllers_split_a_namespace_by_instance_id_each_with_its_own_lease(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    lease = f"e2e-{uuid.uuid4().hex[:8]}"
    elect = ("--leader-elect", "--lease-namespace=rollouts-system", f"--lease-name={lease}")
    for app, instance in (("shop", "a"), ("cart", "b"), ("free", None)):
        for obj in [*services(app), virtual_service(app)]:
            await apply(rkube, obj, ns)
        ro = rollout([{"setWeight": 50}, {"pause": {}}], app=app, replicas=1)
        if instance:
            ro["metadata"]["labels"] = {INSTANCE_ID_LABEL: instance}
        await apply(rkube, ro, ns)
    start_controller(*elect, "--instance-id=a")
    await eventually(lambda: phase_is(rkube, ns, "Healthy", "shop"), 60, "shop Healthy (instance a)")
    await asyncio.sleep(2)
    for other in ("cart", "free"):
        assert not (await get_rollout(rkube, ns, other)).get("status"), f"instance a acted on {other}"

    start_controller(*elect, "--instance-id=b")
    await eventually(lambda: phase_is(rkube, ns, "Healthy", "cart"), 60, "cart Healthy (instance b)")
    assert not (await get_rollout(rkube, ns, "free")).get("status")
    start_controller(*elect)  # no instance id: the unlabelled ones
    await eventually(lambda: phase_is(rkube, ns, "Healthy", "free"), 60, "free Healthy (no id)")
    # a canary of an instance's rollout runs under that instance
    await set_image(rkube, ns, "demo:2", name="cart")
    await eventually(lambda: phase_is(rkube, ns, "Paused", "cart"), 60, "cart paused at 50 %")

    leases = "/apis/coordination.k8s.io/v1/namespaces/rollouts-system/leases"
    for name in (lease, f"{lease}-a", f"{lease}-b"):
        held = (await rkube.get(f"{leases}/{name}"))["spec"].get("holderIdentity")
        assert held, f"Lease {name} not held"

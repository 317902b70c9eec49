"""A controller killed at any moment resumes correctly; with two, exactly one acts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import datetime

import httpx

from rollouts.kube.apply import apply
from rollouts.kube.client import Kube
from tests.e2e.judgekit import free_port
from tests.e2e.kit import (
    ControllerProcess,
    WeightRecorder,
    canary_weight,
    eventually,
    get_rollout,
    phase_is,
    rollout,
    services,
    set_image,
    virtual_service,
)

PAUSE_S = 20


async def _setup(rkube: Kube, ns: str, steps: list[dict[str, object]]) -> None:
    for obj in [*services(), virtual_service()]:
        await apply(rkube, obj, ns)
    await apply(rkube, rollout(steps, replicas=4, scaleDownDelaySeconds=2), ns)


async def test_sigkill_during_timed_pause_keeps_the_original_deadline(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    ctl = start_controller()
    await _setup(rkube, ns, [{"setWeight": 20}, {"pause": {"duration": f"{PAUSE_S}s"}},
                             {"setWeight": 40}, {"pause": {}}])
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy")
    rec = WeightRecorder(rkube, ns).start()
    await set_image(rkube, ns, "demo:2")

    async def pause_started() -> str | None:
        st = (await get_rollout(rkube, ns)).get("status") or {}
        pcs = st.get("pauseConditions") or []
        return pcs[0]["startTime"] if pcs and st.get("currentStepIndex") == 1 else None

    start_iso = await eventually(pause_started, 60, "the timed pause to start")
    # The deadline a user can read from status, mapped onto this process's monotonic clock.
    deadline_wall = datetime.fromisoformat(start_iso.replace("Z", "+00:00")).timestamp() + PAUSE_S
    deadline_mono = time.monotonic() + (deadline_wall - time.time())
    await asyncio.sleep(3)
    ctl.kill()  # SIGKILL: no cleanup, no lease release
    await asyncio.sleep(5)
    assert await canary_weight(rkube, ns) == 20
    start_controller()

    await eventually(lambda: _weight_is(rkube, ns, 40), PAUSE_S + 30, "weight 40 after the pause")
    await rec.stop()
    ended = rec.first_time(40)
    assert abs(ended - deadline_mono) <= 2.0, f"pause ended {ended - deadline_mono:+.1f}s off its deadline"
    assert rec.sequence() == [0, 20, 40]  # no step skipped or repeated
    st = (await get_rollout(rkube, ns))["status"]
    assert st["currentStepIndex"] == 3 and st["phase"] == "Paused"


async def _weight_is(rkube: Kube, ns: str, w: int) -> bool:
    return await canary_weight(rkube, ns) == w


async def _probe(port: int) -> tuple[int, dict[str, object], float] | None:
    """/readyz's status, its details and the leader gauge, from --metrics-listen."""
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=3) as c:
            r = await c.get("/readyz?verbose")
            text = (await c.get("/metrics")).text
    except httpx.HTTPError:
        return None
    gauge = next(float(x.split()[1]) for x in text.splitlines()
                 if x.startswith("rollouts_controller_leader "))
    return r.status_code, r.json(), gauge


async def test_two_controllers_with_leader_election_one_acts_and_the_other_takes_over(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    lease = f"e2e-{uuid.uuid4().hex[:8]}"
    args = ("--leader-elect", "--lease-namespace=rollouts-system", f"--lease-name={lease}")
    ports: dict[str, int] = {}
    ports["first"] = free_port()
    first = start_controller(*args, f"--metrics-listen=127.0.0.1:{ports['first']}")
    await asyncio.sleep(0.5)
    ports["second"] = free_port()
    second = start_controller(*args, f"--metrics-listen=127.0.0.1:{ports['second']}")
    await _setup(rkube, ns, [{"setWeight": 25}, {"pause": {}}, {"setWeight": 75}, {"pause": {}}])
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy")
    await set_image(rkube, ns, "demo:2")
    await eventually(lambda: _weight_is(rkube, ns, 25), 60, "weight 25")

    holder = (await rkube.get(f"/apis/coordination.k8s.io/v1/namespaces/rollouts-system/leases/{lease}"))
    identity = holder["spec"]["holderIdentity"]
    leader, standby = (first, second) if str(first.proc.pid) in identity else (second, first)  # type: ignore[union-attr]
    assert str(leader.proc.pid) in identity  # type: ignore[union-attr]
    assert "controller started" in leader.output()
    assert "controller started" not in standby.output()  # the standby never acted
    assert "rollouts.controller.reconciler" not in standby.output()
    # both replicas Ready (the standby serves the API and metrics); leadership told apart
    lport, sport = ((ports["first"], ports["second"]) if leader is first
                    else (ports["second"], ports["first"]))
    seen = await eventually(lambda: _probe(sport), 30, "the standby's /readyz")
    assert seen[0] == 200 and seen[1]["leader"] is False and seen[2] == 0.0, seen  # 503 before
    seen = await eventually(lambda: _probe(lport), 30, "the leader's /readyz")
    assert seen[0] == 200 and seen[1]["leader"] is True and seen[1]["active"] is True, seen
    assert seen[2] == 1.0, seen

    leader.kill()
    from rollouts.kube.signals import request_action

    await request_action(rkube, ns, "demo", "promote", user="e2e-user")
    # The standby takes over after the lease expires (15 s) and carries on.
    try:
        await eventually(lambda: _weight_is(rkube, ns, 75), 120, "weight 75 via the standby")
    except AssertionError as e:
        st = (await get_rollout(rkube, ns)).get("status")
        raise AssertionError(f"{e}\nstatus: {st}\nstandby log:\n{standby.output()[-3000:]}") from e
    assert "controller started" in standby.output()
    seen = await _probe(sport)
    assert seen is not None and seen[1]["leader"] is True and seen[2] == 1.0, seen
    await request_action(rkube, ns, "demo", "promote", user="e2e-user")
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "promotion by the standby")

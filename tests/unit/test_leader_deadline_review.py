"""A leader must know it lost the lease by the renew deadline, counted from the start of
its last successful write, whatever its pauses: a standby takes over one lease duration
after it saw that write, and any pause that runs past the deadline eats that margin."""

from __future__ import annotations

import asyncio
from typing import Any

from rollouts.kube.client import KubeError
from rollouts.kube.leader import LeaderElector
from tests.unit.test_leader import FakeLeases


class TimedLeases(FakeLeases):
    """Records when each write starts; a create takes ``slow_create`` seconds, and while
    ``fail`` is set every replace answers 500 at once."""

    def __init__(self, slow_create: float = 0.0) -> None:
        super().__init__()
        self.slow_create = slow_create
        self.fail = False
        self.writes: list[tuple[float, bool]] = []  # (start, succeeded)

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        start = asyncio.get_running_loop().time()
        await asyncio.sleep(self.slow_create)
        out = await super().create(path, body)
        self.writes.append((start, True))
        return out

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        start = asyncio.get_running_loop().time()
        if self.fail:
            self.writes.append((start, False))
            raise KubeError(500, "etcdserver: request timed out")
        out = await super().replace(path, body)
        self.writes.append((start, True))
        return out


async def _lost_after_last_success(kube: TimedLeases, e: LeaderElector,
                                   then: Any = None) -> float:
    task = asyncio.create_task(e.run())
    try:
        await asyncio.wait_for(e.is_leader.wait(), 3)
        if then is not None:
            await then()
        await asyncio.wait_for(e.lost.wait(), 5)
        lost_at = asyncio.get_running_loop().time()
        last_ok = max(t for t, ok in kube.writes if ok)
        return lost_at - last_ok
    finally:
        task.cancel()


async def test_a_slow_acquisition_is_given_up_by_the_renew_deadline_not_a_renew_period_later(
) -> None:
    # Review of issue 14's renew period: the acquisition took 0.7 s of a 1 s deadline; the
    # leader then slept a whole renew period (0.9 s) before looking again, and gave the
    # lease up 1.6 s after its write started - after the 1.5 s lease, when a standby may
    # already lead. It must know by the deadline (client-go stops at it).
    kube = TimedLeases(slow_create=0.7)
    e = LeaderElector(kube, "ns", "lock", identity="me",  # type: ignore[arg-type]
                      lease_duration=1.5, renew_deadline=1.0, retry_period=0.1,
                      renew_period=0.9)
    kube.fail = True  # no renewal succeeds after the acquisition
    held = await _lost_after_last_success(kube, e)
    assert held < 1.0 + 0.25, held  # (scheduling slack, still short of the 1.5 s lease)


async def test_a_failed_renewal_is_not_retried_past_the_renew_deadline() -> None:
    # renewed, then every renewal fails at once: retries at +0.5 and +0.95; the retry pause
    # (0.45 s) after the last one carried the leader to +1.4, past its deadline (1 s) and
    # the lease's end (1.25 s)
    kube = TimedLeases()
    e = LeaderElector(kube, "ns", "lock", identity="me",  # type: ignore[arg-type]
                      lease_duration=1.25, renew_deadline=1.0, retry_period=0.45,
                      renew_period=0.5)

    async def fail_from_now() -> None:
        await asyncio.sleep(0.05)
        kube.fail = True

    held = await _lost_after_last_success(kube, e, fail_from_now)
    assert held < 1.0 + 0.2, held

"""Leader election: a lease is judged by the local clock, and no renewal outlives the
renew deadline. A fake clock and an in-memory Lease stand in for time and the API server."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollouts.kube.client import KubeError
from rollouts.kube.leader import LeaderElector, LeaseObserver

PATH = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/lock"


def _micro(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeLeases:
    """One Lease with resourceVersion checks, as the API server keeps it."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.rv = 0
        self.hang = False  # the API server stops answering

    async def _maybe_hang(self) -> None:
        if self.hang:
            await asyncio.Event().wait()

    async def get_or_none(self, path: str) -> dict[str, Any] | None:
        await self._maybe_hang()
        return copy.deepcopy(self.lease)

    async def get(self, path: str) -> dict[str, Any]:
        await self._maybe_hang()
        assert self.lease is not None
        return copy.deepcopy(self.lease)

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        await self._maybe_hang()
        if self.lease is not None:
            raise KubeError(409, "already exists")
        self.rv += 1
        self.lease = {**copy.deepcopy(body), "metadata": {**body["metadata"],
                                                           "resourceVersion": str(self.rv)}}
        return copy.deepcopy(self.lease)

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        await self._maybe_hang()
        assert self.lease is not None
        if body["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise KubeError(409, "the object has been modified")
        self.rv += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(self.lease)

    def held_by(self, holder: str, renew: datetime) -> None:
        """Another controller (with its own clock) writes the lease."""
        self.rv += 1
        self.lease = {"metadata": {"name": "lock", "namespace": "ns",
                                   "resourceVersion": str(self.rv)},
                      "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                               "renewTime": _micro(renew), "acquireTime": _micro(renew),
                               "leaseTransitions": 0}}


def elector(kube: FakeLeases, now: list[float], **kw: Any) -> LeaderElector:
    return LeaderElector(kube, "ns", "lock", identity="me", clock=lambda: now[0],  # type: ignore[arg-type]
                         **kw)


async def test_a_dead_leader_with_a_clock_ahead_is_taken_over_after_the_lease_duration() -> None:
    # its renewTime lies an hour in the future: comparing it with our clock would wait an hour
    kube, now = FakeLeases(), [100.0]
    kube.held_by("other", datetime.now(UTC) + timedelta(hours=1))
    e = elector(kube, now)
    assert not await e.try_acquire_or_renew()
    now[0] += 14.9  # nothing changed for less than the lease: still theirs
    assert not await e.try_acquire_or_renew()
    now[0] += 0.2
    assert await e.try_acquire_or_renew()
    spec = kube.lease["spec"]  # type: ignore[index]
    assert spec["holderIdentity"] == "me" and spec["leaseTransitions"] == 1


async def test_a_live_leader_with_a_clock_behind_is_never_taken_over() -> None:
    # its renewTime lies an hour in the past, but it keeps renewing: it is alive
    kube, now = FakeLeases(), [100.0]
    e = elector(kube, now)
    for i in range(20):
        kube.held_by("other", datetime.now(UTC) - timedelta(hours=1) + timedelta(seconds=2 * i))
        assert not await e.try_acquire_or_renew()
        now[0] += 2
    assert kube.lease["spec"]["holderIdentity"] == "other"  # type: ignore[index]


async def test_a_released_lease_is_taken_at_once() -> None:
    kube, now = FakeLeases(), [100.0]
    kube.held_by("other", datetime.now(UTC))
    e = elector(kube, now)
    assert not await e.try_acquire_or_renew()
    kube.lease["spec"]["holderIdentity"] = None  # type: ignore[index]
    assert await e.try_acquire_or_renew()


def test_observer_counts_from_the_last_change_seen() -> None:
    o = LeaseObserver()
    spec = {"holderIdentity": "other", "renewTime": "t1", "leaseDurationSeconds": 10}
    o.observe(spec, 5.0)
    o.observe(dict(spec), 9.0)  # the same record again: no change
    assert o.held_by_other("me", 15, 14.9) and not o.held_by_other("me", 15, 15.0)
    o.observe({**spec, "renewTime": "t2"}, 12.0)
    assert o.held_by_other("me", 15, 21.9)
    assert not o.held_by_other("other", 15, 13.0)  # our own lease is never "someone else's"


def test_attempt_deadline_is_what_is_left_of_the_renew_deadline() -> None:
    e = elector(FakeLeases(), [0.0], lease_duration=15, renew_deadline=10, retry_period=2)
    assert e.attempt_deadline(None, 50.0) == 10  # a candidate
    e.is_leader.set()
    assert e.attempt_deadline(42.0, 50.0) == 2.0  # renewed 8 s ago
    assert e.attempt_deadline(30.0, 50.0) == 0.0


def test_inconsistent_timings_are_refused() -> None:
    with pytest.raises(ValueError):
        LeaderElector(FakeLeases(), "ns", lease_duration=15, renew_deadline=30)  # type: ignore[arg-type]


async def test_a_hanging_renewal_gives_the_lease_up_within_the_renew_deadline() -> None:
    kube = FakeLeases()
    e = LeaderElector(kube, "ns", "lock", identity="me",  # type: ignore[arg-type]
                      lease_duration=1.5, renew_deadline=0.8, retry_period=0.1)
    task = asyncio.create_task(e.run())
    try:
        await asyncio.wait_for(e.is_leader.wait(), 2)
        kube.hang = True  # every request from now on hangs forever
        loop = asyncio.get_running_loop()
        hung_at = loop.time()
        await asyncio.wait_for(e.lost.wait(), 3)
        # lost before the lease could expire for the others (1.5 s after the last renewal)
        assert loop.time() - hung_at < 1.5
        await asyncio.wait_for(task, 1)  # run() returns once lost
    finally:
        task.cancel()


class CountingLeases(FakeLeases):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    async def get_or_none(self, path: str) -> dict[str, Any] | None:
        self.requests.append("GET")
        return await super().get_or_none(path)

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.requests.append("PUT")
        return await super().replace(path, body)


async def test_a_leader_renews_with_one_request_and_reads_only_after_a_conflict() -> None:
    # Regression (issue 14): each renewal was a GET and a PUT, twice what client-go (Argo)
    # sends while idle.
    kube, now = CountingLeases(), [0.0]
    e = elector(kube, now)
    assert await e.try_acquire_or_renew()
    e.is_leader.set()
    kube.requests.clear()
    for i in range(5):
        now[0] = 2.0 * (i + 1)
        assert await e.try_acquire_or_renew()
    assert kube.requests == ["PUT"] * 5
    assert kube.lease is not None and kube.lease["spec"]["holderIdentity"] == "me"
    # someone else takes it (our cached version is stale): one failed PUT, then a GET
    kube.held_by("other", datetime.now(UTC))
    kube.requests.clear()
    assert not await e.try_acquire_or_renew()
    assert kube.requests == ["PUT", "GET"]


class FlakyLeases(CountingLeases):
    """Counts renewals by the clock of the event loop; the next ``fail`` of them answer 500."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = 0
        self.times: list[float] = []

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.times.append(asyncio.get_running_loop().time())
        if self.fail > 0:
            self.fail -= 1
            raise KubeError(500, "etcdserver: request timed out")
        return await super().replace(path, body)


async def test_a_settled_leader_renews_every_renew_period_and_retries_a_failure_sooner() -> None:
    # Regression (issue 14): a leader renewed every retry period (2 s), 30 requests a minute
    # that were all an idle controller sent; it now renews every renew period (5 s by
    # default), while a failed renewal is still retried every retry period.
    kube = FlakyLeases()
    e = LeaderElector(kube, "ns", "lock", identity="me",  # type: ignore[arg-type]
                      lease_duration=3, renew_deadline=2, retry_period=0.1, renew_period=0.5)
    task = asyncio.create_task(e.run())
    try:
        await asyncio.wait_for(e.is_leader.wait(), 2)
        await asyncio.sleep(1.6)
        settled = [b - a for a, b in zip(kube.times, kube.times[1:], strict=False)]
        assert settled and all(gap > 0.4 for gap in settled), settled
        assert len(kube.times) <= 4
        kube.fail, start = 1, len(kube.times)
        await asyncio.sleep(0.8)
        after = kube.times[start:]
        assert len(after) >= 2 and after[1] - after[0] < 0.3, after  # retried, not waited out
        assert e.is_leader.is_set() and not e.lost.is_set()
    finally:
        task.cancel()


def test_renew_period_defaults_to_5_s_and_must_fit_inside_the_deadline() -> None:
    assert LeaderElector(FakeLeases(), "ns").renew_period == 5  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LeaderElector(FakeLeases(), "ns", renew_period=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LeaderElector(FakeLeases(), "ns", renew_period=1)  # type: ignore[arg-type]


class SlowLeases(FakeLeases):
    """Every answer takes ``delay`` seconds (a loaded API server)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(self.delay)
        return await super().replace(path, body)


async def test_slow_renewals_keep_the_lease_when_they_fit_the_deadline() -> None:
    # Regression (review of the renew period): the period was counted from the end of a
    # renewal, so answers taking half the gap between period and deadline lost the lease.
    kube = SlowLeases(0.25)
    e = LeaderElector(kube, "ns", "lock", identity="me",  # type: ignore[arg-type]
                      lease_duration=1.5, renew_deadline=0.8, retry_period=0.1, renew_period=0.5)
    task = asyncio.create_task(e.run())
    try:
        await asyncio.wait_for(e.is_leader.wait(), 2)
        await asyncio.sleep(2.0)
        assert e.is_leader.is_set() and not e.lost.is_set()
    finally:
        task.cancel()

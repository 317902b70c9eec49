"""The client-side throttle's two lanes: requests of urgent reconciles (step work) get the
next token before queued normal ones, at the same rate and burst overall, and a normal
request never waits much longer than the aging bound."""

from __future__ import annotations

import asyncio

import pytest

from rollouts.kube.client import Kube
from rollouts.kube.ratelimit import TokenBucket, urgent_context, urgent_requests


class FakeTime:
    """A clock that moves only when the bucket sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        await asyncio.sleep(0)  # those just given a token run (and note the time) first
        self.now += s


def _bucket(t: FakeTime, qps: float = 10, burst: int = 2, max_normal_wait: float = 60.0) -> TokenBucket:
    return TokenBucket(qps=qps, burst=burst, clock=t.clock, sleep=t.sleep,
                       max_normal_wait=max_normal_wait)


async def _take(b: TokenBucket, name: str, order: list[tuple[str, float]], t: FakeTime,
                urgent: bool | None = None) -> None:
    await b.acquire(urgent)
    order.append((name, round(t.now, 6)))


async def test_urgent_requests_get_the_next_tokens_before_normal_ones_queued_earlier() -> None:
    t = FakeTime()
    b = _bucket(t, qps=10, burst=2)
    order: list[tuple[str, float]] = []
    tasks = [asyncio.create_task(_take(b, f"n{i}", order, t, urgent=False)) for i in range(4)]
    tasks += [asyncio.create_task(_take(b, f"u{i}", order, t, urgent=True)) for i in range(2)]
    await asyncio.gather(*tasks)
    # the burst goes at once (n0, n1); then one token each 0.1 s, urgent ones first
    assert order == [("n0", 0.0), ("n1", 0.0), ("u0", 0.1), ("u1", 0.2), ("n2", 0.3), ("n3", 0.4)]
    assert b.granted == [2, 2]


async def test_the_rate_and_burst_are_the_same_overall() -> None:
    t = FakeTime()
    b = _bucket(t, qps=5, burst=3)
    order: list[tuple[str, float]] = []
    tasks = [asyncio.create_task(_take(b, str(i), order, t, urgent=i % 2 == 0)) for i in range(13)]
    await asyncio.gather(*tasks)
    times = [at for _, at in order]
    assert times[:3] == [0.0, 0.0, 0.0]
    assert times[3:] == pytest.approx([0.2 * k for k in range(1, 11)])  # 5 a second after it
    t.now += 100.0  # a quiet period refills the bucket, never beyond the burst
    start = t.now
    order.clear()
    await asyncio.gather(*[asyncio.create_task(_take(b, str(i), order, t)) for i in range(4)])
    assert [at - start for _, at in order] == pytest.approx([0.0, 0.0, 0.0, 0.2])


async def test_a_normal_request_waiting_past_the_aging_bound_goes_before_urgent_ones() -> None:
    t = FakeTime()
    b = _bucket(t, qps=1, burst=1, max_normal_wait=1.5)
    await b.acquire()
    order: list[tuple[str, float]] = []
    tasks = [asyncio.create_task(_take(b, "n", order, t, urgent=False))]
    tasks += [asyncio.create_task(_take(b, f"u{i}", order, t, urgent=True)) for i in range(3)]
    await asyncio.gather(*tasks)
    # at 1 s "n" has waited 1 s: u0 first; at 2 s it has waited 2 s > 1.5 s: its turn
    assert order == [("u0", 1.0), ("n", 2.0), ("u1", 3.0), ("u2", 4.0)]
    assert b.aged_total == 1


async def test_the_lane_comes_from_the_reconcile_context() -> None:
    t = FakeTime()
    b = _bucket(t, qps=10, burst=1)
    await b.acquire()
    order: list[tuple[str, float]] = []

    async def reconcile(name: str, urgent: bool) -> None:
        with urgent_requests(urgent):
            await _take(b, name, order, t)

    async def renew_lease() -> None:
        await _take(b, "lease", order, t)

    tasks = [asyncio.create_task(reconcile("new", False)),
             asyncio.create_task(renew_lease(), context=urgent_context()),
             asyncio.create_task(reconcile("step", True))]
    await asyncio.gather(*tasks)
    assert [n for n, _ in order] == ["lease", "step", "new"]
    assert b.granted == [2, 1]
    with urgent_requests():
        pass
    await _take(b, "after", order, t)  # the context is restored: normal again
    assert b.granted == [2, 2]


async def test_a_cancelled_waiter_takes_no_token_from_the_others() -> None:
    t = FakeTime()
    b = _bucket(t, qps=10, burst=1)
    await b.acquire()
    order: list[tuple[str, float]] = []
    gone = asyncio.create_task(_take(b, "gone", order, t, urgent=True))
    stays = asyncio.create_task(_take(b, "stays", order, t, urgent=False))
    await asyncio.sleep(0)
    gone.cancel()
    await stays
    assert order == [("stays", 0.1)]
    assert b.waiting(True) == b.waiting(False) == 0


def test_events_keep_a_budget_of_their_own() -> None:
    kube = Kube(None, qps=40, burst=80)  # type: ignore[arg-type]  # no request is sent
    events = kube.with_own_limits()
    assert events.limiter is not None and kube.limiter is not None
    assert events.limiter is not kube.limiter
    assert (events.limiter.qps, events.limiter.burst) == (40, 80)


async def test_within_the_urgent_lane_the_reconcile_that_started_first_goes_first() -> None:
    # Regression (benchmark at N = 1,000 under --qps 40: "weight written -> next step
    # written" p99 2.6 s, p50 0.03 s): a pass that had written the VirtualService's weight
    # queued its status write behind every urgent request that arrived meanwhile.
    t = FakeTime()
    b = _bucket(t, qps=10, burst=1)
    order: list[tuple[str, float]] = []

    async def send(name: str, since: float) -> None:
        with urgent_requests(since=since):
            await _take(b, name, order, t)

    await b.acquire()  # the burst is spent: every request below waits
    later = [asyncio.create_task(send(f"later-{i}", since=0.0 + 0.01 * (i + 1))) for i in range(3)]
    await asyncio.sleep(0)
    first = asyncio.create_task(send("first-pass-status", since=0.0))  # arrives last
    await asyncio.gather(*later, first)
    assert [n for n, _ in order] == ["first-pass-status", "later-0", "later-1", "later-2"]
    assert [at for _, at in order] == [0.1, 0.2, 0.3, 0.4]  # the rate is unchanged


async def test_urgent_requests_without_a_start_go_in_arrival_order() -> None:
    t = FakeTime()
    b = _bucket(t, qps=10, burst=1)
    order: list[tuple[str, float]] = []
    await b.acquire()
    tasks = []
    for i in range(3):
        tasks.append(asyncio.create_task(_take(b, f"u{i}", order, t, urgent=True)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert [n for n, _ in order] == ["u0", "u1", "u2"]

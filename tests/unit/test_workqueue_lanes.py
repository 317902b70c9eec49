"""The work queue's two lanes: step work (urgent) before new work (normal), without ever
starving new work, and without giving up client-go's de-dup guarantees."""

from __future__ import annotations

import asyncio

from rollouts.kube.workqueue import WorkQueue


def _queue(now: list[float], max_normal_wait: float = 10.0) -> WorkQueue:
    return WorkQueue(max_normal_wait=max_normal_wait, clock=lambda: now[0])


async def _drain(q: WorkQueue) -> list[str]:
    out = []
    while len(q):
        key, _ = await q.get()
        q.done(key)
        out.append(key)
    return out


async def test_urgent_keys_are_served_before_normal_keys_queued_earlier() -> None:
    q = _queue([0.0])
    q.add("ns/new-1")
    q.add("ns/new-2")
    q.add("ns/in-step", urgent=True)
    q.add("ns/new-3")
    q.add("ns/timer", urgent=True)
    assert (q.depth(True), q.depth(False)) == (2, 3)
    assert await _drain(q) == ["ns/in-step", "ns/timer", "ns/new-1", "ns/new-2", "ns/new-3"]


async def test_a_normal_key_added_urgent_moves_up_once_and_an_urgent_one_stays() -> None:
    q = _queue([0.0])
    q.add("ns/a")
    q.add("ns/b")
    q.add("ns/c", urgent=True)
    q.add("ns/b", urgent=True)  # its pods became available: it moves up
    q.add("ns/c")  # a resync of a key already urgent: it stays urgent
    q.add("ns/b")
    assert len(q) == 3
    assert (q.depth(True), q.depth(False)) == (2, 1)
    # served once each, "b" not a second time from its old place in the normal lane
    assert await _drain(q) == ["ns/c", "ns/b", "ns/a"]
    assert len(q) == 0


async def test_a_key_is_queued_once_whatever_its_lanes() -> None:
    q = _queue([0.0])
    for urgent in (False, True, False, True):
        q.add("ns/a", urgent=urgent)
    assert len(q) == 1
    assert q.adds_total == 4
    assert await _drain(q) == ["ns/a"]


async def test_a_normal_key_waiting_past_the_aging_bound_goes_ahead_of_urgent_ones() -> None:
    now = [0.0]
    q = _queue(now, max_normal_wait=10.0)
    q.add("ns/new")
    now[0] = 5.0
    q.add("ns/step-1", urgent=True)
    assert (await q.get())[0] == "ns/step-1"  # "new" has waited 5 s: not yet
    q.done("ns/step-1")
    now[0] = 10.0
    q.add("ns/step-2", urgent=True)
    key, waited = await q.get()
    assert (key, waited) == ("ns/new", 10.0)  # 10 s: served next, before step-2
    assert q.aged_total == 1
    assert (await q.get())[0] == "ns/step-2"


async def test_aged_normal_keys_take_one_worker_at_a_time_from_step_work() -> None:
    now = [0.0]
    q = _queue(now, max_normal_wait=10.0)
    for i in range(3):
        q.add(f"ns/new-{i}")
    now[0] = 30.0  # all three aged
    for i in range(3):
        q.add(f"ns/step-{i}", urgent=True)
    got = [(await q.get())[0] for _ in range(3)]
    # one worker on the oldest aged key, the others on step work
    assert got == ["ns/new-0", "ns/step-0", "ns/step-1"]
    q.done("ns/step-0")
    assert (await q.get())[0] == "ns/step-2"
    q.done("ns/new-0")  # the aged one is done: the next aged one may go ahead
    q.add("ns/step-3", urgent=True)
    assert (await q.get())[0] == "ns/new-1"
    assert (await q.get())[0] == "ns/step-3"
    assert q.aged_total == 2


async def test_upgrading_a_key_restarts_nothing_and_the_aging_clock_is_per_lane_entry() -> None:
    now = [0.0]
    q = _queue(now, max_normal_wait=10.0)
    q.add("ns/a")
    now[0] = 8.0
    q.add("ns/b")
    now[0] = 12.0
    q.add("ns/u", urgent=True)
    # "a" is aged (12 s), "b" is not (4 s): a, then the urgent key, then b
    assert await _drain(q) == ["ns/a", "ns/u", "ns/b"]


async def test_urgent_only_workers_never_take_a_normal_key_even_an_aged_one() -> None:
    now = [0.0]
    q = _queue(now, max_normal_wait=1.0)
    q.add("ns/new")
    now[0] = 100.0
    q.add("ns/step", urgent=True)
    assert (await q.get(urgent_only=True))[0] == "ns/step"
    waiting = asyncio.create_task(q.get(urgent_only=True))
    await asyncio.sleep(0)
    assert not waiting.done()
    assert (await q.get())[0] == "ns/new"
    waiting.cancel()


async def test_a_key_in_process_is_never_handed_out_and_comes_back_in_the_better_lane() -> None:
    q = _queue([0.0])
    q.add("ns/a")
    key, _ = await q.get()
    assert not q.is_urgent(key)
    q.add("ns/a")  # changed while processing: not handed to a second worker
    q.add("ns/a", urgent=True)
    q.add("ns/b")
    second = asyncio.create_task(q.get())
    assert (await second)[0] == "ns/b"
    other = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not other.done()  # "a" waits for its worker to finish
    q.done("ns/a")
    got, _ = await other
    assert got == "ns/a" and q.is_urgent("ns/a")  # re-queued once, urgent
    q.done("ns/a")
    q.done("ns/b")
    assert len(q) == 0


async def test_timers_are_urgent_and_retries_keep_their_lane() -> None:
    q = _queue([0.0])
    q.add("ns/new")
    q.add_after("ns/paused", 0.01)  # a pause ends
    q.add_rate_limited("ns/failed-new", urgent=False)  # base delay 0.2 s
    q.add_rate_limited("ns/failed-step", urgent=True)
    await asyncio.sleep(0.3)
    assert (q.depth(True), q.depth(False)) == (2, 2)
    assert await _drain(q) == ["ns/paused", "ns/failed-step", "ns/new", "ns/failed-new"]


async def test_a_later_urgent_timer_makes_an_earlier_normal_one_urgent() -> None:
    q = _queue([0.0])
    q.add("ns/new")
    q.add_rate_limited("ns/x", urgent=False)  # 0.2 s, normal
    q.add_after("ns/x", 5.0)  # a later timer: the earlier wake-up serves it, urgent
    await asyncio.sleep(0.3)
    assert await _drain(q) == ["ns/x", "ns/new"]


async def test_every_key_finds_an_idle_worker_whoever_was_woken_for_it() -> None:
    """A worker woken for a normal key may take an urgent key added after: the normal key
    must still wake another idle worker, not wait for a busy one to finish."""
    q = _queue([0.0])
    w1 = asyncio.create_task(q.get())
    w2 = asyncio.create_task(q.get())
    u1 = asyncio.create_task(q.get(urgent_only=True))
    await asyncio.sleep(0)
    q.add("ns/new")  # wakes w1
    q.add("ns/step", urgent=True)  # wakes u1; w1 runs first and takes "step"
    for _ in range(5):
        await asyncio.sleep(0)
    got = {t.result()[0] for t in (w1, w2, u1) if t.done()}
    assert got == {"ns/new", "ns/step"}
    for t in (w1, w2, u1):
        t.cancel()


async def test_concurrent_workers_of_both_pools_never_hold_one_key_twice() -> None:
    q = WorkQueue()
    holding: set[str] = set()
    seen: list[str] = []

    async def worker(urgent_only: bool) -> None:
        while True:
            key, _ = await q.get(urgent_only=urgent_only)
            assert key not in holding
            holding.add(key)
            seen.append(key)
            await asyncio.sleep(0.001)
            holding.discard(key)
            q.done(key)

    workers = [asyncio.create_task(worker(i % 3 == 0)) for i in range(6)]
    for i in range(200):
        q.add(f"ns/r{i % 17}", urgent=i % 2 == 0)
        if i % 7 == 0:
            await asyncio.sleep(0)
    for _ in range(200):
        if not len(q) and not holding:
            break
        await asyncio.sleep(0.005)
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    assert not len(q) and not holding
    assert set(seen) == {f"ns/r{i}" for i in range(17)}

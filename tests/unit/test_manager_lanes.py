"""The manager routes each event to its lane, and a reconcile's requests follow its key's
lane: step work (a ReplicaSet, run or experiment event, an object read, a timer) is urgent;
a Rollout's own change and the resync are normal."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from rollouts.controller.manager import AR_PREFIX, EX_PREFIX, Controller, ControllerOptions
from rollouts.kube.ratelimit import requests_are_urgent


def _obj(name: str, owner_kind: str = "", owner: str = "") -> dict[str, Any]:
    md: dict[str, Any] = {"namespace": "ns", "name": name}
    if owner_kind:
        md["ownerReferences"] = [{"kind": owner_kind, "name": owner, "controller": True}]
    return {"metadata": md}


def _lanes(c: Controller) -> tuple[int, int]:
    return c.queue.depth(True), c.queue.depth(False)


async def test_a_rollouts_own_change_is_normal_and_its_replicasets_change_is_urgent() -> None:
    c = Controller(ControllerOptions())
    c._enqueue_rollout("MODIFIED", _obj("web"))
    c._enqueue_rollout("ADDED", _obj("api"))
    assert _lanes(c) == (0, 2)
    c._enqueue_owner("MODIFIED", _obj("web-6d4f", "Rollout", "web"))  # its pods are available
    assert _lanes(c) == (1, 1)
    key, _ = await c.queue.get()
    assert key == "ns/web" and c.queue.is_urgent(key)


async def test_runs_experiments_and_objects_read_are_step_work() -> None:
    c = Controller(ControllerOptions())
    c._enqueue_run("MODIFIED", _obj("web-1-2", "Rollout", "web"))
    c._enqueue_owner("MODIFIED", _obj("web-1-2", "Rollout", "web"))
    c._enqueue_experiment("MODIFIED", _obj("web-exp", "Rollout", "web"))
    c._enqueue_owner("MODIFIED", _obj("web-exp-rs", "Experiment", "web-exp"))
    c._enqueue_reader("ns/db")  # a Service or route it read changed
    assert _lanes(c) == (4, 0)
    got = set()
    while len(c.queue):
        key, _ = await c.queue.get(urgent_only=True)
        got.add(key)
    assert got == {AR_PREFIX + "ns/web-1-2", "ns/web", EX_PREFIX + "ns/web-exp", "ns/db"}


async def test_the_resync_is_normal() -> None:
    c = Controller(ControllerOptions(resync_seconds=0.01))
    informer = SimpleNamespace(values=lambda: [_obj("a"), _obj("b")],
                               resource=SimpleNamespace(plural="rollouts"))
    task = asyncio.create_task(c._resync(informer, EX_PREFIX))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    task.cancel()
    assert _lanes(c) == (0, 2)


class _Reconciler:
    def __init__(self, fail: set[str] | None = None, write_news: set[str] | None = None) -> None:
        self.seen: list[tuple[str, bool]] = []
        self.fail = fail or set()
        self.write_news = write_news or set()  # keys whose status write needs another look
        self.follow_up: set[str] = set()

    async def reconcile(self, key: str) -> float | None:
        self.seen.append((key, requests_are_urgent()))
        await asyncio.sleep(0)
        if key in self.write_news:
            self.write_news.discard(key)
            self.follow_up.add(key)
        if key in self.fail:
            raise RuntimeError("boom")
        return None


async def test_an_urgent_keys_requests_are_urgent_and_urgent_workers_leave_normal_keys() -> None:
    c = Controller(ControllerOptions())
    r = _Reconciler()
    urgent_worker = asyncio.create_task(c._worker(r, urgent_only=True))  # type: ignore[arg-type]
    c.queue.add("ns/new")
    c.queue.add("ns/step", urgent=True)
    for _ in range(10):
        await asyncio.sleep(0)
    assert r.seen == [("ns/step", True)]  # "new" waits for a worker of both lanes
    worker = asyncio.create_task(c._worker(r))  # type: ignore[arg-type]
    for _ in range(10):
        await asyncio.sleep(0)
    assert r.seen == [("ns/step", True), ("ns/new", False)]
    assert not requests_are_urgent()
    for t in (worker, urgent_worker):
        t.cancel()
    await asyncio.gather(worker, urgent_worker, return_exceptions=True)


async def test_a_failed_key_is_retried_in_its_own_lane() -> None:
    c = Controller(ControllerOptions())
    c.queue.base_delay = 0.01
    r = _Reconciler(fail={"ns/new", "ns/step"})
    c.queue.add("ns/new")
    c.queue.add("ns/step", urgent=True)
    worker = asyncio.create_task(c._worker(r))  # type: ignore[arg-type]
    for _ in range(100):
        await asyncio.sleep(0.005)
        if len(r.seen) >= 4:
            break
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    assert r.seen[:4] == [("ns/step", True), ("ns/new", False), ("ns/step", True), ("ns/new", False)]


async def test_an_informers_first_list_is_no_news_and_its_later_events_are() -> None:
    c = Controller(ControllerOptions())
    informer = SimpleNamespace(synced=asyncio.Event())
    handle = c._news_after_first_list(informer, c._enqueue_owner)  # type: ignore[arg-type]
    handle("ADDED", _obj("web-6d4f", "Rollout", "web"))  # a restarted controller lists
    assert _lanes(c) == (0, 1)
    informer.synced.set()
    handle("MODIFIED", _obj("api-7c9b", "Rollout", "api"))
    handle("MODIFIED", _obj("web-6d4f", "Rollout", "web"))
    assert _lanes(c) == (2, 0)


async def test_a_status_write_that_needs_another_look_is_followed_up_as_step_work() -> None:
    # Regression (benchmark at N = 1,000 with lanes): the follow-up of a status write came
    # as the write's echo, a Rollout change in the normal lane, behind all new work, so
    # "weight written -> next step written" grew from 1.1 s to 3.2 s at p99.
    c = Controller(ControllerOptions())
    r = _Reconciler(write_news={"ns/web"})
    c.queue.add("ns/other")  # new work waiting
    c.queue.add("ns/web")  # a spec change: normal
    worker = asyncio.create_task(c._worker(r))  # type: ignore[arg-type]
    for _ in range(20):
        await asyncio.sleep(0)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    assert r.seen[:3] == [("ns/other", False), ("ns/web", False), ("ns/web", True)]


async def test_a_persons_promote_is_step_work() -> None:
    # Regression: a promote or abort (recorded in status.pendingAction) went to the normal
    # lane with every spec change, so under a fleet-wide change it waited up to the aging
    # bound (10 s) behind new revisions.
    c = Controller(ControllerOptions())
    c._enqueue_rollout("MODIFIED", _obj("other"))
    promoted = _obj("web")
    promoted["status"] = {"pendingAction": {"action": "promote", "user": "ann"}}
    c._enqueue_rollout("MODIFIED", promoted)
    assert _lanes(c) == (1, 1)
    key, _ = await c.queue.get()
    assert key == "ns/web" and c.queue.is_urgent(key)


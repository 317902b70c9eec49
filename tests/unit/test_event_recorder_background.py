"""Events from a background task (issue 14): a reconcile never waits for them, they go out
in order, a full queue drops instead of blocking, and close() sends what is queued."""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Any

from rollouts.kube import events
from rollouts.kube.events import EventRecorder

ROLLOUT = {"apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
           "metadata": {"name": "shop", "namespace": "ns", "uid": "u"}}


class SlowEvents:
    def __init__(self) -> None:
        self.created: list[str] = []
        self.gate = asyncio.Event()

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        await self.gate.wait()  # an API server far behind
        self.created.append(body["reason"])
        return body

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return body


async def test_emit_returns_at_once_and_events_go_out_in_order() -> None:
    kube = SlowEvents()
    rec = EventRecorder(kube)  # type: ignore[arg-type]
    rec.start()
    async with asyncio.timeout(1):  # never waits for the API server
        for reason in ("RolloutUpdated", "RolloutStepCompleted", "RolloutPaused"):
            await rec.emit(ROLLOUT, "Normal", reason, reason)
    assert kube.created == []
    kube.gate.set()
    await rec.close()
    assert kube.created == ["RolloutUpdated", "RolloutStepCompleted", "RolloutPaused"]


async def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    kube = SlowEvents()
    rec = EventRecorder(kube, queue_size=2)  # type: ignore[arg-type]
    rec.start()
    async with asyncio.timeout(1):
        for i in range(5):
            await rec.emit(ROLLOUT, "Normal", f"R{i}", "m")
    assert rec.dropped >= 2
    await rec.close(drain_seconds=0.1)  # the server never answers: close still returns


async def test_without_start_each_event_is_sent_before_emit_returns() -> None:
    kube = SlowEvents()
    kube.gate.set()
    rec = EventRecorder(kube)  # type: ignore[arg-type]
    await rec.emit(ROLLOUT, "Warning", "RolloutAborted", "m")
    assert kube.created == ["RolloutAborted"]


class GatedPerObject:
    """An API server that answers Events of the object named ``slow`` only once opened."""

    def __init__(self) -> None:
        self.created: list[tuple[str, str, str]] = []  # (object, reason, firstTimestamp)
        self.gate = asyncio.Event()

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if body["involvedObject"]["name"] == "slow":
            await self.gate.wait()
        self.created.append((body["involvedObject"]["name"], body["reason"], body["firstTimestamp"]))
        return body

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return body


def _rollout(name: str) -> dict[str, Any]:
    return {**ROLLOUT, "metadata": {"name": name, "namespace": "ns", "uid": name}}


async def test_one_slow_object_does_not_hold_up_the_others_events() -> None:
    # Regression (benchmark at N = 5,000): one sender, one request at a time, fell behind a
    # fleet-wide change and the full queue dropped 3,966 Events.
    kube = GatedPerObject()
    rec = EventRecorder(kube)  # type: ignore[arg-type]
    rec.start()
    await rec.emit(_rollout("slow"), "Normal", "RolloutUpdated", "m")
    def shard(name: str) -> int:
        return zlib.crc32(f"ns/{name}".encode()) % events.SENDERS

    others = [n for n in (f"app-{i}" for i in range(40)) if shard(n) != shard("slow")][:5]
    for n in others:
        await rec.emit(_rollout(n), "Normal", "RolloutUpdated", "m")
    for _ in range(50):
        await asyncio.sleep(0)
    assert sorted(o for o, _, _ in kube.created) == sorted(others)  # sent while "slow" waits
    kube.gate.set()
    await rec.close()
    assert "slow" in [o for o, _, _ in kube.created]


async def test_an_event_is_stamped_when_it_was_emitted_not_when_it_was_sent(monkeypatch: Any) -> None:
    kube = GatedPerObject()
    rec = EventRecorder(kube)  # type: ignore[arg-type]
    rec.start()
    monkeypatch.setattr(events, "_now", lambda: "2026-12-01T00:00:00Z")
    await rec.emit(_rollout("slow"), "Normal", "RolloutPaused", "m")
    monkeypatch.setattr(events, "_now", lambda: "2026-12-01T00:05:00Z")  # the server caught up later
    kube.gate.set()
    await rec.close()
    assert kube.created == [("slow", "RolloutPaused", "2026-12-01T00:00:00Z")]


async def test_dropped_events_are_reported_in_one_line_not_one_each(caplog: Any) -> None:
    kube = SlowEvents()
    rec = EventRecorder(kube, queue_size=4, senders=1)  # type: ignore[arg-type]
    rec.start()
    with caplog.at_level(logging.WARNING, logger="rollouts.kube.events"):
        for i in range(50):
            await rec.emit(ROLLOUT, "Normal", f"R{i}", "m")
    assert rec.dropped >= 40
    assert len([r for r in caplog.records if "event queue full" in r.getMessage()]) == 1
    await rec.close(drain_seconds=0.1)

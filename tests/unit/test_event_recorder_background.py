"""Events from a background task (issue 14): a reconcile never waits for them, they go out
in order, a full queue drops instead of blocking, and close() sends what is queued."""

from __future__ import annotations

import asyncio
from typing import Any

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

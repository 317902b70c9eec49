"""Kubernetes Events on Rollouts: repeats are aggregated (count++), failures never raise."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
import zlib
from collections import OrderedDict
from datetime import UTC, datetime

from rollouts.kube.client import EVENTS, JSON, Kube, KubeError

log = logging.getLogger(__name__)
COMPONENT = "rollouts-controller"
# Concurrent senders: one request at a time each. A single one kept up with ~30 Events a
# second against a busy API server; a fleet-wide change at N = 5,000 makes more, and a
# full queue drops them.
SENDERS = 4
DROP_LOG_EVERY = 10.0  # seconds between two "event queue full" warnings

_Queued = tuple[JSON, str, str, str, str]  # object, type, reason, message, when emitted


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    """``start()`` sends Events from background tasks, as client-go's broadcaster does: a
    reconcile never waits for them, and with their own client-side limits they do not eat
    the request budget of the writes that move rollouts (at N = 1,000 they were 44 % of a
    change's requests). ``senders`` tasks send at once; an object's Events go out in order,
    each stamped with the time it was emitted. Without ``start()`` each Event is sent before
    ``emit`` returns."""

    def __init__(self, kube: Kube, cache_size: int = 4096, queue_size: int = 10_000,
                 senders: int = SENDERS) -> None:
        self.kube = kube
        self._seen: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self.cache_size = cache_size
        self.failures = 0
        self.dropped = 0
        self._dropped_since_log = 0
        self._last_drop_log = -math.inf
        # one queue per sender; an object's Events always go through the same one, in order
        self._queues: list[asyncio.Queue[_Queued]] = [
            asyncio.Queue(max(1, queue_size // senders)) for _ in range(max(1, senders))]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(q)) for q in self._queues]

    async def _run(self, queue: asyncio.Queue[_Queued]) -> None:
        while True:
            obj, etype, reason, message, at = await queue.get()
            try:
                await self._send(obj, etype, reason, message, at)
            finally:
                queue.task_done()

    async def close(self, drain_seconds: float = 2.0) -> None:
        """Send what is queued (for at most ``drain_seconds``), then stop."""
        if not self._tasks:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_seconds):
                for q in self._queues:
                    await q.join()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def emit(self, obj: JSON, etype: str, reason: str, message: str) -> None:
        if not self._tasks:
            await self._send(obj, etype, reason, message, _now())
            return
        md = obj.get("metadata") or {}
        shard = zlib.crc32(f"{md.get('namespace')}/{md.get('name')}".encode()) % len(self._queues)
        try:
            self._queues[shard].put_nowait((obj, etype, reason, message, _now()))
        except asyncio.QueueFull:  # the API server is far behind: never block a reconcile
            self.dropped += 1
            self._dropped_since_log += 1
            now = time.monotonic()
            if now - self._last_drop_log >= DROP_LOG_EVERY:  # one line, not one per Event
                log.warning("event queue full: dropped %d Event(s) since the last report (%d in "
                            "all), latest %s on %s", self._dropped_since_log, self.dropped,
                            reason, md.get("name"))
                self._last_drop_log, self._dropped_since_log = now, 0

    async def _send(self, obj: JSON, etype: str, reason: str, message: str, now: str) -> None:
        """Create the Event (or count a repeat), stamped ``now``: when it was emitted."""
        md = obj.get("metadata") or {}
        ns, name = md.get("namespace", "default"), md.get("name", "")
        key = hashlib.sha1(f"{ns}/{name}/{md.get('uid')}/{etype}/{reason}/{message}".encode()).hexdigest()
        try:
            if key in self._seen:
                ev_name, count = self._seen[key]
                try:
                    await self.kube.merge_patch(EVENTS.path(ns, ev_name),
                                                {"count": count + 1, "lastTimestamp": now})
                    self._seen[key] = (ev_name, count + 1)
                    self._seen.move_to_end(key)
                    return
                except KubeError as e:
                    if not e.not_found:
                        raise
            ev_name = f"{name}.{key[:16]}"
            body: JSON = {
                "metadata": {"name": ev_name, "namespace": ns},
                "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                                   "name": name, "namespace": ns, "uid": md.get("uid"),
                                   "resourceVersion": md.get("resourceVersion")},
                "reason": reason, "message": message[:1024], "type": etype,
                "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
                "reportingInstance": COMPONENT,
                "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            }
            try:
                await self.kube.create(EVENTS.path(ns), body)
                self._seen[key] = (ev_name, 1)
            except KubeError as e:
                if not e.conflict:
                    raise
                self._seen[key] = (ev_name, 1)
                await self.kube.merge_patch(EVENTS.path(ns, ev_name), {"lastTimestamp": now})
            while len(self._seen) > self.cache_size:
                self._seen.popitem(last=False)
        except Exception as e:  # an Event must never fail a reconcile
            self.failures += 1
            log.warning("could not record event %s on %s/%s: %s", reason, ns, name, e)

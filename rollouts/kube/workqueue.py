"""A de-duplicating work queue (client-go semantics): a key is queued at most once, never
processed by two workers at once, and re-queued after processing if it changed meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections import deque


class WorkQueue:
    def __init__(self, base_delay: float = 0.2, max_delay: float = 60.0) -> None:
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._failures: dict[str, int] = {}
        self._added_at: dict[str, float] = {}
        self._cond = asyncio.Condition()
        self.base_delay, self.max_delay = base_delay, max_delay
        self.adds_total = 0
        self.retries_total = 0
        self.shutting_down = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if self.shutting_down:
            return
        self.adds_total += 1
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._added_at.setdefault(key, time.monotonic())
        self._queue.append(key)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        old = self._timers.get(key)
        due = loop.time() + delay
        if old is not None and old.when() <= due:
            return  # an earlier wake-up is already scheduled
        if old is not None:
            old.cancel()
        self._timers[key] = loop.call_at(due, self._fire_timer, key)

    def _fire_timer(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: str) -> None:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.retries_total += 1
        self.add_after(key, min(self.base_delay * 2 ** n, self.max_delay))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    async def get(self) -> tuple[str, float]:
        """The next key and how long it waited in the queue (seconds)."""
        async with self._cond:
            while not self._queue:
                await self._cond.wait()
            key = self._queue.popleft()
        self._queued.discard(key)
        self._processing.add(key)
        waited = time.monotonic() - self._added_at.pop(key, time.monotonic())
        return key, waited

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def shutdown(self) -> None:
        self.shutting_down = True
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()

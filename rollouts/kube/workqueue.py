"""A de-duplicating work queue (client-go semantics): a key is queued at most once, never
processed by two workers at once, and re-queued after processing if it changed meanwhile.

Two lanes, so that rollouts already in a step finish it before new work starts (a whole
fleet's pod templates patched at once would otherwise put every rollout's "pods are
available, write the weight" behind every other rollout's new ReplicaSet):

- **urgent**: something a key owns or waits on changed (a ReplicaSet, AnalysisRun or
  Experiment event, an object it read), or one of its timers fired;
- **normal**: everything else (a Rollout's own spec change, the periodic resync).

``get()`` serves urgent keys first. A key queued normal and added urgent moves up; one
queued urgent stays urgent. So that normal keys cannot starve, a normal key that has waited
``max_normal_wait`` seconds or more is served before urgent keys, oldest first, but by one
worker at a time: while one such key is being processed, the other workers stay on step
work, so a backlog of aged new work slows step work down by one worker at most.
``get(urgent_only=True)``, for workers kept for the urgent lane, never takes a normal key.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Final

# How long a normal key may wait before it goes ahead of urgent ones. Long enough that a
# short burst of step work (a few seconds of events) is served first; short enough that a
# stream of urgent keys delays a spec change by seconds, not for ever.
MAX_NORMAL_WAIT: Final = 10.0


class WorkQueue:
    def __init__(self, base_delay: float = 0.2, max_delay: float = 60.0, *,
                 max_normal_wait: float = MAX_NORMAL_WAIT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # entries (key, seq); an entry is live while _queued[key] == (lane, seq): an upgrade
        # leaves the old entry behind instead of searching the deque for it
        self._lanes: tuple[deque[tuple[str, int]], deque[tuple[str, int]]] = (deque(), deque())
        self._entered: dict[str, float] = {}  # when a queued normal key entered its lane
        self._queued: dict[str, tuple[bool, int]] = {}  # key -> (urgent, seq)
        self._seq = 0
        self._processing: dict[str, bool] = {}  # key -> served from the urgent lane
        self._aged: str | None = None  # the normal key being processed ahead of urgent ones
        self._dirty: dict[str, bool] = {}  # added while processing -> urgent
        self._timers: dict[str, tuple[asyncio.TimerHandle, bool]] = {}
        self._failures: dict[str, int] = {}
        self._added_at: dict[str, float] = {}
        self._any_waiters: deque[asyncio.Future[None]] = deque()  # workers of both lanes
        self._urgent_waiters: deque[asyncio.Future[None]] = deque()  # urgent-only workers
        self.base_delay, self.max_delay = base_delay, max_delay
        self.max_normal_wait = max_normal_wait
        self._clock = clock
        self.adds_total = 0
        self.retries_total = 0
        self.aged_total = 0  # normal keys served ahead of urgent ones (the aging bound)
        self.shutting_down = False

    def __len__(self) -> int:
        return len(self._queued)

    def depth(self, urgent: bool) -> int:
        """Keys waiting in one lane."""
        return sum(1 for u, _ in self._queued.values() if u == urgent)

    def add(self, key: str, *, urgent: bool = False) -> None:
        if self.shutting_down:
            return
        self.adds_total += 1
        self._enqueue(key, urgent)

    def _enqueue(self, key: str, urgent: bool) -> None:
        if key in self._processing:
            self._dirty[key] = self._dirty.get(key, False) or urgent
            return
        queued = self._queued.get(key)
        if queued is not None and (queued[0] or not urgent):
            return  # already queued in this lane or a better one
        self._seq += 1
        self._queued[key] = (urgent, self._seq)
        self._lanes[0 if urgent else 1].append((key, self._seq))
        now = self._clock()
        if urgent:
            self._entered.pop(key, None)
        else:
            self._entered[key] = now
        self._added_at.setdefault(key, now)
        self._wake(urgent)

    def _wake(self, urgent: bool) -> None:
        """Wake one idle worker that may take a key of this lane (it looks again: another
        worker may have taken the key meanwhile)."""
        pools = (self._urgent_waiters, self._any_waiters) if urgent else (self._any_waiters,)
        for pool in pools:
            while pool:
                fut = pool.popleft()
                if not fut.done():
                    fut.set_result(None)
                    return

    def add_after(self, key: str, delay: float, *, urgent: bool = True) -> None:
        """A timer (a pause, an analysis interval, a deadline): urgent unless told."""
        if delay <= 0:
            self.add(key, urgent=urgent)
            return
        loop = asyncio.get_running_loop()
        old = self._timers.get(key)
        due = loop.time() + delay
        if old is not None and old[0].when() <= due:
            if urgent and not old[1]:  # the earlier wake-up serves this one too
                self._timers[key] = (old[0], True)
            return
        if old is not None:
            old[0].cancel()
            urgent = urgent or old[1]
        self._timers[key] = (loop.call_at(due, self._fire_timer, key), urgent)

    def _fire_timer(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        self.add(key, urgent=timer[1] if timer is not None else True)

    def add_rate_limited(self, key: str, *, urgent: bool = False) -> None:
        """A retry after an error, in the lane the failed key was served from."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.retries_total += 1
        self.add_after(key, min(self.base_delay * 2 ** n, self.max_delay), urgent=urgent)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def _head(self, urgent: bool) -> tuple[str, int] | None:
        """The first live entry of a lane (stale ones, left by upgrades, are dropped)."""
        lane = self._lanes[0 if urgent else 1]
        while lane:
            key, seq = lane[0]
            if self._queued.get(key) == (urgent, seq):
                return key, seq
            lane.popleft()
        return None

    def _pick(self, urgent_only: bool) -> tuple[str, bool] | None:
        urgent = self._head(True)
        normal = None if urgent_only else self._head(False)
        if normal is not None and (
                urgent is None
                or (self._aged is None
                    and self._clock() - self._entered.get(normal[0], 0.0) >= self.max_normal_wait)):
            if urgent is not None:
                self.aged_total += 1
                self._aged = normal[0]
            self._lanes[1].popleft()
            return normal[0], False
        if urgent is not None:
            self._lanes[0].popleft()
            return urgent[0], True
        return None

    async def get(self, *, urgent_only: bool = False) -> tuple[str, float]:
        """The next key and how long it waited in the queue (seconds). ``urgent_only``:
        only a key of the urgent lane (workers kept for step work)."""
        while True:
            picked = self._pick(urgent_only)
            if picked is not None:
                break
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            (self._urgent_waiters if urgent_only else self._any_waiters).append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                self._wake_for_rest()  # a wake-up this worker got is not lost
                raise
        key, urgent = picked
        del self._queued[key]
        self._entered.pop(key, None)
        self._processing[key] = urgent
        waited = self._clock() - self._added_at.pop(key, self._clock())
        # This worker may have been woken for another key than the one it took (an urgent
        # key added after it was woken for a normal one): whatever is left gets a worker.
        self._wake_for_rest()
        return key, waited

    def _wake_for_rest(self) -> None:
        if self._head(True) is not None:
            self._wake(True)
        if self._head(False) is not None:
            self._wake(False)

    def is_urgent(self, key: str) -> bool:
        """Whether a key being processed was served from the urgent lane."""
        return self._processing.get(key, False)

    def done(self, key: str) -> None:
        self._processing.pop(key, None)
        if self._aged == key:
            self._aged = None
        if key in self._dirty and not self.shutting_down:
            self._enqueue(key, self._dirty.pop(key))  # counted when added during processing

    def shutdown(self) -> None:
        self.shutting_down = True
        for t, _ in self._timers.values():
            t.cancel()
        self._timers.clear()

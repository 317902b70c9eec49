"""Client-side throttling of API requests (client-go's --qps/--burst): a token bucket.

A burst of ``burst`` requests goes out at once; beyond it requests wait so the rate stays
at ``qps``. Watches are long-lived and do not count.

Waiting requests queue in two FIFO lanes. Those sent for the reconcile of an urgent key
(step work of a rollout already in flight: see ``rollouts.kube.workqueue``) are marked by
``urgent_requests()`` and get the next token before normal ones, so that a fleet's worth of
new ReplicaSets does not stand between a rollout and its next weight. The rate and burst
are the same overall. A normal request that has waited ``max_normal_wait`` seconds goes
first: a stream of urgent requests slows normal work down but never stops it.

Within the urgent lane, requests of the reconcile that started first go first (``since``):
a pass that has written a VirtualService's weight sends its status write next, before
passes that started after it, so a step is written soon after its traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Final

# At most one normal request waits per busy normal worker (and a few of the controller's
# own loops), so serving an aged one first takes little from the urgent lane.
MAX_NORMAL_WAIT: Final = 2.0

_ONE: Final = 1 - 1e-9  # a whole token, give or take rounding (0.2 s x 5/s is not always 1)

_URGENT: contextvars.ContextVar[bool] = contextvars.ContextVar("rollouts_urgent_requests",
                                                               default=False)
# when the reconcile sending the request started (the urgent lane's order); None: the request
# itself is the start
_SINCE: contextvars.ContextVar[float | None] = contextvars.ContextVar("rollouts_requests_since",
                                                                     default=None)


@contextlib.contextmanager
def urgent_requests(urgent: bool = True, *, since: float | None = None) -> Iterator[None]:
    """Requests sent inside (by this task, and tasks it creates meanwhile) use the urgent
    lane of every TokenBucket; ``since`` (a TokenBucket clock reading, when the work they
    serve started) orders them within the urgent lane, earliest first."""
    token, since_token = _URGENT.set(urgent), _SINCE.set(since)
    try:
        yield
    finally:
        _SINCE.reset(since_token)
        _URGENT.reset(token)


def requests_are_urgent() -> bool:
    """Whether requests sent from here now use the urgent lane."""
    return _URGENT.get()


def urgent_context() -> contextvars.Context:
    """A context for a task whose requests are all urgent (the Lease renewals)."""
    ctx = contextvars.copy_context()
    ctx.run(_URGENT.set, True)
    return ctx


class TokenBucket:
    def __init__(self, qps: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 max_normal_wait: float = MAX_NORMAL_WAIT) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be > 0 and burst >= 1")
        self.qps, self.burst = qps, burst
        self.max_normal_wait = max_normal_wait
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._at = clock()
        # urgent waiters: a heap of (when their work started, arrival, future); normal
        # waiters: (future, when it started waiting) in arrival order
        self._urgent: list[tuple[float, int, asyncio.Future[None]]] = []
        self._normal: deque[tuple[asyncio.Future[None], float]] = deque()
        self._arrival = itertools.count()
        self._pump: asyncio.Task[None] | None = None
        self.granted = [0, 0]  # tokens given after a wait, per lane (urgent, normal)
        self.aged_total = 0  # normal waiters served ahead of urgent ones

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.qps)
        self._at = now

    def waiting(self, urgent: bool) -> int:
        if urgent:
            return sum(1 for _, _, f in self._urgent if not f.done())
        return sum(1 for f, _ in self._normal if not f.done())

    async def acquire(self, urgent: bool | None = None) -> None:
        """Wait for a token. ``urgent``: the lane (default: ``urgent_requests()``'s)."""
        if urgent is None:
            urgent = _URGENT.get()
        self._refill()
        if not self._urgent and not self._normal and self._tokens >= _ONE:
            self._tokens -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        now = self._clock()
        if urgent:
            since = _SINCE.get()
            heapq.heappush(self._urgent, (now if since is None else since, next(self._arrival), fut))
        else:
            self._normal.append((fut, now))
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._serve())
        await fut

    def _next(self) -> tuple[asyncio.Future[None], int] | None:
        """The waiter the next token goes to: urgent first, unless the oldest normal one
        has waited too long."""
        self._prune()
        urgent, normal = self._urgent, self._normal
        if normal and (not urgent or self._clock() - normal[0][1] >= self.max_normal_wait):
            if urgent:
                self.aged_total += 1
            return normal.popleft()[0], 1
        if urgent:
            return heapq.heappop(urgent)[2], 0
        return None

    async def _serve(self) -> None:
        """Hand tokens to waiters as the bucket refills, one task for the whole bucket."""
        while True:
            self._refill()
            while self._tokens >= _ONE:
                nxt = self._next()
                if nxt is None:
                    return
                fut, lane = nxt
                fut.set_result(None)
                self._tokens -= 1
                self.granted[lane] += 1
            self._prune()
            if not self._urgent and not self._normal:
                return
            await self._sleep((1 - self._tokens) / self.qps)

    def _prune(self) -> None:
        while self._urgent and self._urgent[0][2].done():  # given up (cancelled)
            heapq.heappop(self._urgent)
        while self._normal and self._normal[0][0].done():
            self._normal.popleft()

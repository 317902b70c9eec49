"""Client-side throttling of API requests (client-go's --qps/--burst): a token bucket.

A burst of ``burst`` requests goes out at once; beyond it requests wait so the rate stays
at ``qps``. Watches are long-lived and do not count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    def __init__(self, qps: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be > 0 and burst >= 1")
        self.qps, self.burst = qps, burst
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._at = clock()

    def _take(self) -> float:
        """Take a token; the seconds the caller must wait for it (0: at once)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.qps)
        self._at = now
        self._tokens -= 1  # may go negative: callers queue behind each other in order
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    async def acquire(self) -> None:
        wait = self._take()
        if wait > 0:
            await self._sleep(wait)

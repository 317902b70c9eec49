"""List + watch into a local store of raw objects, with handlers that only enqueue keys."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rollouts.kube.client import JSON, Kube, KubeError, Resource

log = logging.getLogger(__name__)

Handler = Callable[[str, JSON], None]  # (event type, object)


def key_of(obj: JSON) -> str:
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{ns}/{md.get('name')}" if ns else str(md.get("name"))


class ReconnectBackoff:
    """How long to wait before the next list/watch attempt after a failure.

    An API server restart drops every watch; it is usually back within seconds, and every
    second we wait is a second a promote or a new image waits. So the first retry comes at
    once (sub-second), the next ones double, and the wait never exceeds ``cap`` (plus at
    most ``jitter`` of it, spreading the reconnects of many controllers): whenever the
    server comes back, we are back within ``cap * (1 + jitter)``. After ``reset_after``
    seconds without a failure the schedule starts over.
    """

    def __init__(self, first: float = 0.1, factor: float = 2.0, cap: float = 5.0,
                 jitter: float = 0.2, reset_after: float = 30.0,
                 rand: Callable[[], float] = random.random) -> None:
        self.first, self.factor, self.cap, self.jitter = first, factor, cap, jitter
        self.reset_after = reset_after
        self._rand = rand
        self._failures = 0
        self._last_failure: float | None = None

    def failed(self, now: float) -> float:
        """Record a failure at ``now`` (monotonic seconds); the seconds to wait."""
        if self._last_failure is not None and now - self._last_failure > self.reset_after:
            self._failures = 0
        self._last_failure = now
        base = min(self.first * self.factor ** self._failures, self.cap)
        self._failures += 1
        return base * (1 + self.jitter * self._rand())

    def succeeded(self) -> None:
        """A watch delivered a line: the next failure starts the schedule over."""
        self._failures = 0
        self._last_failure = None


class Informer:
    def __init__(self, kube: Kube, resource: Resource, namespace: str | None = None,
                 label_selector: str | None = None, watch_timeout: int = 240,
                 backoff: ReconnectBackoff | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.kube = kube
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.watch_timeout = watch_timeout
        self.backoff = backoff or ReconnectBackoff()
        self._sleep = sleep
        self.store: dict[str, JSON] = {}
        self.synced = asyncio.Event()
        self._handlers: list[Handler] = []

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def _fire(self, kind: str, obj: JSON) -> None:
        for h in self._handlers:
            try:
                h(kind, obj)
            except Exception:  # a handler bug must not stop the watch
                log.exception("informer handler failed for %s", key_of(obj))

    async def _relist(self) -> str:
        path = self.resource.path(self.namespace)
        data = await self.kube.get_list(path, labelSelector=self.label_selector)
        fresh = {key_of(o): o for o in data.get("items") or []}
        for k, old in list(self.store.items()):
            if k not in fresh:
                del self.store[k]
                self._fire("DELETED", old)
        for k, o in fresh.items():
            prev = self.store.get(k)
            self.store[k] = o
            if prev is None or prev.get("metadata", {}).get("resourceVersion") != \
                    o.get("metadata", {}).get("resourceVersion"):
                self._fire("ADDED" if prev is None else "MODIFIED", o)
        self.synced.set()
        return str(data.get("metadata", {}).get("resourceVersion", ""))

    async def run(self) -> None:
        """List, then watch from the list's resourceVersion; after any failure wait (see
        ReconnectBackoff) and list again, so changes made while the watch was down are seen
        as events (a relist fires MODIFIED/DELETED for whatever differs from the store)."""
        rv = ""
        while True:
            try:
                if not rv:
                    # no reset here: a list that works before a watch that fails at once
                    # (a verb forbidden) must still back off, not relist in a hot loop
                    rv = await self._relist()
                started, events = time.monotonic(), 0
                async for ev in self.kube.watch(self.resource.path(self.namespace), rv,
                                                self.watch_timeout,
                                                labelSelector=self.label_selector):
                    self.backoff.succeeded()  # connected: a later break starts from `first`
                    events += 1
                    obj: JSON = ev.get("object") or {}
                    new_rv = obj.get("metadata", {}).get("resourceVersion")
                    if new_rv:
                        rv = str(new_rv)
                    kind = ev.get("type")
                    if kind == "BOOKMARK":
                        continue
                    k = key_of(obj)
                    if kind == "DELETED":
                        self.store.pop(k, None)
                    else:
                        self.store[k] = obj
                    self._fire(str(kind), obj)
                if not events and time.monotonic() - started < 1:
                    # ended at once without a line (a server shutting down): never spin
                    await self._sleep(self.backoff.failed(time.monotonic()))
            except asyncio.CancelledError:
                raise
            except KubeError as e:
                rv = ""
                if e.gone:
                    log.info("watch of %s expired (410): relisting", self.resource.plural)
                    continue
                delay = self.backoff.failed(time.monotonic())
                log.warning("watch of %s failed: %s; relisting in %.1fs", self.resource.plural,
                            e, delay)
                await self._sleep(delay)
            except Exception as e:  # network errors, timeouts, bad JSON
                rv = ""
                delay = self.backoff.failed(time.monotonic())
                log.warning("watch of %s broke (%s: %s): relisting in %.1fs", self.resource.plural,
                            type(e).__name__, e, delay)
                await self._sleep(delay)

    def get(self, key: str) -> JSON | None:
        return self.store.get(key)

    def values(self) -> list[Any]:
        return list(self.store.values())

"""List + watch into a local store of raw objects, with handlers that only enqueue keys."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

from rollouts.kube.client import JSON, Kube, KubeError, Resource

log = logging.getLogger(__name__)

Handler = Callable[[str, JSON], None]  # (event type, object)


def key_of(obj: JSON) -> str:
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{ns}/{md.get('name')}" if ns else str(md.get("name"))


class Informer:
    def __init__(self, kube: Kube, resource: Resource, namespace: str | None = None,
                 label_selector: str | None = None, watch_timeout: int = 240) -> None:
        self.kube = kube
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.watch_timeout = watch_timeout
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
        backoff = 0.5
        rv = ""
        while True:
            try:
                if not rv:
                    rv = await self._relist()
                async for ev in self.kube.watch(self.resource.path(self.namespace), rv,
                                                self.watch_timeout,
                                                labelSelector=self.label_selector):
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
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except KubeError as e:
                if e.gone:
                    log.info("watch of %s expired (410): relisting", self.resource.plural)
                else:
                    log.warning("watch of %s failed: %s", self.resource.plural, e)
                    await asyncio.sleep(backoff + random.random() * backoff)
                    backoff = min(backoff * 2, 30)
                rv = ""
            except Exception as e:  # network errors, timeouts, bad JSON
                log.warning("watch of %s broke (%s: %s): relisting", self.resource.plural,
                            type(e).__name__, e)
                await asyncio.sleep(backoff + random.random() * backoff)
                backoff = min(backoff * 2, 30)
                rv = ""

    def get(self, key: str) -> JSON | None:
        return self.store.get(key)

    def values(self) -> list[Any]:
        return list(self.store.values())

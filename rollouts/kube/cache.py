"""Reads of objects by path, served from shared informers started on first use.

The reconciler reads Services, router objects (VirtualServices, Ingresses, routes, ...),
AnalysisTemplates and Deployments by name on every reconcile. Sending each read to the
API server made an idle fleet cost a request per object per resync; here the first read
of a kind starts one watch of that kind (in the controller's namespace scope) and later
reads come from its store. A kind the API server does not serve (a mesh that is not
installed) or that RBAC does not let us list falls back to direct reads and is tried
again later.

Whoever reads during a reconcile is recorded (``reading_for``): a change to an object a
Rollout read enqueues that Rollout, so an object edited by hand is put back at once
instead of at the next resync. A write of this process goes into the store at once
(read-your-writes) and its echo through the watch enqueues nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote

from rollouts.kube.client import JSON, Kube, KubeError, Resource
from rollouts.kube.informer import Informer

log = logging.getLogger(__name__)

# the Rollout key ("ns/name") a reconcile reads for; set by the reconciler
reading_for: contextvars.ContextVar[str | None] = contextvars.ContextVar("reading_for", default=None)



class Reader(Protocol):
    """What reads an object by path: ``Kube`` (the API server) or ``SharedCache``."""

    async def get_or_none(self, path: str) -> JSON | None: ...


SYNC_TIMEOUT = 10.0  # seconds a first read waits for a new informer before reading directly
RETRY_UNAVAILABLE = 300.0  # seconds before a kind that could not be listed is tried again


@dataclass(frozen=True)
class ObjectRef:
    resource: Resource
    namespace: str | None
    name: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


def parse_path(path: str) -> ObjectRef | None:
    """``/api/v1[/namespaces/NS]/PLURAL/NAME`` or ``/apis/G/V[/namespaces/NS]/PLURAL/NAME``
    (an object, not a subresource); None for anything else."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    ns: str | None = None
    if len(rest) == 4 and rest[0] == "namespaces":
        ns, rest = rest[1], rest[2:]
    if len(rest) != 2 or rest[0] == "namespaces":
        return None
    return ObjectRef(Resource(group, version, rest[0], namespaced=ns is not None),
                     unquote(ns) if ns else None, unquote(rest[1]))


class _Kind:
    def __init__(self, informer: Informer, task: asyncio.Task[None]) -> None:
        self.informer = informer
        self.task = task
        self.unavailable_until = 0.0


class SharedCache:
    """``get_or_none(path)`` as on ``Kube``, from informers where it can. ``on_change`` gets
    the key of each Rollout that read an object which then changed (not by us)."""

    def __init__(self, kube: Kube, namespace: str | None = None,
                 on_change: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kube = kube
        self.namespace = namespace
        self.on_change = on_change
        self._clock = clock
        self._kinds: dict[tuple[str, str], _Kind] = {}
        self._lock = asyncio.Lock()
        # (group/plural, object key) -> Rollout keys that read it; and the reverse
        self._readers: dict[tuple[str, str], set[str]] = {}
        self._read_by: dict[str, set[tuple[str, str]]] = {}
        self._read_directly: set[str] = set()  # readers with a read the stores did not serve

    # --- dependencies -------------------------------------------------------------------

    def begin(self, rollout_key: str) -> None:
        """A reconcile of ``rollout_key`` starts: it will record what it reads anew."""
        self._read_directly.discard(rollout_key)
        for dep in self._read_by.pop(rollout_key, set()):
            readers = self._readers.get(dep)
            if readers is not None:
                readers.discard(rollout_key)
                if not readers:
                    del self._readers[dep]

    def forget(self, rollout_key: str) -> None:
        self.begin(rollout_key)

    def _record(self, ref: ObjectRef) -> None:
        reader = reading_for.get()
        if reader is None:
            return
        dep = (_kind_id(ref.resource), ref.key)
        self._readers.setdefault(dep, set()).add(reader)
        self._read_by.setdefault(reader, set()).add(dep)

    def versions(self, rollout_key: str) -> tuple[tuple[str, str, str | None], ...] | None:
        """The resourceVersion of each object the last reconcile of ``rollout_key`` read
        (None for one that was absent), as the stores hold them now; None when one of its
        reads did not come from a store (a direct read is not followed)."""
        if rollout_key in self._read_directly:
            return None
        kinds = {_kind_id(k.informer.resource): k.informer for k in self._kinds.values()}
        out: list[tuple[str, str, str | None]] = []
        for kind_id, key in sorted(self._read_by.get(rollout_key, ())):
            informer = kinds.get(kind_id)
            if informer is None or not informer.synced.is_set():
                return None
            obj = informer.get(key)
            rv = (obj.get("metadata") or {}).get("resourceVersion") if obj is not None else None
            out.append((kind_id, key, None if rv is None else str(rv)))
        return tuple(out)

    def _handler(self, informer: Informer, kind_id: str) -> Callable[[str, JSON], None]:
        def changed(_type: str, obj: JSON) -> None:
            # the first list is no news to anyone: whoever reads gets the store after it
            if informer.synced.is_set():
                self._changed(kind_id, obj)
        return changed

    def _changed(self, kind_id: str, obj: JSON) -> None:
        md = obj.get("metadata") or {}
        ns = md.get("namespace")
        key = f"{ns}/{md.get('name')}" if ns else str(md.get("name"))
        if self.on_change is None:
            return
        for reader in sorted(self._readers.get((kind_id, key), ())):
            self.on_change(reader)

    # --- reads and writes ---------------------------------------------------------------

    async def get_or_none(self, path: str) -> JSON | None:
        ref = parse_path(path)
        if ref is None or (self.namespace is not None and ref.resource.namespaced
                           and ref.namespace != self.namespace):
            return await self._direct(path)
        self._record(ref)
        informer = await self._informer(ref.resource)
        if informer is None:
            return await self._direct(path)
        obj = informer.get(ref.key)
        # a copy, as a GET would give: callers may edit what they read to build a write,
        # and the store is shared by every reconcile
        return copy.deepcopy(obj) if obj is not None else None

    async def _direct(self, path: str) -> JSON | None:
        reader = reading_for.get()
        if reader is not None:
            self._read_directly.add(reader)
        return await self.kube.get_or_none(path)

    async def get(self, path: str) -> JSON:
        obj = await self.get_or_none(path)
        if obj is None:
            raise KubeError(404, f"{path} not found")
        return obj

    def wrote(self, path: str, obj: JSON | None, *, own: bool = True) -> None:
        """The object a write of this process returned (None: deleted): into the store.
        ``own=False``: an object read directly (newer than the store, not our change)."""
        ref = parse_path(path)
        if ref is None:
            return
        kind = self._kinds.get(_kind_key(ref.resource))
        if kind is None or not kind.informer.synced.is_set():
            return
        if obj is None:
            kind.informer.forget(ref.key)
        elif isinstance(obj, dict) and obj.get("metadata"):
            kind.informer.wrote(obj, own=own)

    async def _informer(self, resource: Resource) -> Informer | None:
        k = _kind_key(resource)
        kind = self._kinds.get(k)
        if kind is not None and kind.informer.synced.is_set():
            return kind.informer
        async with self._lock:
            kind = self._kinds.get(k)
            if kind is None or (kind.task.done() and self._clock() >= kind.unavailable_until):
                informer = Informer(self.kube, resource, self.namespace if resource.namespaced else None)
                kid = _kind_id(resource)
                informer.add_handler(self._handler(informer, kid), skip_own_writes=True)
                kind = _Kind(informer, asyncio.create_task(informer.run()))
                self._kinds[k] = kind
        if kind.task.done():
            return None  # could not be listed: direct reads until it is tried again
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SYNC_TIMEOUT):
                await kind.informer.first_list_done.wait()
        if kind.informer.synced.is_set():
            return kind.informer
        err = kind.informer.first_list_error
        if isinstance(err, KubeError) and err.status in (403, 404) and not kind.task.done():
            # not served (no such CRD) or not allowed: stop listing; read directly meanwhile
            log.info("no watch of %s (%s): reading it directly for %.0f s", resource.plural,
                     err, RETRY_UNAVAILABLE)
            kind.task.cancel()
            kind.unavailable_until = self._clock() + RETRY_UNAVAILABLE
        return None

    async def close(self) -> None:
        for kind in self._kinds.values():
            kind.task.cancel()
        await asyncio.gather(*(k.task for k in self._kinds.values()), return_exceptions=True)

    def sizes(self) -> dict[str, int]:
        """Objects held per kind (for metrics and the benchmark)."""
        return {_kind_id(k.informer.resource): len(k.informer.store) for k in self._kinds.values()}


def _kind_key(resource: Resource) -> tuple[str, str]:
    return (resource.group, resource.plural)


def _kind_id(resource: Resource) -> str:
    return f"{resource.group}/{resource.plural}" if resource.group else resource.plural

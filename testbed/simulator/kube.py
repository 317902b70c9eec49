"""List+watch of raw objects (dicts) from the API server.

A small reflector per resource: list, then watch from the list's resourceVersion,
resume after a server-side timeout, relist on 410 Gone, back off and retry on any
other error. Raw JSON via ``_preload_content=False`` avoids the typed models, which
are slow to build and would be turned back into dicts anyway.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client

log = logging.getLogger(__name__)

Obj = Mapping[str, Any]
ListCall = Callable[..., Awaitable[Any]]
Key = tuple[str, str]

WATCH_TIMEOUT_S = 240  # server-side; the watch then resumes from the last resourceVersion


class Gone(Exception):
    """The resourceVersion is too old (HTTP 410): relist."""


class HttpError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


@dataclass(frozen=True)
class Resource:
    """How to list one kind: candidate (group, version) pairs are tried in order."""

    kind: str
    plural: str
    versions: tuple[tuple[str, str], ...]  # ("", "v1") = core group


VIRTUAL_SERVICE = Resource(
    "VirtualService",
    "virtualservices",
    (("networking.istio.io", "v1"), ("networking.istio.io", "v1beta1")),
)
DESTINATION_RULE = Resource(
    "DestinationRule",
    "destinationrules",
    (("networking.istio.io", "v1"), ("networking.istio.io", "v1beta1")),
)
INGRESS = Resource("Ingress", "ingresses", (("networking.k8s.io", "v1"),))
# every served version lists every TrafficSplit (the test bed's CRD serves v1alpha1..3)
TRAFFIC_SPLIT = Resource(
    "TrafficSplit",
    "trafficsplits",
    (("split.smi-spec.io", "v1alpha1"), ("split.smi-spec.io", "v1alpha2"), ("split.smi-spec.io", "v1alpha3")),
)
HTTP_ROUTE = Resource(
    "HTTPRoute",
    "httproutes",
    (("gateway.networking.k8s.io", "v1"), ("gateway.networking.k8s.io", "v1beta1")),
)
SERVICE = Resource("Service", "services", (("", "v1"),))
POD = Resource("Pod", "pods", (("", "v1"),))


def list_call(api: client.ApiClient, res: Resource, version: tuple[str, str], ns: str | None) -> ListCall:
    """The generated client method that lists (or watches) ``res``, as raw JSON."""
    group, ver = version
    if group:
        custom = client.CustomObjectsApi(api)
        if ns:
            return lambda **kw: custom.list_namespaced_custom_object(group, ver, ns, res.plural, **kw)
        return lambda **kw: custom.list_cluster_custom_object(group, ver, res.plural, **kw)
    core = client.CoreV1Api(api)
    name = {"pods": "pod", "services": "service"}[res.plural]
    if ns:
        method = getattr(core, f"list_namespaced_{name}")
        return lambda **kw: method(ns, **kw)
    method = getattr(core, f"list_{name}_for_all_namespaces")
    return lambda **kw: method(**kw)


def obj_key(obj: Obj) -> Key:
    m = obj.get("metadata") or {}
    return str(m.get("namespace") or ""), str(m.get("name") or "")


class Reflector:
    """Keeps ``store`` equal to the server's objects of one kind; calls ``on_change``."""

    def __init__(
        self,
        api: client.ApiClient,
        res: Resource,
        namespace: str | None,
        store: dict[Key, Obj],
        on_change: Callable[[], None],
        initial_backoff: float = 0.2,
    ) -> None:
        self.api = api
        self.initial_backoff = initial_backoff
        self.res = res
        self.namespace = namespace
        self.store = store
        self.on_change = on_change
        self.synced = asyncio.Event()
        self._version_index = 0
        self._resource_version = ""
        self._said_missing = False

    @property
    def version(self) -> tuple[str, str]:
        return self.res.versions[self._version_index]

    async def run(self) -> None:
        backoff = self.initial_backoff
        while True:
            try:
                await self._list()
                backoff = self.initial_backoff
                while True:
                    await self._watch()
            except asyncio.CancelledError:
                raise
            except Gone:
                log.info("%s: resourceVersion expired (410), relisting", self.res.kind)
                continue
            except HttpError as e:
                if e.status == 404 and self._version_index + 1 < len(self.res.versions):
                    self._version_index += 1
                    log.info("%s: trying %s/%s", self.res.kind, *self.version)
                    continue
                if e.status == 404:
                    # CRD not installed (yet): count as synced-empty, keep polling. Said once:
                    # a cluster without that router's CRDs is normal, not a fault.
                    self._version_index = 0
                    if self.store:
                        self.store.clear()
                        self.on_change()
                    self.synced.set()
                    level = logging.DEBUG if self._said_missing else logging.INFO
                    self._said_missing = True
                    log.log(level, "%s: not served (CRD not installed?); retrying", self.res.kind)
                else:
                    log.warning("%s: %s; retrying in %.1fs", self.res.kind, e, backoff)
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as e:
                log.warning("%s: %r; retrying in %.1fs", self.res.kind, e, backoff)
            except Exception:
                log.exception("%s: unexpected error; retrying in %.1fs", self.res.kind, backoff)
            await asyncio.sleep(backoff * (1 + random.random() / 2))
            backoff = min(backoff * 2, 10.0)

    def _call(self) -> ListCall:
        return list_call(self.api, self.res, self.version, self.namespace)

    async def _list(self) -> None:
        resp = await self._call()(_preload_content=False, _request_timeout=aiohttp.ClientTimeout(total=60))
        async with resp:
            body = await resp.read()
            if resp.status != 200:
                raise HttpError(resp.status, body.decode(errors="replace"))
        data = json.loads(body)
        fresh = {obj_key(o): o for o in data.get("items") or []}
        self.store.clear()
        self.store.update(fresh)
        self._resource_version = str((data.get("metadata") or {}).get("resourceVersion") or "")
        log.debug("%s: listed %d at rv %s", self.res.kind, len(fresh), self._resource_version)
        self.synced.set()
        self.on_change()

    async def _watch(self) -> None:
        resp = await self._call()(
            watch=True,
            resource_version=self._resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_TIMEOUT_S,
            _preload_content=False,
            _request_timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=10, sock_read=WATCH_TIMEOUT_S + 30
            ),
        )
        async with resp:
            if resp.status == 410:
                raise Gone()
            if resp.status != 200:
                raise HttpError(resp.status, (await resp.read()).decode(errors="replace"))
            async for line in resp.content:
                if line.strip():
                    self._apply(json.loads(line))

    def _apply(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise HttpError(int(obj.get("code") or 500), str(obj.get("message")))
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            self._resource_version = str(rv)
        if kind == "BOOKMARK":
            return
        key = obj_key(obj)
        if kind == "DELETED":
            self.store.pop(key, None)
        elif kind in ("ADDED", "MODIFIED"):
            self.store[key] = obj
        else:
            return
        self.on_change()

"""A small raw-JSON client over kubernetes_asyncio's ApiClient.

Typed model deserialisation is slow and the controller reads only a few fields, so every
call here sends and returns plain dicts. Errors become ``KubeError`` with the API
server's status code and message, whatever the verb.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from kubernetes_asyncio import client, config

from rollouts.kube.ratelimit import TokenBucket, requests_are_urgent

JSON = dict[str, Any]


class KubeError(Exception):
    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.body = body

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def gone(self) -> bool:
        return self.status == 410


def error_of(status: int, raw: bytes, reason: str | None, path: str) -> KubeError:
    """The KubeError of a failed answer. The body is a Status object as a rule, but not
    always: a path the API server does not serve (a CRD not installed) answers 404 with
    the text "404 page not found", and a proxy in between may answer HTML."""
    try:
        data: Any = json.loads(raw) if raw else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        msg = str(data.get("message") or "")
    else:
        msg = raw[:300].decode(errors="replace").strip()
    if status == 404 and not isinstance(data, dict):
        msg = f"the API server does not serve {path.split('?')[0]}" + (
            " (is the CRD installed? kubectl apply -f crds/)" if path.startswith("/apis/") else "")
    return KubeError(status, msg or reason or "", data)


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core API
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None,
             sub: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
        if sub:
            base += f"/{sub}"
        return base


def plural_of(path: str) -> str:
    """The resource plural a request path names (``.../services/web/status`` -> services)."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    parts = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if len(parts) >= 2 and parts[0] == "namespaces":
        parts = parts[2:] or ["namespaces"]
    return parts[0] if parts else ""


NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
SERVICES = Resource("", "v1", "services")
PODS = Resource("", "v1", "pods")
EVENTS = Resource("", "v1", "events")
SECRETS = Resource("", "v1", "secrets")
REPLICASETS = Resource("apps", "v1", "replicasets")
DEPLOYMENTS = Resource("apps", "v1", "deployments")
LEASES = Resource("coordination.k8s.io", "v1", "leases")
VIRTUAL_SERVICES = Resource("networking.istio.io", "v1", "virtualservices")
DESTINATION_RULES = Resource("networking.istio.io", "v1", "destinationrules")


async def make_api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """In-cluster config when running in a pod and no kubeconfig is given, else the file."""
    cfg = client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]  # sync
    else:
        await config.load_kube_config(config_file=kubeconfig, context=context,
                                      client_configuration=cfg)
    if cfg.proxy is None:
        cfg.proxy = env_proxy_for(cfg.host or "")
    api = client.ApiClient(cfg)
    await _without_env_lookups(api)
    return api


def env_proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (HTTPS_PROXY/HTTP_PROXY, NO_PROXY), looked
    up once: the HTTP client would otherwise read the environment and ~/.netrc per request."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if not host or urllib.request.proxy_bypass(host):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(urllib.parse.urlsplit(url).scheme or "https")


async def _without_env_lookups(api: client.ApiClient) -> None:
    """kubernetes_asyncio's session has ``trust_env=True``: every request then looks up
    proxies and ~/.netrc (a tenth of a busy controller's CPU in a profile). The proxy is
    resolved once above; the session is rebuilt on the same TLS settings without it."""
    rest = api.rest_client
    old: aiohttp.ClientSession = rest.pool_manager
    connector = old.connector
    assert connector is not None
    ssl_ctx = getattr(connector, "_ssl", True)  # the context built from the kubeconfig
    limit = connector.limit
    await old.close()
    rest.pool_manager = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ssl=ssl_ctx, keepalive_timeout=60),
        trust_env=False, read_bufsize=2**21)


@dataclass(frozen=True)
class RequestTiming:
    """Where one request's time went: waiting for a token of the client-side throttle, then
    for the API server's answer (client-go's rate_limiter_duration / request_duration)."""

    verb: str
    resource: str
    urgent: bool  # sent in the throttle's urgent lane
    throttled: float
    answered: float


class Kube:
    """``qps``/``burst``: client-side throttling (client-go's flags; None: none). ``on_request``
    is told each request's verb, resource plural and status code (metrics, benchmarks);
    ``on_timing`` its :class:`RequestTiming`."""

    def __init__(self, api: client.ApiClient, timeout: float = 30.0, *,
                 qps: float | None = None, burst: int = 1,
                 on_request: Callable[[str, str, int], None] | None = None,
                 on_timing: Callable[[RequestTiming], None] | None = None) -> None:
        self.api = api
        self.timeout = timeout
        self.limiter = TokenBucket(qps, max(burst, 1)) if qps else None
        self.on_request = on_request
        self.on_timing = on_timing

    def with_own_limits(self) -> Kube:
        """The same connection with its own --qps/--burst budget (client-go gives its Event
        broadcaster a client of its own): one kind of request cannot starve the others."""
        other = Kube(self.api, self.timeout, on_request=self.on_request, on_timing=self.on_timing)
        if self.limiter is not None:
            other.limiter = TokenBucket(self.limiter.qps, self.limiter.burst)
        return other

    async def request(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                      body: Any = None, content_type: str = "application/json",
                      timeout: float | None = None) -> Any:
        asked = time.monotonic()
        if self.limiter is not None:
            await self.limiter.acquire()
        sent = time.monotonic()
        try:
            resp = await self._send(method, path, query, body, content_type, timeout or self.timeout)
        except aiohttp.ServerDisconnectedError:
            # A pooled keep-alive connection the API server closed (it restarted): no answer.
            # The HTTP client repeats only idempotent verbs itself; the writes here are safe
            # to repeat once too (a create that landed answers 409, a guarded patch fails its
            # test, a status write carries its resourceVersion).
            resp = await self._send(method, path, query, body, content_type, timeout or self.timeout)
        try:
            raw = await resp.read()
        finally:
            resp.release()
        answered = time.monotonic() - sent
        resource = plural_of(path)
        if self.on_request is not None:
            self.on_request(method, resource, resp.status)
        if self.on_timing is not None:
            self.on_timing(RequestTiming(method, resource, requests_are_urgent(),
                                         throttled=sent - asked, answered=answered))
        if not 200 <= resp.status <= 299:
            raise error_of(resp.status, raw, resp.reason, path)
        return json.loads(raw) if raw else None

    async def _send(self, method: str, path: str, query: dict[str, Any] | None, body: Any,
                    content_type: str, timeout: float) -> Any:
        q = [(k, str(v).lower() if isinstance(v, bool) else str(v))
             for k, v in (query or {}).items() if v is not None]
        return await self.api.call_api(
            path, method, query_params=q,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body, auth_settings=["BearerToken"], _preload_content=False,
            _return_http_data_only=True, _request_timeout=timeout,
        )

    async def get(self, path: str) -> JSON:
        result: JSON = await self.request("GET", path)
        return result

    async def get_or_none(self, path: str) -> JSON | None:
        try:
            return await self.get(path)
        except KubeError as e:
            if e.not_found:
                return None
            raise

    async def get_list(self, path: str, **query: Any) -> JSON:
        result: JSON = await self.request("GET", path, query=query)
        return result

    async def create(self, path: str, body: JSON, **query: Any) -> JSON:
        result: JSON = await self.request("POST", path, body=body, query=query)
        return result

    async def replace(self, path: str, body: JSON, **query: Any) -> JSON:
        result: JSON = await self.request("PUT", path, body=body, query=query)
        return result

    async def merge_patch(self, path: str, body: JSON, **query: Any) -> JSON:
        result: JSON = await self.request("PATCH", path, body=body, query=query,
                                          content_type="application/merge-patch+json")
        return result

    async def json_patch(self, path: str, ops: list[JSON], **query: Any) -> JSON:
        result: JSON = await self.request("PATCH", path, body=ops, query=query,
                                          content_type="application/json-patch+json")
        return result

    async def delete(self, path: str, **query: Any) -> None:
        try:
            await self.request("DELETE", path, query=query)
        except KubeError as e:
            if not e.not_found:
                raise

    async def watch(self, path: str, resource_version: str, timeout_seconds: int = 240,
                    **query: Any) -> AsyncIterator[JSON]:
        """Yields watch events; raises KubeError(410) when the version is too old.

        The server ends the watch after ``timeout_seconds``; the client gives up a little
        later and also when no line (not even a bookmark) arrives for that long, so a
        silently dead connection cannot hang the informer.
        """
        q = {**query, "watch": "true", "resourceVersion": resource_version,
             "timeoutSeconds": timeout_seconds, "allowWatchBookmarks": "true"}
        resp = await self._send("GET", path, q, None, "application/json", timeout_seconds + 30)
        if self.on_request is not None:
            self.on_request("WATCH", plural_of(path), resp.status)
        try:
            if resp.status != 200:
                raise error_of(resp.status, await resp.read(), resp.reason, path)
            while True:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that arrives as the line does, and a stopped informer (or a
                # controller shutting down) then watches on forever
                async with asyncio.timeout(timeout_seconds + 30):
                    line = await resp.content.readline()
                if not line:
                    return
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    obj = event.get("object") or {}
                    raise KubeError(int(obj.get("code") or 500), obj.get("message", ""), obj)
                yield event
        finally:
            resp.release()

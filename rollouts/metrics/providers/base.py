"""What every provider shares: the ``Reading`` it returns, ``ProviderError`` (an Error
measurement with the upstream message), the ``Context`` the controller gives it (Secrets,
namespaces, times) and one HTTP call with the error handling every SaaS API needs."""

from __future__ import annotations

import asyncio
import base64
import binascii
import html
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from rollouts.api.duration import parse_duration


class ProviderError(Exception):
    pass


@dataclass
class Reading:
    value: Any
    metadata: dict[str, str] = field(default_factory=dict)
    # Set by the judge provider: its phase and explanation decide the measurement.
    phase: str | None = None
    message: str | None = None
    snapshot: dict[str, Any] | None = None
    evidence: dict[str, Any] | None = None


# (namespace, name) -> the Secret's decoded data, None when there is no such Secret;
# raises ProviderError when it cannot be read (RBAC, API server down).
SecretReader = Callable[[str, str], Awaitable[dict[str, str] | None]]


@dataclass(frozen=True)
class Context:
    """What a measurement may need besides its spec. Secrets are read as Argo reads them:
    from the controller's own namespace unless a provider says otherwise."""

    secrets: SecretReader | None = None
    controller_namespace: str = "rollouts-system"
    namespace: str = ""  # the AnalysisRun's
    now: float = field(default_factory=time.time)
    run_started: float | None = None
    interval: float | None = None  # the metric's interval (Kayenta's default window)

    async def secret(self, name: str, *, namespace: str | None = None,
                     what: str) -> dict[str, str]:
        ns = namespace or self.controller_namespace
        if self.secrets is None:
            raise ProviderError(f"{what}: Secrets cannot be read here (Secret {ns}/{name})")
        data = await self.secrets(ns, name)
        if data is None:
            raise ProviderError(f"{what}: Secret {ns}/{name} not found")
        return data


def decode_secret_data(data: dict[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (data or {}).items():
        try:
            out[str(k)] = base64.b64decode(str(v)).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue  # not text: no provider key is binary
    return out


def required_keys(data: dict[str, str], keys: tuple[str, ...], *, secret: str,
                  what: str) -> list[str]:
    missing = [k for k in keys if not data.get(k, "").strip()]
    if missing:
        raise ProviderError(f"{what}: Secret {secret} has no {', '.join(repr(k) for k in missing)}")
    return [data[k].strip() for k in keys]


def timeout_of(spec: dict[str, Any], default: float = 30.0, key: str = "timeout") -> float:
    t = spec.get(key)
    if t is None or t == "":
        return default
    try:
        return max(1.0, parse_duration(t if isinstance(t, str) else f"{t}s"))
    except ValueError as e:
        raise ProviderError(f"{key}: {e}") from e


def headers_of(spec: dict[str, Any]) -> dict[str, str]:
    hs = spec.get("headers") or []
    if not isinstance(hs, list):
        raise ProviderError("headers must be a list of {key, value}")
    return {str(h.get("key")): str(h.get("value")) for h in hs if isinstance(h, dict)}


def need_str(spec: dict[str, Any], key: str, prefix: str) -> str:
    v = spec.get(key)
    if not isinstance(v, str) or not v.strip():
        raise ProviderError(f"{prefix}.{key} is required")
    return v.strip()


def server_message(text: str) -> str:
    """The message a vendor puts in its error body (JSON shapes differ), else the text."""
    if text.lstrip().startswith("<"):  # AWS's XML ErrorResponse
        code, msg = re.search(r"<Code>(.*?)</Code>", text), re.search(r"<Message>(.*?)</Message>", text)
        if code or msg:
            return ": ".join(html.unescape(m.group(1)) for m in (code, msg) if m)[:300]
    try:
        doc = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300]
    found: list[str] = []

    def walk(d: Any) -> None:
        if isinstance(d, str):
            found.append(d)
        elif isinstance(d, list):
            for x in d:
                walk(x)
        elif isinstance(d, dict):
            for k in ("message", "errors", "error", "Message", "errorMessage", "status"):
                if k in d:
                    walk(d[k])
                    if found:
                        return
    walk(doc)
    return "; ".join(found)[:300] if found else " ".join(text.split())[:300]


MAX_RETRY_AFTER_S = 5.0


async def http_call(what: str, method: str, url: str, *, timeout: float,
                    headers: dict[str, str] | None = None, params: Any = None,
                    json_body: Any = None, content: str | bytes | None = None,
                    auth: tuple[str, str] | None = None) -> httpx.Response:
    """One request; an HTTP error, a refused connection or a timeout is a ProviderError
    naming ``what`` and the server's own message. A 429 whose Retry-After fits in the
    timeout is retried once, after that delay; otherwise it is an Error measurement and
    the metric's interval paces the next try."""
    deadline = time.monotonic() + timeout
    host = urlsplit(url).netloc or url
    for attempt in (1, 2):
        try:
            async with httpx.AsyncClient(timeout=max(0.5, deadline - time.monotonic())) as http:
                r = await http.request(method, url, headers=headers, params=params,
                                       json=json_body, content=content, auth=auth)
        except httpx.TimeoutException as e:
            raise ProviderError(f"{what} at {host} did not answer within {timeout:g}s") from e
        except httpx.HTTPError as e:
            raise ProviderError(f"{what} at {host} unreachable: {type(e).__name__}: {e}") from e
        if r.status_code == 429:
            # Retry-After, or Datadog's X-RateLimit-Reset (seconds until the window resets)
            wait = _retry_after(r.headers.get("Retry-After") or r.headers.get("X-RateLimit-Reset"))
            if attempt == 1 and wait is not None and wait <= MAX_RETRY_AFTER_S \
                    and time.monotonic() + wait < deadline:
                await asyncio.sleep(wait)
                continue
            hint = r.headers.get("Retry-After") or r.headers.get("X-RateLimit-Reset")
            after = f", retry after {hint}s" if hint else ""
            raise ProviderError(f"{what} rate-limited the query (HTTP 429{after}): "
                                f"{server_message(r.text)}")
        if r.status_code in (401, 403):
            raise ProviderError(f"{what} rejected the credentials (HTTP {r.status_code}): "
                                f"{server_message(r.text)}")
        if r.status_code >= 300:
            raise ProviderError(f"{what} answered HTTP {r.status_code}: {server_message(r.text)}")
        return r
    raise AssertionError("unreachable")


def _retry_after(v: str | None) -> float | None:
    try:
        return max(0.0, float(v)) if v is not None else None
    except ValueError:
        return None  # an HTTP date: too far to wait inside one measurement


def json_of(r: httpx.Response, what: str) -> Any:
    try:
        return r.json()
    except ValueError as e:
        raise ProviderError(f"{what} did not return JSON: {' '.join(r.text.split())[:120]!r}") from e


def number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise ProviderError(f"{what}: {v!r} is not a number")
    try:
        return float(v)
    except ValueError as e:
        raise ProviderError(f"{what}: {v!r} is not a number") from e


def one_or_list(values: list[float]) -> float | list[float]:
    """Argo's shape: one series is a number, several a list."""
    return values[0] if len(values) == 1 else values

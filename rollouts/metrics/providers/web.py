"""Argo's ``web`` provider: one HTTP request, a value picked from its JSON by ``jsonPath``."""

from __future__ import annotations

import re
import ssl
from typing import Any

import httpx

from rollouts.metrics.providers.base import ProviderError, Reading
from rollouts.metrics.providers.base import headers_of as _headers
from rollouts.metrics.providers.base import timeout_of as _timeout

_JSONPATH = re.compile(r"^\{?\$((?:\.[A-Za-z0-9_\-]+|\[\d+\])*)\}?$")


def json_path(doc: Any, path: str) -> Any:
    """The JSONPath subset Argo's web provider examples use: ``{$.a.b[0]}``."""
    m = _JSONPATH.match(path.strip())
    if not m:
        raise ProviderError(f"unsupported jsonPath {path!r}: use {{$.field.sub[0]}}")
    cur = doc
    for part in re.findall(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]", m.group(1)):
        key, idx = part
        try:
            cur = cur[key] if key else cur[int(idx)]
        except (KeyError, IndexError, TypeError) as e:
            raise ProviderError(f"jsonPath {path!r} not found in the response") from e
    return cur


def _untrusted_certificate(e: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


async def web(spec: dict[str, Any]) -> Reading:
    url = spec.get("url")
    if not isinstance(url, str) or not url:
        raise ProviderError("web.url is required")
    insecure = spec.get("insecure", False)
    if not isinstance(insecure, bool):
        raise ProviderError(f"web.insecure must be true or false, not {insecure!r}")
    method = str(spec.get("method") or "GET").upper()
    try:
        # insecure: Argo's meaning, the server's certificate is not verified (self-signed)
        async with httpx.AsyncClient(timeout=_timeout(spec, 10.0), verify=not insecure) as http:
            r = await http.request(method, url, headers=_headers(spec),
                                   content=spec.get("body") if isinstance(spec.get("body"), str) else None)
    except httpx.HTTPError as e:
        bad_cert = _untrusted_certificate(e)
        if bad_cert is not None:
            raise ProviderError(
                f"{method} {url}: the server's TLS certificate is not trusted "
                f"({bad_cert.verify_message or bad_cert.reason}); for a self-signed endpoint "
                "set web.insecure: true") from e
        raise ProviderError(f"{method} {url} failed: {type(e).__name__}: {e}") from e
    if r.status_code >= 300:
        raise ProviderError(f"{method} {url} answered HTTP {r.status_code}: {r.text[:200]}")
    try:
        doc = r.json()
    except ValueError as e:
        raise ProviderError(f"{method} {url} did not return JSON") from e
    path = spec.get("jsonPath")
    value = json_path(doc, path) if isinstance(path, str) and path else doc
    return Reading(value=value, metadata={"url": url})

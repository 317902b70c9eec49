"""Metric providers: where a measurement's value comes from (Argo's ``provider`` block).

Each provider turns a resolved provider spec into a ``Reading``: the value the
conditions see as ``result``, what was asked (the resolved query, kept in the
measurement), and for the judge provider the judge's own verdict. Blocking clients
(prometheus-api-client) run in a thread with a timeout, so the event loop never stalls.
A provider failure raises ``ProviderError`` with the upstream message: the measurement is
then an Error, never a crash and never a pass.
"""

from __future__ import annotations

import asyncio
import math
import re
import ssl
from dataclasses import dataclass, field
from typing import Any

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


def _timeout(spec: dict[str, Any], default: float = 30.0) -> float:
    t = spec.get("timeout")
    if t is None:
        return default
    try:
        return max(1.0, parse_duration(t))
    except ValueError as e:
        raise ProviderError(f"timeout: {e}") from e


def _headers(spec: dict[str, Any]) -> dict[str, str]:
    hs = spec.get("headers") or []
    if not isinstance(hs, list):
        raise ProviderError("headers must be a list of {key, value}")
    return {str(h.get("key")): str(h.get("value")) for h in hs if isinstance(h, dict)}


def _vector_values(data: Any, query: str) -> Any:
    """Argo's shape: a vector becomes a list of floats, a scalar a float."""
    if isinstance(data, list):
        out = []
        for item in data:
            v = item.get("value") if isinstance(item, dict) else None
            if not isinstance(v, list) or len(v) != 2:
                raise ProviderError(f"unexpected Prometheus result {item!r} for {query!r}")
            out.append(float(v[1]))
        return out
    if isinstance(data, dict) and isinstance(data.get("result"), list):
        return float(data["result"][1])
    raise ProviderError(f"unexpected Prometheus result {data!r} for {query!r}")


def prometheus_query(address: str, query: str, timeout: float,
                     headers: dict[str, str] | None = None, at: float | None = None) -> Any:
    """One instant query through prometheus-api-client (blocking: call it in a thread).
    ``at`` evaluates it at a past time (replay)."""
    from prometheus_api_client import PrometheusConnect
    from prometheus_api_client.exceptions import PrometheusApiClientException

    try:
        from urllib3.util.retry import Retry

        # No client-side retries: the analysis' own interval and error limits decide.
        prom = PrometheusConnect(url=address, headers=headers or None, timeout=math.ceil(timeout),
                                 retry=Retry(total=0, raise_on_status=False))
        try:
            result = prom.custom_query(query=query, params={"time": at} if at is not None else None)
        finally:
            prom._session.close()
    except PrometheusApiClientException as e:
        raise ProviderError(f"Prometheus rejected the query: {_prom_message(e)}") from e
    except Exception as e:  # connection refused, DNS, timeouts
        raise ProviderError(f"Prometheus at {address} unreachable: {type(e).__name__}: {e}") from e
    return result


def _prom_message(e: Exception) -> str:
    text = str(e)
    m = re.search(r'"error":"(.*?)"[,}]', text)
    if not m:
        return text
    return m.group(1).replace("\\\\'", "'").replace("\\'", "'").replace('\\"', '"')


async def prometheus(spec: dict[str, Any], at: float | None = None) -> Reading:
    address, query = spec.get("address"), spec.get("query")
    if not isinstance(address, str) or not address:
        raise ProviderError("prometheus.address is required")
    if not isinstance(query, str) or not query.strip():
        raise ProviderError("prometheus.query is required")
    timeout = _timeout(spec)
    data = await asyncio.wait_for(
        asyncio.to_thread(prometheus_query, address, query, timeout, _headers(spec), at), timeout + 5)
    return Reading(value=_vector_values(data, query), metadata={"resolvedQuery": query})


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


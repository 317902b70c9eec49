"""Argo's ``prometheus`` provider: one instant query through prometheus-api-client (a
blocking client, run in a thread with a timeout so the event loop never stalls)."""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any

from rollouts.metrics.providers.base import ProviderError, Reading
from rollouts.metrics.providers.base import headers_of as _headers
from rollouts.metrics.providers.base import timeout_of as _timeout


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

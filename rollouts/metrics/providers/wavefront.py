"""Argo's ``wavefront`` provider: ``address`` and ``query`` (WQL) against the chart API
(``GET /api/v2/chart/api``, ``Authorization: Bearer``), asking for the point at the
measurement's time as Argo does (s = e = now, one point, granularity s).

The token is in the Secret ``wavefront-api-tokens`` (controller's namespace) under the key
``address``: a Secret key cannot hold ``:`` or ``/``, so an address with a scheme or port
(``http://10.0.0.5:8080``) is looked up by its host name. The value of each series is its
point nearest to now (one series: a number, several: a list); none is an Error.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from rollouts.metrics.providers.base import (
    Context,
    ProviderError,
    Reading,
    http_call,
    json_of,
    need_str,
    number,
    one_or_list,
    timeout_of,
)

WHAT = "Wavefront"
SECRET = "wavefront-api-tokens"


def validate(spec: dict[str, Any]) -> list[str]:
    return [f"wavefront.{k} is required" for k in ("address", "query")
            if not (isinstance(spec.get(k), str) and spec[k].strip())]


def base_url(address: str) -> str:
    return address.rstrip("/") if "://" in address else f"https://{address.rstrip('/')}"


async def token(address: str, ctx: Context) -> str:
    data = await ctx.secret(SECRET, what="wavefront")
    host = urlsplit(base_url(address)).hostname or address
    tok = data.get(address) or data.get(host)
    if not tok:
        raise ProviderError(f"wavefront: Secret {SECRET} has no token for {address!r} "
                            f"(a key named {host!r})")
    return tok.strip()


def nearest(points: list[Any], t: float) -> tuple[float, float]:
    """(value, epoch) of the point nearest to ``t``."""
    best = min((p for p in points if isinstance(p, list) and len(p) == 2 and p[1] is not None),
               key=lambda p: abs(float(p[0]) - t), default=None)
    if best is None:
        raise ProviderError("Wavefront: a series without points")
    return number(best[1], "Wavefront point"), float(best[0])


async def series_values(spec: dict[str, Any], query: str, ctx: Context) -> tuple[list[float], Any]:
    address = need_str(spec, "address", "wavefront")
    tok = await token(address, ctx)
    now_ms = str(int(ctx.now) * 1000)
    r = await http_call(WHAT, "GET", f"{base_url(address)}/api/v2/chart/api", timeout=timeout_of(spec),
                        headers={"Authorization": f"Bearer {tok}", "Accept": "application/json"},
                        params={"q": query, "s": now_ms, "e": now_ms, "g": "s", "p": "1",
                                "i": "true", "strict": "false"})
    doc = json_of(r, WHAT)
    if not isinstance(doc, dict):
        raise ProviderError(f"Wavefront: unexpected response {str(doc)[:200]}")
    found = [nearest(s.get("data") or [], ctx.now) for s in doc.get("timeseries") or []
             if isinstance(s, dict)]
    return [v for v, _ in found], {"timestamps": [int(t) for _, t in found],
                                   "warnings": doc.get("warnings") or ""}


async def measure(spec: dict[str, Any], ctx: Context) -> Reading:
    query = need_str(spec, "query", "wavefront")
    values, info = await series_values(spec, query, ctx)
    if not values:
        raise ProviderError(f"wavefront: no time series found for {query[:200]!r}"
                            + (f" ({info['warnings']})" if info["warnings"] else ""))
    meta = {"timestamps": ",".join(map(str, info["timestamps"])),
            "drift": ",".join(str(int(t - ctx.now)) for t in info["timestamps"])}
    if info["warnings"]:
        meta["warnings"] = str(info["warnings"])
    return Reading(value=one_or_list(values), metadata=meta)

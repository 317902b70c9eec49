"""Argo's ``graphite`` provider: ``address`` (graphite-web) and ``query``, the render API's
query string (``target=...&from=-5min``; whitespace removed, as Argo does), sent to
``GET <address>/render?...&format=json``. The result is the first target's non-null
datapoints (a list, as Argo); a target without any value is an Error ("no data")."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from rollouts.metrics.providers.base import (
    Context,
    ProviderError,
    Reading,
    http_call,
    json_of,
    need_str,
    number,
    timeout_of,
)

WHAT = "Graphite"


def render_params(query: str) -> list[tuple[str, str]]:
    params = parse_qsl(re.sub(r"\s+", "", query), keep_blank_values=True)
    if not any(k == "target" for k, _ in params):
        raise ProviderError(f"graphite.query must hold target=<expression>, got {query!r}")
    return [(k, v) for k, v in params if k != "format"] + [("format", "json")]


def series(doc: Any) -> list[list[float]]:
    """Each target's non-null values, in order."""
    if not isinstance(doc, list):
        raise ProviderError(f"Graphite: unexpected response {str(doc)[:200]}")
    out = []
    for t in doc:
        points = t.get("datapoints") if isinstance(t, dict) else None
        if not isinstance(points, list):
            raise ProviderError(f"Graphite: a target without datapoints: {str(t)[:200]}")
        vals = []
        for p in points:
            if not isinstance(p, list) or len(p) != 2:
                raise ProviderError(f"Graphite: bad datapoint {p!r}")
            if p[0] is not None:
                vals.append(number(p[0], "Graphite datapoint"))
        out.append(vals)
    return out


async def query_series(spec: dict[str, Any], query: str) -> list[list[float]]:
    address = need_str(spec, "address", "graphite")
    if not re.match(r"^https?://", address):
        raise ProviderError(f"graphite.address {address!r} is not an http(s) URL")
    r = await http_call(WHAT, "GET", f"{address.rstrip('/')}/render", timeout=timeout_of(spec, 10.0),
                        params=render_params(query))
    return series(json_of(r, WHAT))


async def measure(spec: dict[str, Any], ctx: Context) -> Reading:
    query = need_str(spec, "query", "graphite")
    targets = await query_series(spec, query)
    if not targets or not targets[0]:
        raise ProviderError(f"graphite: no values found for {query!r}")
    return Reading(value=targets[0], metadata={"resolvedQuery": query})


async def counter(spec: dict[str, Any], query: str, ctx: Context) -> float | None:
    """A judge counter: the last value of each target, summed; None when none has one."""
    last = [vals[-1] for vals in await query_series(spec, query) if vals]
    return sum(last) if last else None


def validate(spec: dict[str, Any]) -> list[str]:
    problems = []
    if not isinstance(spec.get("address"), str) or not spec["address"]:
        problems.append("graphite.address is required")
    q = spec.get("query")
    if not isinstance(q, str) or not q.strip():
        problems.append("graphite.query is required")
    elif "{{" not in q:
        try:
            render_params(q)
        except ProviderError as e:
            problems.append(str(e))
    return problems

"""Argo's ``influxdb`` provider, for InfluxDB 2.x (Flux, as Argo) and 1.x (InfluxQL).

Credentials come from a Secret in the controller's namespace, named by ``profile``
(default ``influxdb``) with Argo's keys ``address``, ``authToken``, ``org``. A Flux query
goes to ``POST /api/v2/query`` and its annotated CSV's ``_value`` column is the result.

InfluxDB 1.x (the version Debian ships) has no Flux before 1.8: ``queryLanguage: influxql``
(or a query starting with SELECT/SHOW) sends it to ``GET /query`` with ``database`` (spec
field or Secret key) instead; ``username``/``password`` Secret keys, when set, authenticate.
The result is each series' last value. No series is an Error ("no data"), never a pass.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from rollouts.metrics.providers.base import (
    Context,
    ProviderError,
    Reading,
    http_call,
    json_of,
    need_str,
    number,
    one_or_list,
    required_keys,
    timeout_of,
)

WHAT = "InfluxDB"
LANGUAGES = ("flux", "influxql")
_INFLUXQL = re.compile(r"^\s*(select|show)\b", re.IGNORECASE)


def language(spec: dict[str, Any], query: str) -> str:
    lang = spec.get("queryLanguage")
    if lang is None:
        return "influxql" if _INFLUXQL.match(query) else "flux"
    if lang not in LANGUAGES:
        raise ProviderError(f"influxdb.queryLanguage must be one of {', '.join(LANGUAGES)}, got {lang!r}")
    return str(lang)


async def _profile(spec: dict[str, Any], ctx: Context) -> tuple[str, dict[str, str]]:
    name = spec.get("profile") or "influxdb"
    return str(name), await ctx.secret(str(name), what="influxdb")


async def query_values(spec: dict[str, Any], query: str, ctx: Context) -> list[float]:
    """The query's values (one per table or series), perhaps none."""
    name, data = await _profile(spec, ctx)
    timeout = timeout_of(spec)
    if language(spec, query) == "flux":
        address, token, org = required_keys(data, ("address", "authToken", "org"),
                                            secret=name, what="influxdb")
        r = await http_call(WHAT, "POST", f"{address.rstrip('/')}/api/v2/query", timeout=timeout,
                            params={"org": org},
                            headers={"Authorization": f"Token {token}",
                                     "Accept": "application/csv"},
                            json_body={"query": query, "type": "flux",
                                       "dialect": {"header": True, "delimiter": ",",
                                                   "annotations": ["datatype", "group", "default"]}})
        values = flux_values(r.text)
    else:
        (address,) = required_keys(data, ("address",), secret=name, what="influxdb")
        db = spec.get("database") or data.get("database")
        if not isinstance(db, str) or not db:
            raise ProviderError("influxdb: an InfluxQL query needs `database` (spec field or "
                                f"Secret {name} key)")
        user, password = data.get("username"), data.get("password")
        r = await http_call(WHAT, "GET", f"{address.rstrip('/')}/query", timeout=timeout,
                            params={"db": db, "q": query, "epoch": "s"},
                            auth=(user, password or "") if user else None)
        values = influxql_values(json_of(r, WHAT))
    return values


def flux_values(text: str) -> list[float]:
    """``_value`` of every record in Flux's annotated CSV (tables separated by blank lines,
    each with its own header). An ``error`` table is the server's error."""
    values: list[float] = []
    header: list[str] | None = None
    for row in csv.reader(io.StringIO(text)):
        if not row or not any(c.strip() for c in row):
            header = None  # a blank line ends a table
            continue
        if row[0].startswith("#"):
            continue  # annotations: datatype, group, default
        if header is None:
            header = row
            continue
        rec = dict(zip(header, row, strict=False))
        if "error" in rec and "_value" not in rec:
            raise ProviderError(f"InfluxDB rejected the query: {rec['error']}")
        if "_value" not in rec:
            raise ProviderError("InfluxDB: the Flux result has no _value column "
                                f"(columns: {', '.join(c for c in header if c)})")
        if rec["_value"] != "":
            values.append(number(rec["_value"], "InfluxDB _value"))
    return values


def influxql_values(doc: Any) -> list[float]:
    """The last value of each series (the first column after ``time``)."""
    if not isinstance(doc, dict):
        raise ProviderError(f"InfluxDB: unexpected response {str(doc)[:200]}")
    if doc.get("error"):
        raise ProviderError(f"InfluxDB rejected the query: {doc['error']}")
    values: list[float] = []
    for res in doc.get("results") or []:
        if not isinstance(res, dict):
            raise ProviderError(f"InfluxDB: unexpected result {str(res)[:200]}")
        if res.get("error"):
            raise ProviderError(f"InfluxDB rejected the query: {res['error']}")
        for s in res.get("series") or []:
            cols, rows = s.get("columns") or [], s.get("values") or []
            col = next((i for i, c in enumerate(cols) if c != "time"), None)
            last = next((r for r in reversed(rows) if col is not None and r[col] is not None), None)
            if last is not None and col is not None:
                values.append(number(last[col], "InfluxDB value"))
    return values


async def measure(spec: dict[str, Any], ctx: Context) -> Reading:
    query = need_str(spec, "query", "influxdb")
    values = await query_values(spec, query, ctx)
    if not values:
        raise ProviderError(f"influxdb: the query returned no data: {query.strip()[:200]!r}")
    return Reading(value=one_or_list(values),
                   metadata={"resolvedQuery": query, "queryLanguage": language(spec, query)})


async def counter(spec: dict[str, Any], query: str, ctx: Context) -> float | None:
    """A judge counter: the sum of the series, None (no data) when there is none."""
    values = await query_values(spec, query, ctx)
    return sum(values) if values else None


def validate(spec: dict[str, Any]) -> list[str]:
    problems = []
    q = spec.get("query")
    if not isinstance(q, str) or not q.strip():
        problems.append("influxdb.query is required")
    lang = spec.get("queryLanguage")
    if lang is not None and lang not in LANGUAGES and "{{" not in str(lang):
        problems.append(f"influxdb.queryLanguage must be one of {', '.join(LANGUAGES)}")
    for k in ("profile", "database"):
        if k in spec and not isinstance(spec[k], str):
            problems.append(f"influxdb.{k} must be a string")
    return problems



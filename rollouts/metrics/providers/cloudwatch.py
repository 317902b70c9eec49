"""Argo's ``cloudWatch`` provider: ``GetMetricData`` with ``metricDataQueries`` over the
last ``interval`` (default 5m), as the AWS SDK sends it (the Query protocol: a form POST
signed with SigV4, an XML answer, ``NextToken`` pages followed).

Credentials and region come from the controller's environment as with the AWS SDK
(``aws_credentials``: static keys or an EKS web identity), AWS_REGION (or
AWS_DEFAULT_REGION); AWS_ENDPOINT_URL_CLOUDWATCH / AWS_ENDPOINT_URL override the endpoint.
The value is Argo's: the list of MetricDataResults ``{Id, Label, Timestamps, Values,
StatusCode}``, read as ``result[0].Values[0]``; no value in any result is an Error.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from rollouts.api.duration import parse_duration
from rollouts.metrics.providers import aws_credentials
from rollouts.metrics.providers.base import (
    Context,
    ProviderError,
    Reading,
    http_call,
    number,
    timeout_of,
)
from rollouts.metrics.providers.sigv4 import Credentials, sign

WHAT = "CloudWatch"
MAX_PAGES = 20


def validate(spec: dict[str, Any]) -> list[str]:
    problems = []
    qs = spec.get("metricDataQueries")
    if not isinstance(qs, list) or not qs:
        return ["cloudWatch.metricDataQueries (a non-empty list) is required"]
    for i, q in enumerate(qs):
        p = f"cloudWatch.metricDataQueries[{i}]"
        if not isinstance(q, dict) or not isinstance(q.get("id"), str) or not q["id"]:
            problems.append(f"{p}.id is required")
            continue
        if ("expression" in q) == ("metricStat" in q):
            problems.append(f"{p}: set exactly one of expression and metricStat")
        ms = q.get("metricStat")
        if isinstance(ms, dict):
            raw = ms.get("metric")
            m: dict[str, Any] = raw if isinstance(raw, dict) else {}
            if not m.get("metricName"):
                problems.append(f"{p}.metricStat.metric.metricName is required")
            if not ms.get("stat"):
                problems.append(f"{p}.metricStat.stat is required")
            if ms.get("period") in (None, ""):
                problems.append(f"{p}.metricStat.period is required")
    iv = spec.get("interval")
    if iv is not None and not (isinstance(iv, str) and "{{" in iv):
        try:
            parse_duration(iv)
        except ValueError as e:
            problems.append(f"cloudWatch.interval: {e}")
    return problems


def _period(v: Any, what: str) -> str:
    try:
        return str(int(str(v)))
    except ValueError as e:
        raise ProviderError(f"{what} must be a number of seconds, got {v!r}") from e


def form(spec: dict[str, Any], start: datetime, end: datetime, token: str | None) -> dict[str, str]:
    """GetMetricData's Query-protocol parameters (list members numbered from 1)."""
    f = {"Action": "GetMetricData", "Version": "2010-08-01",
         "StartTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
         "EndTime": end.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if token:
        f["NextToken"] = token
    for i, q in enumerate(spec["metricDataQueries"], 1):
        p = f"MetricDataQueries.member.{i}."
        f[p + "Id"] = str(q["id"])
        for k, name in (("expression", "Expression"), ("label", "Label")):
            if q.get(k) is not None:
                f[p + name] = str(q[k])
        if q.get("period") is not None:
            f[p + "Period"] = _period(q["period"], f"metricDataQueries[{i - 1}].period")
        if q.get("returnData") is not None:
            f[p + "ReturnData"] = "true" if q["returnData"] else "false"
        ms = q.get("metricStat")
        if isinstance(ms, dict):
            m = ms.get("metric") or {}
            if m.get("namespace"):
                f[p + "MetricStat.Metric.Namespace"] = str(m["namespace"])
            f[p + "MetricStat.Metric.MetricName"] = str(m.get("metricName", ""))
            for j, d in enumerate(m.get("dimensions") or [], 1):
                f[p + f"MetricStat.Metric.Dimensions.member.{j}.Name"] = str(d.get("name", ""))
                f[p + f"MetricStat.Metric.Dimensions.member.{j}.Value"] = str(d.get("value", ""))
            f[p + "MetricStat.Period"] = _period(ms.get("period"),
                                                 f"metricDataQueries[{i - 1}].metricStat.period")
            f[p + "MetricStat.Stat"] = str(ms.get("stat", ""))
            if ms.get("unit"):
                f[p + "MetricStat.Unit"] = str(ms["unit"])
    return f


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in el if _local(c.tag) == name), None)


def _text(el: ET.Element | None, name: str) -> str | None:
    c = _child(el, name) if el is not None else None
    return c.text if c is not None else None


def parse(text: str) -> tuple[list[dict[str, Any]], str | None, list[str]]:
    """(MetricDataResults, NextToken, Messages) of one page; an ErrorResponse raises."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ProviderError(f"CloudWatch did not return XML: {' '.join(text.split())[:120]!r}") from e
    if _local(root.tag) == "ErrorResponse":
        err = _child(root, "Error")
        raise ProviderError(f"CloudWatch: {_text(err, 'Code')}: {_text(err, 'Message')}")
    result = _child(root, "GetMetricDataResult")
    if result is None:
        raise ProviderError(f"CloudWatch: unexpected answer <{_local(root.tag)}>")
    out = []
    for m in (_child(result, "MetricDataResults") or []):
        ts = [c.text or "" for c in (_child(m, "Timestamps") or [])]
        vals = [number(c.text, "CloudWatch value") for c in (_child(m, "Values") or [])]
        out.append({"Id": _text(m, "Id"), "Label": _text(m, "Label"), "Timestamps": ts,
                    "Values": vals, "StatusCode": _text(m, "StatusCode")})
    msgs = [f"{_text(m, 'Code')}: {_text(m, 'Value')}" for m in (_child(result, "Messages") or [])]
    return out, _text(result, "NextToken"), msgs


async def _aws(timeout: float) -> tuple[Credentials, str, str]:
    creds = await aws_credentials.credentials(timeout)
    region = aws_credentials.region()
    endpoint = (os.environ.get("AWS_ENDPOINT_URL_CLOUDWATCH") or os.environ.get("AWS_ENDPOINT_URL")
                or f"https://monitoring.{region}.amazonaws.com")
    return creds, region, endpoint


async def metric_data(spec: dict[str, Any], ctx: Context) -> tuple[list[dict[str, Any]], list[str]]:
    problems = validate(spec)
    if problems:
        raise ProviderError("; ".join(problems))
    creds, region, endpoint = await _aws(timeout_of(spec))
    try:
        interval = parse_duration(spec.get("interval") or "5m")
    except ValueError as e:
        raise ProviderError(f"cloudWatch.interval: {e}") from e
    end = datetime.fromtimestamp(ctx.now, UTC)
    start = end - timedelta(seconds=interval)
    url = endpoint.rstrip("/") + "/"
    by_id: dict[str, dict[str, Any]] = {}
    messages: list[str] = []
    token: str | None = None
    for _ in range(MAX_PAGES):
        body = urlencode(form(spec, start, end, token)).encode()
        headers = sign("POST", url, {"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
                       body, creds=creds, region=region, service="monitoring",
                       when=datetime.now(UTC))
        r = await http_call(WHAT, "POST", url, timeout=timeout_of(spec), headers=headers, content=body)
        page, token, msgs = parse(r.text)
        messages += msgs
        for res in page:  # a result continues on the next page under the same Id
            cur = by_id.setdefault(str(res["Id"]), {**res, "Timestamps": [], "Values": []})
            cur["Timestamps"] += res["Timestamps"]
            cur["Values"] += res["Values"]
            cur["StatusCode"] = res["StatusCode"]
        if not token:
            return list(by_id.values()), messages
    raise ProviderError(f"cloudWatch: more than {MAX_PAGES} pages of results")


async def measure(spec: dict[str, Any], ctx: Context) -> Reading:
    results, messages = await metric_data(spec, ctx)
    if not any(r["Values"] for r in results):
        raise ProviderError("cloudWatch: GetMetricData returned no values"
                            + (f" ({'; '.join(messages)})" if messages else ""))
    meta = {"messages": "; ".join(messages)} if messages else {}
    return Reading(value=results, metadata=meta)


async def counter(spec: dict[str, Any], query: str, ctx: Context) -> float | None:
    """A judge counter: ``query`` is a metric math expression (``SUM(...)``, or a search);
    the newest value of each returned series, summed; None when there is none."""
    q = {"id": "judge", "expression": query, "returnData": True}
    if spec.get("period") is not None:
        q["period"] = spec["period"]
    results, _ = await metric_data({**spec, "metricDataQueries": [q]}, ctx)
    # GetMetricData returns the newest timestamp first (ScanBy TimestampDescending).
    latest = [r["Values"][0] for r in results if r["Values"]]
    return sum(latest) if latest else None

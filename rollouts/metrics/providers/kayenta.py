"""Argo's ``kayenta`` provider: a canary judgment by a Kayenta server's standalone canary
analysis API, called as Argo calls it.

1. ``GET /canaryConfig?application=..&configurationAccountName=..`` finds the config id of
   ``canaryConfigName`` (Argo sends ``storageAccountName`` as the configuration account;
   kept, so existing templates behave the same);
2. ``POST /canary/<configId>?application&metricsAccountName&configurationAccountName&
   storageAccountName`` with ``scopes`` (control/experiment scope, location, step,
   start/end: the metric's interval ending now, or the run's start with ``lookback``)
   and ``thresholds`` starts an execution (``canaryExecutionId``);
3. ``GET /canary/<id>`` until ``complete``; ``result.judgeResult.score.score`` is the value.

The score decides the measurement without conditions: >= pass Successful, >= marginal
Inconclusive, else Failed. The execution is polled within the measurement (every
``pollInterval``, default 2s) for at most ``timeout`` (default 60s): an execution still
running then is an Error measurement.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from rollouts.api.duration import parse_duration
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

WHAT = "Kayenta"
REQUIRED = ("address", "application", "canaryConfigName", "metricsAccountName",
            "configurationAccountName", "storageAccountName")


def validate(spec: dict[str, Any]) -> list[str]:
    problems = [f"kayenta.{k} is required" for k in REQUIRED
                if not (isinstance(spec.get(k), str) and spec[k].strip())]
    th = spec.get("threshold")
    if not isinstance(th, dict) or not all(k in th for k in ("pass", "marginal")):
        problems.append("kayenta.threshold needs pass and marginal")
    scopes = spec.get("scopes")
    if not isinstance(scopes, list) or not scopes:
        problems.append("kayenta.scopes (a non-empty list) is required")
    else:
        for i, s in enumerate(scopes):
            if not isinstance(s, dict) or not s.get("name") or not isinstance(
                    s.get("controlScope"), dict) or not isinstance(s.get("experimentScope"), dict):
                problems.append(f"kayenta.scopes[{i}] needs name, controlScope and experimentScope")
                continue
            for edge in ("start", "end"):
                if bool(s["controlScope"].get(edge)) != bool(s["experimentScope"].get(edge)):
                    problems.append(f"kayenta.scopes[{i}]: controlScope.{edge} and "
                                    f"experimentScope.{edge} must both be set or both be empty")
    return problems


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scopes_body(spec: dict[str, Any], ctx: Context) -> dict[str, Any]:
    if spec.get("lookback") and ctx.run_started is not None:
        start = _iso(ctx.run_started)
    else:
        start = _iso(ctx.now - (ctx.interval if ctx.interval is not None else 0))
    end = _iso(ctx.now)
    out = {}
    for s in spec["scopes"]:
        pair = {}
        for side in ("controlScope", "experimentScope"):
            d = s[side]
            pair[side] = {"scope": d.get("scope", ""), "location": d.get("region", ""),
                          "step": int(d.get("step") or 0),
                          "start": d.get("start") or start, "end": d.get("end") or end}
        out[str(s["name"])] = pair
    return {"scopes": out, "thresholds": {"pass": int(spec["threshold"]["pass"]),
                                          "marginal": int(spec["threshold"]["marginal"])}}


def phase_of(score: float, passing: float, marginal: float) -> str:
    if score >= passing:
        return "Successful"
    return "Inconclusive" if score >= marginal else "Failed"


async def measure(spec: dict[str, Any], ctx: Context) -> Reading:
    problems = validate(spec)
    if problems:
        raise ProviderError("; ".join(problems))
    address = need_str(spec, "address", "kayenta").rstrip("/")
    timeout = timeout_of(spec, 60.0)
    deadline = time.monotonic() + timeout
    call = min(timeout, 15.0)  # Argo's HTTP timeout per request
    app = spec["application"]
    r = await http_call(WHAT, "GET", f"{address}/canaryConfig", timeout=call,
                        params={"application": app,
                                "configurationAccountName": spec["storageAccountName"]})
    configs = json_of(r, WHAT)
    if not isinstance(configs, list):
        raise ProviderError(f"Kayenta: /canaryConfig did not return a list: {str(configs)[:200]}")
    config_id = next((c.get("id") for c in configs
                      if isinstance(c, dict) and c.get("name") == spec["canaryConfigName"]), None)
    if not config_id:
        raise ProviderError(f"kayenta: canary config {spec['canaryConfigName']!r} not found for "
                            f"application {app!r}")
    r = await http_call(WHAT, "POST", f"{address}/canary/{quote(str(config_id), safe='')}",
                        timeout=call, json_body=scopes_body(spec, ctx),
                        params={"application": app, "metricsAccountName": spec["metricsAccountName"],
                                "configurationAccountName": spec["configurationAccountName"],
                                "storageAccountName": spec["storageAccountName"]})
    started = json_of(r, WHAT)
    execution = started.get("canaryExecutionId") if isinstance(started, dict) else None
    if not execution:
        raise ProviderError(f"Kayenta: no canaryExecutionId in {str(started)[:200]}")
    meta = {"canaryExecutionId": str(execution)}
    try:
        poll = parse_duration(spec.get("pollInterval") or "2s")
    except ValueError as e:
        raise ProviderError(f"kayenta.pollInterval: {e}") from e
    while True:
        r = await http_call(WHAT, "GET", f"{address}/canary/{quote(str(execution), safe='')}",
                            timeout=call)
        status = json_of(r, WHAT)
        if not isinstance(status, dict) or not isinstance(status.get("complete"), bool):
            raise ProviderError(f"Kayenta: execution {execution} status has no 'complete': "
                                f"{str(status)[:200]}")
        if status["complete"]:
            break
        if time.monotonic() + poll > deadline:
            raise ProviderError(f"kayenta: execution {execution} still running after {timeout:g}s")
        await asyncio.sleep(poll)
    try:
        score = number(status["result"]["judgeResult"]["score"]["score"], "Kayenta score")
    except (KeyError, TypeError) as e:
        why = status.get("exception") or status.get("status") or "no result.judgeResult.score.score"
        raise ProviderError(f"Kayenta: execution {execution} finished without a score: "
                            f"{str(why)[:200]}") from e
    th = spec["threshold"]
    return Reading(value=int(score), metadata=meta,
                   phase=phase_of(score, float(th["pass"]), float(th["marginal"])))

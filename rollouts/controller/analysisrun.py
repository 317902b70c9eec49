"""AnalysisRun semantics (Argo's meaning), pure: when each metric measures next, what a
measurement's phase is, and what the metric's and the run's phases are.

Defaults as in Argo: failureLimit 0, inconclusiveLimit 0, consecutiveErrorLimit 4,
measurementRetention 10. A metric without ``interval`` measures once; with an interval
and no ``count`` it measures until the run is terminated (background analysis). As in
Argo, ``count`` counts measurements that are not errors: errors are limited by
``consecutiveErrorLimit`` and never stand in for a measurement.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rollouts.api.duration import parse_duration
from rollouts.api.status import fmt_time, parse_time
from rollouts.metrics.expr import ExprError, condition

SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR, RUNNING, PENDING = (
    "Successful", "Failed", "Inconclusive", "Error", "Running", "Pending")
TERMINAL = {SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR}
ERROR_RETRY_S = 10.0
PROVIDERS = ("prometheus", "web", "job", "judge", "influxdb", "graphite", "datadog", "newRelic",
             "wavefront", "cloudWatch", "kayenta")  # Argo's keys (rollouts.metrics.providers)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    provider_kind: str
    provider: dict[str, Any]
    interval: float | None = None
    initial_delay: float = 0.0
    count: int | None = None
    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = 4
    success_condition: str | None = None
    failure_condition: str | None = None
    dry_run: bool = False
    retention: int = 10

    @property
    def is_judge(self) -> bool:
        return self.provider_kind == "judge"

    @property
    def planned(self) -> int | None:
        """How many measurements the metric takes; None = until terminated."""
        if self.count is not None:
            return self.count
        return None if self.interval is not None else 1


def _int(v: Any, what: str, errors: list[str], default: int) -> int:
    if v is None:
        return default
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        errors.append(f"{what} must be an integer, got {v!r}")
        return default
    return v


def parse_metrics(spec: dict[str, Any]) -> tuple[list[MetricSpec], list[str]]:
    errors: list[str] = []
    dry = {d.get("metricName") for d in spec.get("dryRun") or [] if isinstance(d, dict)}
    retention = {d.get("metricName"): d.get("limit") for d in spec.get("measurementRetention") or []
                 if isinstance(d, dict)}
    out: list[MetricSpec] = []
    raw = spec.get("metrics")
    if not isinstance(raw, list) or not raw:
        return [], ["spec.metrics must be a non-empty list"]
    for i, m in enumerate(raw):
        p = f"metrics[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("name"), str):
            errors.append(f"{p} needs a name")
            continue
        p = f"metric {m['name']}"
        prov_raw = m.get("provider")
        prov: dict[str, Any] = prov_raw if isinstance(prov_raw, dict) else {}
        kinds = [k for k in PROVIDERS if isinstance(prov.get(k), dict)]
        if len(kinds) != 1:
            errors.append(f"{p}: provider must set exactly one of {', '.join(PROVIDERS)}")
            continue
        try:
            interval = parse_duration(m["interval"]) if m.get("interval") is not None else None
            delay = parse_duration(m["initialDelay"]) if m.get("initialDelay") is not None else 0.0
        except ValueError as e:
            errors.append(f"{p}: {e}")
            continue
        count = _int(m.get("count"), f"{p}.count", errors, -1)
        if kinds[0] not in ("judge", "job", "kayenta") and not m.get("successCondition") \
                and not m.get("failureCondition"):
            errors.append(f"{p}: set successCondition and/or failureCondition")
        for cond_key in ("successCondition", "failureCondition"):
            if m.get(cond_key) is not None and not isinstance(m.get(cond_key), str):
                errors.append(f"{p}.{cond_key} must be a string")
        if count not in (-1,) and count < 1:
            errors.append(f"{p}.count must be >= 1")
        if count > 1 and interval is None:
            errors.append(f"{p}: count > 1 needs an interval")
        out.append(MetricSpec(
            name=m["name"], provider_kind=kinds[0], provider=prov[kinds[0]], interval=interval,
            initial_delay=delay, count=None if count == -1 else count,
            failure_limit=_int(m.get("failureLimit"), f"{p}.failureLimit", errors, 0),
            inconclusive_limit=_int(m.get("inconclusiveLimit"), f"{p}.inconclusiveLimit", errors, 0),
            consecutive_error_limit=_int(m.get("consecutiveErrorLimit"),
                                         f"{p}.consecutiveErrorLimit", errors, 4),
            success_condition=m.get("successCondition"), failure_condition=m.get("failureCondition"),
            dry_run=m["name"] in dry or "*" in dry,
            retention=_int(retention.get(m["name"]), f"{p} measurementRetention", errors, 10),
        ))
    return out, errors


_ARG = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.\-]+)\s*\}\}")


def substitute(obj: Any, args: dict[str, str | None]) -> Any:
    """Replace ``{{args.name}}`` everywhere; KeyError names an arg without a value."""
    if isinstance(obj, str):
        def rep(m: re.Match[str]) -> str:
            v = args.get(m.group(1))
            if v is None:
                raise KeyError(m.group(1))
            return v
        return _ARG.sub(rep, obj)
    if isinstance(obj, list):
        return [substitute(x, args) for x in obj]
    if isinstance(obj, dict):
        return {k: substitute(v, args) for k, v in obj.items()}
    return obj


def measurement_phase(metric: MetricSpec, value: Any) -> tuple[str, str]:
    """Phase and message of a measurement from the conditions (Argo's rules)."""
    note = ""
    if isinstance(value, list) and not value:
        note = "the query returned no data (an empty result): check its labels and time range"
    elif (isinstance(value, float) and math.isnan(value)) or (
            isinstance(value, list) and value and all(isinstance(x, float) and math.isnan(x) for x in value)):
        note = "the query returned NaN (no data in the range, e.g. 0/0)"
    try:
        failed = (condition(metric.failure_condition, value)
                  if metric.failure_condition else None)
        succeeded = (condition(metric.success_condition, value)
                     if metric.success_condition else None)
    except ExprError as e:
        return ERROR, f"{note + ': ' if note else ''}condition could not be evaluated: {e}"
    if failed:
        return FAILED, note or f"failureCondition {metric.failure_condition!r} met"
    if succeeded is None:
        return SUCCESSFUL, note
    if succeeded:
        return SUCCESSFUL, note
    if failed is False:
        return INCONCLUSIVE, note or "neither condition met"
    return FAILED, note or f"successCondition {metric.success_condition!r} not met"


def next_due(metric: MetricSpec, result: dict[str, Any], started: datetime,
             now: datetime) -> float | None:
    """Seconds until the next measurement (<= 0: now); None when the metric is done."""
    if result.get("phase") in TERMINAL:
        return None
    n = int(result.get("count") or 0)
    planned = metric.planned
    if planned is not None and n >= planned:
        return None
    ms = result.get("measurements") or []
    if not ms:
        return (started + timedelta(seconds=metric.initial_delay) - now).total_seconds()
    last = parse_time(ms[-1].get("finishedAt")) or now
    wait = metric.interval or 0.0
    if ms[-1].get("phase") == ERROR:
        # An error is retried (it is not one of the `count` measurements): after the
        # interval, at most ERROR_RETRY_S (Argo's retry delay), never in a tight loop.
        wait = min(wait, ERROR_RETRY_S) if wait else ERROR_RETRY_S
    return (last + timedelta(seconds=wait) - now).total_seconds()


def record(metric: MetricSpec, result: dict[str, Any], phase: str, value: Any, message: str,
           started: datetime, now: datetime, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metric result after one more measurement (a new dict)."""
    r = dict(result)
    m = {"phase": phase, "startedAt": fmt_time(started), "finishedAt": fmt_time(now),
         "value": value if isinstance(value, str) else _short(value)}
    if message:
        m["message"] = message
    if extra:
        m.update(extra)
    r["measurements"] = ([*(r.get("measurements") or []), m])[-max(metric.retention, 1):]
    if phase != ERROR:  # Argo: an error is not one of the `count` measurements
        r["count"] = int(r.get("count") or 0) + 1
    key = {SUCCESSFUL: "successful", FAILED: "failed", INCONCLUSIVE: "inconclusive", ERROR: "error"}[phase]
    r[key] = int(r.get(key) or 0) + 1
    r["consecutiveError"] = int(r.get("consecutiveError") or 0) + 1 if phase == ERROR else 0
    if message or phase != SUCCESSFUL:
        r["message"] = message
    return r


def _short(v: Any) -> str:
    import json

    try:
        s = json.dumps(v, default=str)
    except (TypeError, ValueError):
        s = str(v)
    return s if len(s) <= 512 else s[:509] + "..."


def assess(metric: MetricSpec, result: dict[str, Any], terminated: bool = False) -> str:
    """The metric's phase from its counts (Argo's limits)."""
    if result.get("phase") in TERMINAL:
        return str(result["phase"])
    if int(result.get("consecutiveError") or 0) > metric.consecutive_error_limit:
        return ERROR
    if metric.is_judge:
        last = (result.get("measurements") or [{}])[-1]
        if last.get("decision") == "rollback":
            return FAILED
        if last.get("decision") == "promote":
            return SUCCESSFUL
    elif int(result.get("failed") or 0) > metric.failure_limit:
        return FAILED
    elif int(result.get("inconclusive") or 0) > metric.inconclusive_limit:
        return INCONCLUSIVE
    n = int(result.get("count") or 0)
    if terminated:
        return SUCCESSFUL  # Argo: a run stopped by its rollout ends Successful ("run terminated")
    done = metric.planned is not None and n >= metric.planned
    if not done:
        return RUNNING if result.get("measurements") else PENDING
    if metric.is_judge and not int(result.get("successful") or 0):
        return INCONCLUSIVE  # the budget ran out without any usable canary traffic
    if not int(result.get("successful") or 0) and int(result.get("error") or 0):
        return ERROR  # never a pass on missing data: no measurement succeeded, some errored
    return SUCCESSFUL


def run_phase(metrics: list[MetricSpec], results: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """The run's phase and message: the worst non-dry-run metric decides."""
    order = [ERROR, FAILED, INCONCLUSIVE]
    for phase in order:
        for m in metrics:
            r = results.get(m.name) or {}
            if not m.dry_run and r.get("phase") == phase:
                return phase, f"metric {m.name} {phase.lower()}: {r.get('message') or ''}".rstrip(": ")
    if all((results.get(m.name) or {}).get("phase") in TERMINAL for m in metrics):
        msgs = [str((results.get(m.name) or {}).get("message") or "") for m in metrics]
        return SUCCESSFUL, "; ".join(x for x in msgs if x) or "all metrics successful"
    running = [m.name for m in metrics if (results.get(m.name) or {}).get("phase") not in TERMINAL]
    msgs = [str((results.get(m.name) or {}).get("message") or "") for m in metrics]
    detail = "; ".join(x for x in msgs if x)
    return RUNNING, f"measuring {', '.join(running)}" + (f": {detail}" if detail else "")

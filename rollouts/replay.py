"""`rollouts analyze --replay`: run an analysis template over a past time range of a
Prometheus server and report what it would have decided at each interval.

Every query is an instant query evaluated at the replayed time (Prometheus' ``time``
parameter), so the verdicts are exactly those a live run would have reached then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rollouts.controller import analysisrun as ar
from rollouts.controller.analysis_reconciler import take_measurement


@dataclass
class ReplayRow:
    time: datetime
    metric: str
    phase: str  # measurement phase
    value: str
    metric_phase: str  # the metric's phase after this measurement
    message: str


def _stopped(at: datetime) -> Callable[[], datetime]:
    """A clock standing at the replayed time: measurements are stamped with it."""
    return lambda: at


async def replay(template: dict[str, Any], args: dict[str, str], start: datetime, end: datetime,
                 default_interval: float = 60.0, interval: float | None = None) -> Iterator[ReplayRow]:
    """Rows of measurements; ``interval`` overrides the metrics' own intervals."""
    spec = template.get("spec") or {}
    declared: dict[str, str | None] = {}
    for a in spec.get("args") or []:
        if isinstance(a, dict) and isinstance(a.get("name"), str):
            declared[a["name"]] = str(a["value"]) if a.get("value") is not None else None
    declared.update(args)
    try:
        metrics_spec = ar.substitute(spec.get("metrics"), declared)
    except KeyError as e:
        raise ValueError(f"args.{e.args[0]} has no value: pass --arg {e.args[0]}=...") from e
    metrics, errors = ar.parse_metrics({**spec, "metrics": metrics_spec})
    if errors:
        raise ValueError("; ".join(errors))
    rows: list[ReplayRow] = []
    for metric in metrics:
        result: dict[str, Any] = {"name": metric.name}
        step = interval or metric.interval or default_interval
        t = start + timedelta(seconds=metric.initial_delay)
        while t <= end:
            now = t
            result = await take_measurement(metric, metric.provider, result, now, _stopped(now),
                                            at=t.timestamp())
            last = result["measurements"][-1]
            # The end of the range is not a termination: an unfinished metric stays Running.
            mphase = ar.assess(metric, result)
            rows.append(ReplayRow(now, metric.name, last["phase"], str(last["value"]), mphase,
                                  str(last.get("message") or "")))
            if mphase in ar.TERMINAL:
                break
            t += timedelta(seconds=step)
    return iter(rows)

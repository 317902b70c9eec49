"""`rollouts analyze --replay`: run an analysis template over a past time range of a
Prometheus server and report what it would have decided at each interval.

Every query is an instant query evaluated at the replayed time (Prometheus' ``time``
parameter), so the verdicts are exactly those a live run would have reached then.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rollouts.controller import analysisrun as ar
from rollouts.metrics import judge as judge_provider
from rollouts.metrics import providers


@dataclass
class ReplayRow:
    time: datetime
    metric: str
    phase: str  # measurement phase
    value: str
    metric_phase: str  # the metric's phase after this measurement
    message: str


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
        snapshots: list[dict[str, Any]] = []
        step = interval or metric.interval or default_interval
        t = start + timedelta(seconds=metric.initial_delay)
        while t <= end:
            ts = t.timestamp()
            try:
                if metric.provider_kind == "prometheus":
                    reading = await providers.prometheus(metric.provider, at=ts)
                    phase, msg = ar.measurement_phase(metric, reading.value)
                    value: Any = reading.value
                    extra = None
                elif metric.provider_kind == "judge":
                    reading = await judge_provider.judge_reading(metric.provider, snapshots, ts, at=ts)
                    assert reading.snapshot is not None
                    snapshots.append(reading.snapshot)
                    phase = ar.INCONCLUSIVE if reading.phase == ar.INCONCLUSIVE else (
                        ar.SUCCESSFUL if reading.phase == ar.SUCCESSFUL else str(reading.phase))
                    msg, value = reading.message or "", reading.value
                    extra = {"decision": (reading.evidence or {}).get("decision")}
                else:
                    raise providers.ProviderError(f"replay supports prometheus and judge providers, "
                                                  f"not {metric.provider_kind}")
            except (TimeoutError, providers.ProviderError) as e:
                phase, msg, value, extra = ar.ERROR, str(e), "", None
            now = datetime.fromtimestamp(ts, UTC)
            result = ar.record(metric, result, phase, value, msg, now, now, extra)
            if phase == ar.INCONCLUSIVE and metric.is_judge:
                result["inconclusive"] = 0
            mphase = ar.assess(metric, result, terminated=t + timedelta(seconds=step) > end)
            rows.append(ReplayRow(now, metric.name, phase, str(result["measurements"][-1]["value"]),
                                  mphase, msg))
            if mphase in ar.TERMINAL:
                break
            t += timedelta(seconds=step)
    return iter(rows)

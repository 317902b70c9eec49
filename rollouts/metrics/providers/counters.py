"""The judge's counters from any provider that returns numbers (``judge.source``).

    judge:
      source:
        influxdb: {profile: influxdb, database: shop}   # or datadog, newRelic, cloudWatch,
      canary:   {requests: <query>, errors: <query>}    #    graphite: the provider's fields
      baseline: {requests: <query>, errors: <query>}    #    without its query

Each query is answered by that provider's ``counter``: one cumulative number (series
summed), or no data. The answer takes the shape of a Prometheus instant vector, so the
judge reads it exactly as it reads Prometheus (no series = no data, never 0). Latency
histograms and per-pod series need Prometheus' labels and stay Prometheus-only.
"""

from __future__ import annotations

from typing import Any

from rollouts.metrics.providers.base import Context, ProviderError
from rollouts.metrics.providers.registry import REGISTRY, counter_sources

PROMETHEUS_ONLY = ("latencyBuckets", "requestsByPod", "errorsByPod")


def source_of(spec: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(provider name, its fields) of ``judge.source``; None for Prometheus (``address``)."""
    raw = spec.get("source")
    if raw is None:
        return None
    problems = validate_source(spec)
    if problems:
        raise ProviderError("; ".join(problems))
    ((name, fields),) = raw.items()
    return str(name), dict(fields)


def validate_source(spec: dict[str, Any]) -> list[str]:
    raw = spec.get("source")
    if raw is None:
        return []
    known = counter_sources()
    if not isinstance(raw, dict) or len(raw) != 1 or not isinstance(next(iter(raw.values())), dict):
        return [f"judge.source must hold exactly one provider ({', '.join(known)}) with its fields"]
    name = next(iter(raw))
    if name not in known:
        return [f"judge.source.{name} cannot feed the judge (counters come from: {', '.join(known)})"]
    problems = []
    if spec.get("address"):
        problems.append("judge: set address (Prometheus) or source, not both")
    for arm in ("canary", "baseline"):
        for kind in PROMETHEUS_ONLY:
            if isinstance(spec.get(arm), dict) and kind in spec[arm]:
                problems.append(f"judge.{arm}.{kind} needs Prometheus (address); with source "
                                "the judge takes requests and errors")
    return problems


async def query(source: tuple[str, dict[str, Any]], q: str, ctx: Context) -> list[dict[str, Any]]:
    """One counter query, answered as a Prometheus instant vector ([] = no data)."""
    name, fields = source
    fn = REGISTRY[name].counter
    assert fn is not None  # validate_source admits only providers with a counter
    v = await fn(fields, q, ctx)
    return [] if v is None else [{"metric": {}, "value": [ctx.now, str(float(v))]}]

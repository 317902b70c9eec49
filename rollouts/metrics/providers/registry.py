"""Every metric provider by its ``provider.<name>`` key: how it measures, how ``rollouts
lint`` checks its fields, and (for those that return counters) how the judge reads one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rollouts.metrics.providers import cloudwatch, datadog, graphite, influxdb, kayenta, newrelic, wavefront
from rollouts.metrics.providers.base import Context, ProviderError, Reading
from rollouts.metrics.providers.prometheus import prometheus
from rollouts.metrics.providers.web import web

Measure = Callable[[dict[str, Any], Context], Awaitable[Reading]]
Validate = Callable[[dict[str, Any]], list[str]]
# (source spec, one query, context) -> the counter's value, None when there is no data
Counter = Callable[[dict[str, Any], str, Context], Awaitable[float | None]]


@dataclass(frozen=True)
class Provider:
    name: str
    measure: Measure
    validate: Validate
    counter: Counter | None = None


async def _prometheus(spec: dict[str, Any], ctx: Context) -> Reading:
    return await prometheus(spec)


async def _web(spec: dict[str, Any], ctx: Context) -> Reading:
    return await web(spec)


def _needs(*keys: str, prefix: str) -> Validate:
    def check(spec: dict[str, Any]) -> list[str]:
        return [f"{prefix}.{k} is required" for k in keys
                if not (isinstance(spec.get(k), str) and spec[k].strip())]
    return check


REGISTRY: dict[str, Provider] = {p.name: p for p in (
    Provider("prometheus", _prometheus, _needs("address", "query", prefix="prometheus")),
    Provider("web", _web, _needs("url", prefix="web")),
    Provider("influxdb", influxdb.measure, influxdb.validate, influxdb.counter),
    Provider("graphite", graphite.measure, graphite.validate, graphite.counter),
    Provider("datadog", datadog.measure, datadog.validate, datadog.counter),
    Provider("newRelic", newrelic.measure, newrelic.validate, newrelic.counter),
    Provider("wavefront", wavefront.measure, wavefront.validate),
    Provider("cloudWatch", cloudwatch.measure, cloudwatch.validate, cloudwatch.counter),
    Provider("kayenta", kayenta.measure, kayenta.validate),
)}
# Providers whose reading decides the phase itself (no successCondition needed).
SELF_JUDGED = ("kayenta",)

# Measured elsewhere (the reconciler runs Jobs; the judge has its own module).
OTHER_KINDS = ("job", "judge")


async def measure(kind: str, spec: dict[str, Any], ctx: Context) -> Reading:
    p = REGISTRY.get(kind)
    if p is None:
        raise ProviderError(f"the {kind} provider cannot be measured here")
    return await p.measure(spec, ctx)


def validate(kind: str, spec: Any) -> list[str]:
    """Problems of one provider block (templated ``{{args.x}}`` values are not judged)."""
    p = REGISTRY.get(kind)
    if p is None:
        return []
    if not isinstance(spec, dict):
        return [f"{kind} provider must be a map"]
    return p.validate(spec)


def counter_sources() -> tuple[str, ...]:
    return tuple(n for n, p in REGISTRY.items() if p.counter is not None)

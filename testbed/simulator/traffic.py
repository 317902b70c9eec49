"""Drawing one tick of requests against a routing plan, vectorised with numpy.

Per VirtualService: a Poisson request count, a multinomial split over the route's
weights, a multinomial split over each destination's ready pods (uniform per pod),
then per pod group a binomial error count and lognormal latencies. The cost is per
pod group, not per request, so thousands of requests per second are cheap. With per-pod
series every pod is its own group and its batches carry one more label value, the pod.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from .model import (
    GATEWAY_POD,
    LABEL_NAMES,
    LABEL_NAMES_PER_POD,
    SOURCE_LABELS,
    UNKNOWN_WORKLOAD,
    Behaviour,
    DestinationPlan,
    RoutePlan,
)
from .routers import NGINX_LABEL_NAMES

FloatArray = npt.NDArray[np.float64]
LabelPairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Batch:
    """Requests of one tick that share every metric label."""

    labels: tuple[str, ...]  # values, in model.LABEL_NAMES order (+ the pod, per pod)
    latencies_ms: FloatArray
    family: str = "istio"  # "nginx": labels in routers.NGINX_LABEL_NAMES order

    @property
    def count(self) -> int:
        return int(self.latencies_ms.size)

    def label(self, name: str) -> str:
        if self.family == "nginx":
            names = NGINX_LABEL_NAMES
        else:
            names = LABEL_NAMES_PER_POD if len(self.labels) == len(LABEL_NAMES_PER_POD) else LABEL_NAMES
        return self.labels[names.index(name)] if name in names else ""


@lru_cache(maxsize=65536)
def series_labels(
    service: LabelPairs,
    workload: LabelPairs,
    code: str,
    flags: str,
    pod: str | None = None,
    reporter: str = "destination",
) -> tuple[str, ...]:
    """Label values in LABEL_NAMES order, then the pod's name when ``pod`` is given (per-pod
    series); cached since the same few series recur every tick."""
    merged = {**SOURCE_LABELS, **dict(service), **dict(workload), "reporter": reporter}
    merged["response_code"] = code
    merged["response_flags"] = flags
    values = tuple(merged[name] for name in LABEL_NAMES)
    return values if pod is None else (*values, pod)


_UNKNOWN_WORKLOAD: LabelPairs = tuple(UNKNOWN_WORKLOAD.items())


@lru_cache(maxsize=65536)
def nginx_series_labels(route: LabelPairs, status: str) -> tuple[str, ...]:
    """ingress-nginx's label values (NGINX_LABEL_NAMES order) of one location and status."""
    merged = {**dict(route), "status": status}
    return tuple(merged.get(name, "") for name in NGINX_LABEL_NAMES)


def draw_latencies(rng: np.random.Generator, behaviour: Behaviour, n: int) -> FloatArray:
    """n lognormal latencies (median latency_ms, log-sd latency_sigma) plus the tail."""
    lat: FloatArray = behaviour.latency_ms * np.exp(behaviour.latency_sigma * rng.standard_normal(n))
    if behaviour.tail_fraction > 0 and behaviour.tail_extra_ms > 0:
        # An independent mask per request, so tail and errors are uncorrelated.
        lat[rng.random(n) < behaviour.tail_fraction] += behaviour.tail_extra_ms
    return lat


def draw_tick(
    rng: np.random.Generator, plans: list[RoutePlan], dt: float, now: float | None = None
) -> list[Batch]:
    """All requests of ``dt`` seconds of traffic, grouped into label-identical batches.

    ``now`` (epoch seconds) ages pods for their warm-up; None treats every pod as warm.
    """
    batches: list[Batch] = []
    for plan in plans:
        if plan.rps <= 0 or not plan.destinations:
            continue
        n = int(rng.poisson(plan.rps * dt))
        if n == 0:
            continue
        if plan.header_share > 0 and plan.header_destinations:
            # the clients sending the headers take the header route (drawn only then, so
            # plans without one draw exactly as before)
            h = int(rng.binomial(n, plan.header_share))
            _draw_destinations(rng, plan, plan.header_destinations, h, now, batches)
            n -= h
        _draw_destinations(rng, plan, plan.destinations, n, now, batches)
    return batches


def _draw_destinations(
    rng: np.random.Generator,
    plan: RoutePlan,
    destinations: tuple[DestinationPlan, ...],
    n: int,
    now: float | None,
    batches: list[Batch],
) -> None:
    if n <= 0 or not destinations:
        return
    weights = np.array([d.weight for d in destinations], dtype=np.float64)
    total = weights.sum()
    if total <= 0:
        return
    nginx = plan.family == "nginx"
    per_dest = rng.multinomial(n, weights / total)
    for dest, count in zip(destinations, per_dest, strict=True):
        if count == 0:
            continue
        if not dest.groups:
            # Envoy (or nginx) answers at once: nothing behind this destination.
            flag = dest.failure_flag or "UH"
            if nginx:
                labels = nginx_series_labels(dest.service_labels, dest.failure_code)
            elif plan.per_pod:  # no destination proxy saw it: the gateway reports it
                labels = series_labels(
                    dest.service_labels, _UNKNOWN_WORKLOAD, dest.failure_code, flag, GATEWAY_POD, "source"
                )
            else:
                labels = series_labels(dest.service_labels, _UNKNOWN_WORKLOAD, dest.failure_code, flag)
            batches.append(Batch(labels, np.zeros(int(count)), plan.family))
            continue
        pods = np.array([g.pods for g in dest.groups], dtype=np.float64)
        per_group = rng.multinomial(int(count), pods / pods.sum())
        for group, k in zip(dest.groups, per_group, strict=True):
            if k == 0:
                continue
            age = None if now is None or group.ready_since is None else now - group.ready_since
            behaviour = group.behaviour.at_age(age)
            lat = draw_latencies(rng, behaviour, int(k))
            errors = int(rng.binomial(int(k), behaviour.error_rate))
            pod = group.pod or None
            # Latencies are i.i.d., so taking the first ones as errors is unbiased.
            for code, part in (("500", lat[:errors]), ("200", lat[errors:])):
                if part.size == 0:
                    continue
                if nginx:  # ingress-nginx's series name no upstream pod
                    labels = nginx_series_labels(dest.service_labels, code)
                else:
                    labels = series_labels(dest.service_labels, group.labels, code, "-", pod)
                batches.append(Batch(labels, part, plan.family))

"""Istio's standard metrics, accumulated with numpy and exposed in Prometheus format.

A custom collector instead of prometheus_client's Counter/Histogram: observing
thousands of latencies one by one is slow, while a bucket count per batch is one
``searchsorted``. Series are never removed, so counters stay monotonic when weights
or pods change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import numpy.typing as npt
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from .model import LABEL_NAMES, LABEL_NAMES_PER_POD
from .traffic import Batch

# Istio's default buckets for istio_request_duration_milliseconds.
DURATION_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
    300000, 600000, 1800000, 3600000,
)  # fmt: skip


def format_le(bound: float) -> str:
    # Envoy writes le="250", not prometheus_client's "250.0"; keep queries portable.
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))


_LE = [format_le(b) for b in DURATION_BUCKETS_MS]
_BOUNDS = np.asarray(DURATION_BUCKETS_MS, dtype=np.float64)


class _Series:
    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.buckets: npt.NDArray[np.int64] = np.zeros(len(_BOUNDS) + 1, dtype=np.int64)
        self.count = 0
        self.sum = 0.0


class IstioMetrics:
    """Collector for istio_requests_total and istio_request_duration_milliseconds.

    ``per_pod``: series carry a ``pod`` label (empty, i.e. absent for Prometheus, on
    requests no pod answered).
    """

    def __init__(self, *, per_pod: bool = False) -> None:
        self._series: dict[tuple[str, ...], _Series] = {}
        self.per_pod = per_pod
        self.label_names = LABEL_NAMES_PER_POD if per_pod else LABEL_NAMES

    def reset_pod(self, namespace: str, pod: str) -> int:
        """Counters of ``pod`` start again from 0, as a restarted sidecar's do; returns the
        number of series dropped (they reappear with the pod's next request)."""
        ns_at = LABEL_NAMES.index("destination_workload_namespace")
        doomed = [k for k in self._series
                  if len(k) > len(LABEL_NAMES) and k[-1] == pod and k[ns_at] == namespace]
        for k in doomed:
            del self._series[k]
        return len(doomed)

    def record(self, batches: Iterable[Batch]) -> None:
        for batch in batches:
            key = batch.labels
            if self.per_pod and len(key) == len(LABEL_NAMES):
                key = (*key, "")  # no pod (503 UH/NC): an empty label is no label
            elif not self.per_pod:
                key = key[: len(LABEL_NAMES)]
            s = self._series.get(key)
            if s is None:
                s = self._series[key] = _Series()
            lat = batch.latencies_ms
            # side="left": a value equal to a bound belongs to that bound's bucket (le).
            idx = np.searchsorted(_BOUNDS, lat, side="left")
            s.buckets += np.bincount(idx, minlength=len(_BOUNDS) + 1)
            s.count += int(lat.size)
            s.sum += float(lat.sum())

    def totals(self) -> dict[tuple[str, ...], int]:
        """Request count per label tuple (for tests and logs)."""
        return {k: s.count for k, s in self._series.items()}

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "istio_requests", "Requests seen by the simulated data plane.", labels=self.label_names
        )
        duration = HistogramMetricFamily(
            "istio_request_duration_milliseconds",
            "Request duration in milliseconds.",
            labels=self.label_names,
        )
        for labels, s in sorted(self._series.items()):
            requests.add_metric(list(labels), float(s.count))
            cumulative = np.cumsum(s.buckets)
            buckets = [(le, float(c)) for le, c in zip(_LE, cumulative[:-1], strict=True)]
            buckets.append(("+Inf", float(cumulative[-1])))
            duration.add_metric(list(labels), buckets, s.sum)
        yield requests
        yield duration


class MetricsServer:
    """/metrics over aiohttp, in the simulator's own event loop (no threads, no locks)."""

    def __init__(self, metrics: IstioMetrics, host: str = "127.0.0.1", port: int = 0) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(metrics)
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4}
        )

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        # With port 0 the kernel picked one; read it back.
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

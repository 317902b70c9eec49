"""Istio's standard metrics and ingress-nginx's request metrics, accumulated with numpy
and exposed in Prometheus format.

A custom collector instead of prometheus_client's Counter/Histogram: observing
thousands of latencies one by one is slow, while a bucket count per batch is one
``searchsorted``. Series are never removed, so counters stay monotonic when weights
or pods change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import numpy.typing as npt
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

from .model import LABEL_NAMES, LABEL_NAMES_PER_POD
from .routers import NGINX_CONST_LABELS, NGINX_LABEL_NAMES
from .traffic import Batch

# Istio's default buckets for istio_request_duration_milliseconds.
DURATION_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
    300000, 600000, 1800000, 3600000,
)  # fmt: skip


def format_le(bound: float) -> str:
    # Envoy writes le="250", not prometheus_client's "250.0"; keep queries portable.
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))


# ingress-nginx's default --time-buckets (prometheus.DefBuckets), in seconds, for
# nginx_ingress_controller_request_duration_seconds.
NGINX_DURATION_BUCKETS_S: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
)  # fmt: skip

_LE = [format_le(b) for b in DURATION_BUCKETS_MS]
_BOUNDS = np.asarray(DURATION_BUCKETS_MS, dtype=np.float64)
_NGINX_LE = [format_le(b) for b in NGINX_DURATION_BUCKETS_S]
_NGINX_BOUNDS = np.asarray(NGINX_DURATION_BUCKETS_S, dtype=np.float64)


class _Series:
    __slots__ = ("buckets", "count", "sum")

    def __init__(self, n_bounds: int = len(_BOUNDS)) -> None:
        self.buckets: npt.NDArray[np.int64] = np.zeros(n_bounds + 1, dtype=np.int64)
        self.count = 0
        self.sum = 0.0

    def observe(self, bounds: npt.NDArray[np.float64], values: npt.NDArray[np.float64]) -> None:
        # side="left": a value equal to a bound belongs to that bound's bucket (le).
        idx = np.searchsorted(bounds, values, side="left")
        self.buckets += np.bincount(idx, minlength=len(bounds) + 1)
        self.count += int(values.size)
        self.sum += float(values.sum())

    def cumulative(self, le: list[str]) -> list[tuple[str, float]]:
        cumulative = np.cumsum(self.buckets)
        out = [(b, float(c)) for b, c in zip(le, cumulative[:-1], strict=True)]
        out.append(("+Inf", float(cumulative[-1])))
        return out


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
            if batch.family != "istio":
                continue
            key = batch.labels
            if self.per_pod and len(key) == len(LABEL_NAMES):
                key = (*key, "")  # no pod (503 UH/NC): an empty label is no label
            elif not self.per_pod:
                key = key[: len(LABEL_NAMES)]
            s = self._series.get(key)
            if s is None:
                s = self._series[key] = _Series()
            s.observe(_BOUNDS, batch.latencies_ms)

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
            duration.add_metric(list(labels), s.cumulative(_LE), s.sum)
        yield requests
        yield duration


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class NginxMetrics:
    """ingress-nginx's nginx_ingress_controller_requests (counter) and
    nginx_ingress_controller_request_duration_seconds (histogram, default buckets), with its
    request labels and constant controller_* labels (collectors/socket.go).

    Written as text by hand: prometheus_client names every counter ``*_total``, while
    ingress-nginx's Go client writes ``nginx_ingress_controller_requests`` as is.
    """

    LABEL_NAMES: tuple[str, ...] = (*NGINX_LABEL_NAMES, *sorted(NGINX_CONST_LABELS))
    REQUESTS = "nginx_ingress_controller_requests"
    DURATION = "nginx_ingress_controller_request_duration_seconds"

    def __init__(self) -> None:
        self._series: dict[tuple[str, ...], _Series] = {}
        self._const = tuple(NGINX_CONST_LABELS[k] for k in sorted(NGINX_CONST_LABELS))

    def record(self, batches: Iterable[Batch]) -> None:
        for batch in batches:
            if batch.family != "nginx":
                continue
            s = self._series.get(batch.labels)
            if s is None:
                s = self._series[batch.labels] = _Series(len(_NGINX_BOUNDS))
            s.observe(_NGINX_BOUNDS, batch.latencies_ms / 1000.0)  # nginx's request_time: s

    def totals(self) -> dict[tuple[str, ...], int]:
        """Request count per label tuple (NGINX_LABEL_NAMES order; for tests and logs)."""
        return {k: s.count for k, s in self._series.items()}

    def text(self) -> bytes:
        """The two families in the text format (0.0.4); nothing before the first request."""
        if not self._series:
            return b""
        req = [f"# HELP {self.REQUESTS} The total number of client requests",
               f"# TYPE {self.REQUESTS} counter"]
        dur = [f"# HELP {self.DURATION} The request processing time in milliseconds",
               f"# TYPE {self.DURATION} histogram"]
        for labels, s in sorted(self._series.items()):
            pairs = ",".join(f'{n}="{_escape(v)}"'
                             for n, v in zip(self.LABEL_NAMES, (*labels, *self._const), strict=True))
            req.append(f"{self.REQUESTS}{{{pairs}}} {s.count}")
            for le, c in s.cumulative(_NGINX_LE):
                dur.append(f'{self.DURATION}_bucket{{{pairs},le="{le}"}} {int(c)}')
            dur.append(f"{self.DURATION}_sum{{{pairs}}} {s.sum!r}")
            dur.append(f"{self.DURATION}_count{{{pairs}}} {s.count}")
        return ("\n".join(req + dur) + "\n").encode()


class MetricsServer:
    """/metrics over aiohttp, in the simulator's own event loop (no threads, no locks)."""

    def __init__(self, metrics: Collector, host: str = "127.0.0.1", port: int = 0,
                 *, texts: Iterable[Callable[[], bytes]] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(metrics)
        self.texts = list(texts)  # families written as text (NginxMetrics.text)
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.registry) + b"".join(t() for t in self.texts)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

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

"""The controller's own metrics: reconciles, work queue (controller-runtime's names),
notifications. One registry per controller, so tests can run several in one process."""

from __future__ import annotations

import time
from typing import Final, Protocol, runtime_checkable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.registry import Collector

from rollouts.kube.client import RequestTiming

CONTROLLER: Final = "rollout"
QUEUE: Final = "rollouts"
# controller-runtime's buckets: workqueue 1e-8 .. 10 s (x10), reconcile 5 ms .. 60 s
QUEUE_BUCKETS: Final = tuple(10.0 ** e for e in range(-8, 2))
# a token or an answer: milliseconds when all is well, seconds when the budget or the API
# server is the bottleneck
THROTTLE_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0,
                           15.0, 30.0, 60.0)
RECONCILE_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
                            0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5,
                            6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60)
RESULTS: Final = ("success", "requeue_after", "error")


@runtime_checkable
class TextCollector(Protocol):
    """A collector that writes its own text exposition (families with many samples, e.g. one
    per rollout, whose lines it can keep between scrapes)."""

    def exposition(self) -> str: ...


class ControllerMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.reconcile_total = Counter(
            "controller_runtime_reconcile_total", "Reconciles by result.",
            ["controller", "result"], registry=r)
        self.reconcile_errors = Counter(
            "controller_runtime_reconcile_errors_total", "Reconciles that failed.",
            ["controller"], registry=r)
        self.reconcile_time = Histogram(
            "controller_runtime_reconcile_time_seconds", "Time per reconcile.",
            ["controller"], buckets=RECONCILE_BUCKETS, registry=r)
        self.queue_duration = Histogram(
            "workqueue_queue_duration_seconds", "How long a key waited in the queue.",
            ["name"], buckets=QUEUE_BUCKETS, registry=r)
        # ours, beside controller-runtime's: the wait per lane (rollouts.kube.workqueue)
        self.lane_wait = Histogram(
            "rollouts_workqueue_lane_wait_seconds",
            "How long a key waited in the queue, by lane (urgent: step work; normal: new work).",
            ["name", "lane"], buckets=QUEUE_BUCKETS, registry=r)
        self.work_duration = Histogram(
            "workqueue_work_duration_seconds", "How long processing a key took.",
            ["name"], buckets=QUEUE_BUCKETS, registry=r)
        self.notifications_sent = Counter(
            "rollouts_notifications_sent_total", "Notifications and alert batches delivered.",
            ["type", "receiver"], registry=r)
        self.notifications_failed = Counter(
            "rollouts_notifications_failed_total",
            "Notifications and alert batches lost (rejected, retries exhausted, queue full, ...).",
            ["type", "receiver", "reason"], registry=r)
        self.api_requests = Counter(
            "rollouts_kube_api_requests_total",
            "Requests this controller sent to the Kubernetes API server (WATCH: a watch opened).",
            ["verb", "resource", "code"], registry=r)
        # client-go's rest_client_rate_limiter_duration_seconds and
        # rest_client_request_duration_seconds, with our throttle's lane and the resource
        self.throttle_wait = Histogram(
            "rollouts_kube_throttle_wait_seconds",
            "How long a request waited for the client-side throttle (--qps/--burst), by lane.",
            ["lane"], buckets=THROTTLE_BUCKETS, registry=r)
        self.api_request_duration = Histogram(
            "rollouts_kube_api_request_duration_seconds",
            "From sending a request to the API server's answer (watches: until opened).",
            ["verb", "resource"], buckets=THROTTLE_BUCKETS, registry=r)
        for res in RESULTS:  # present from the start, so rate() works after the first error
            self.reconcile_total.labels(CONTROLLER, res)
        self.reconcile_errors.labels(CONTROLLER)
        self.in_flight: dict[str, float] = {}
        self._text: list[TextCollector] = []

    def api_request(self, verb: str, resource: str, code: int) -> None:
        self.api_requests.labels(verb, resource, str(code)).inc()

    def api_timing(self, t: RequestTiming) -> None:
        self.throttle_wait.labels("urgent" if t.urgent else "normal").observe(t.throttled)
        self.api_request_duration.labels(t.verb, t.resource).observe(t.answered)

    def register(self, collector: Collector) -> None:
        if isinstance(collector, TextCollector):
            self._text.append(collector)
        else:
            self.registry.register(collector)

    # --- the worker -------------------------------------------------------------------
    def start_work(self, key: str, waited: float, *, urgent: bool = False) -> None:
        self.queue_duration.labels(QUEUE).observe(max(waited, 0.0))
        self.lane_wait.labels(QUEUE, "urgent" if urgent else "normal").observe(max(waited, 0.0))
        self.in_flight[key] = time.monotonic()

    def end_work(self, key: str, result: str, controller: str = CONTROLLER) -> None:
        started = self.in_flight.pop(key, None)
        took = time.monotonic() - started if started is not None else 0.0
        self.work_duration.labels(QUEUE).observe(took)
        self.reconcile_time.labels(controller).observe(took)
        self.reconcile_total.labels(controller, result).inc()
        if result == "error":
            self.reconcile_errors.labels(controller).inc()

    # --- notify.delivery.DeliveryObserver ---------------------------------------------
    def sent(self, receiver_type: str, receiver: str) -> None:
        self.notifications_sent.labels(receiver_type, receiver).inc()

    def failed(self, receiver_type: str, receiver: str, reason: str) -> None:
        self.notifications_failed.labels(receiver_type, receiver, reason).inc()

    def render(self) -> tuple[bytes, str]:
        body = generate_latest(self.registry)
        if self._text:
            body += "".join(c.exposition() for c in self._text).encode()
        return body, CONTENT_TYPE_LATEST

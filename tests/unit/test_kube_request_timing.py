"""Each request's time is split into its wait for the client-side throttle and its wait for
the API server, by lane, and exported like client-go's rate-limiter and request-duration
histograms (a step's latency tail can then be told apart: budget or server)."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import generate_latest

from rollouts.kube.client import Kube, RequestTiming
from rollouts.kube.ratelimit import urgent_requests
from rollouts.observability.metrics import ControllerMetrics


class _Answer:
    status = 200
    reason = "OK"

    async def read(self) -> bytes:
        return b"{}"

    def release(self) -> None:
        pass


class SlowServerKube(Kube):
    async def _send(self, *args: Any) -> Any:
        await asyncio.sleep(0.05)  # the API server takes 50 ms
        return _Answer()


async def test_throttle_wait_and_answer_time_are_reported_per_request() -> None:
    timings: list[RequestTiming] = []
    kube = SlowServerKube(None, qps=5, burst=1, on_timing=timings.append)  # type: ignore[arg-type]
    await kube.get("/api/v1/namespaces/ns/services/web")  # the burst: no wait
    with urgent_requests(since=0.0):
        await kube.merge_patch("/apis/networking.istio.io/v1/namespaces/ns/virtualservices/web", {})
    first, second = timings
    assert (first.verb, first.resource, first.urgent) == ("GET", "services", False)
    assert (second.verb, second.resource, second.urgent) == ("PATCH", "virtualservices", True)
    assert first.throttled < 0.01 and first.answered >= 0.04
    # the next token comes 1/5 s after the first; 50 ms of it passed waiting for the server
    assert 0.1 <= second.throttled < 0.3 and second.answered >= 0.04


async def test_the_metrics_show_both_histograms() -> None:
    m = ControllerMetrics()
    m.api_timing(RequestTiming("PUT", "rollouts", True, throttled=1.5, answered=0.02))
    text = generate_latest(m.registry).decode()
    assert 'rollouts_kube_throttle_wait_seconds_bucket{lane="urgent",le="2.0"} 1.0' in text
    assert 'rollouts_kube_throttle_wait_seconds_bucket{lane="urgent",le="1.0"} 0.0' in text
    assert ('rollouts_kube_api_request_duration_seconds_bucket{le="0.025",resource="rollouts",'
            'verb="PUT"} 1.0') in text

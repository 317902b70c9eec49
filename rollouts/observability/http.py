"""``GET /metrics`` on the controller's FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI, Response

from rollouts.observability.metrics import ControllerMetrics


def add_metrics_route(app: FastAPI, metrics: ControllerMetrics) -> None:
    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        # on the event loop, not the threadpool: the collectors read the informer's dicts,
        # which only the loop mutates
        body, ctype = metrics.render()
        return Response(body, media_type=ctype)

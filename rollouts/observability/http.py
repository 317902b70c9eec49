"""``GET /metrics`` on the controller's FastAPI app."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Response

from rollouts.observability.metrics import ControllerMetrics


def add_metrics_route(app: FastAPI, metrics: ControllerMetrics,
                      dependencies: Sequence[Any] = ()) -> None:
    """``dependencies``: e.g. the authentication guard of rollouts.server.app."""
    @app.get("/metrics", include_in_schema=False, dependencies=list(dependencies))
    async def prometheus_metrics() -> Response:
        # on the event loop, not the threadpool: the collectors read the informer's dicts,
        # which only the loop mutates
        body, ctype = metrics.render()
        return Response(body, media_type=ctype)

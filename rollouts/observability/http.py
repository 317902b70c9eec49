"""``GET /metrics`` and the probes (``/healthz``, ``/readyz``) on the controller's FastAPI apps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse, PlainTextResponse

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


def add_health_routes(app: FastAPI, ready: Callable[[], bool],
                      details: Callable[[], dict[str, object]] | None = None) -> None:
    """``/healthz`` and ``/readyz`` (kube-style: ``ok``, or 503 ``not ready``);
    ``/readyz?verbose`` answers JSON with the details (leadership among them), same status."""
    @app.get("/healthz", response_class=PlainTextResponse, include_in_schema=False)
    async def healthz() -> str:
        return "ok"

    @app.get("/readyz", include_in_schema=False)
    async def readyz(verbose: str | None = None) -> Response:
        ok = ready()
        code = 200 if ok else 503
        if verbose is not None:
            body = details() if details is not None else {}
            return JSONResponse({**body, "ready": ok}, status_code=code)
        return PlainTextResponse("ok" if ok else "not ready", status_code=code)

"""The controller's HTTP apps.

``create_app``: what ``--listen`` serves (over TLS unless ``--insecure-http``): the
rollouts API and ``/metrics``, both behind Kubernetes authentication (TokenReview, then
SubjectAccessReview: the verb on the rollout, or ``get`` on the non-resource URL
``/metrics``), and, without authentication, ``/healthz`` and ``/readyz`` (the kubelet's
probes carry no token; they reveal one word) and the API's documentation (``/docs``,
``/openapi.json``: the shape of the API, no data).

``create_plain_metrics_app``: what ``--metrics-listen`` serves, plain and unauthenticated:
``/metrics``, ``/healthz``, ``/readyz`` only, for a scraper on the same host or a port a
NetworkPolicy guards (the kube-rbac-proxy layout: the process binds a private address).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, FastAPI

from rollouts.kube.auth import Authorizer
from rollouts.kube.client import Kube
from rollouts.observability.http import add_health_routes, add_metrics_route
from rollouts.observability.metrics import ControllerMetrics
from rollouts.server.api import install
from rollouts.server.auth import path_guard
from rollouts.server.dashboard import install_dashboard


def create_app(kube: Kube, *, ready: Callable[[], bool], metrics: ControllerMetrics | None = None,
               namespace: str | None = None, authorizer: Authorizer | None = None,
               audiences: tuple[str, ...] = (),
               details: Callable[[], dict[str, object]] | None = None) -> FastAPI:
    """The app of the main listener; ``namespace`` limits the API to the watched namespace."""
    # /docs is the dashboard's: Swagger UI from local files, not a CDN
    app = FastAPI(title="rollouts controller", docs_url=None, redoc_url=None)
    authz = authorizer or Authorizer(kube, audiences=audiences)
    install(app, kube, namespace=namespace, authorizer=authz)
    install_dashboard(app, kube, authz, namespace)
    if metrics is not None:
        add_metrics_route(app, metrics, dependencies=[Depends(path_guard(authz, "/metrics"))])
    add_health_routes(app, ready, details)
    return app


def create_plain_metrics_app(metrics: ControllerMetrics, *, ready: Callable[[], bool],
                             details: Callable[[], dict[str, object]] | None = None) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    add_metrics_route(app, metrics)
    add_health_routes(app, ready, details)
    return app

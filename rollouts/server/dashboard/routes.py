"""The dashboard's server side: its page and files, three read endpoints it needs beyond
the HTTP API, and Swagger UI's files for ``/docs``, all served by the controller itself.

The page and its files carry no data and need no token (like ``/docs``); every data
request is an ``/api/v1`` call under the HTTP API's TokenReview + SubjectAccessReview:

- ``GET /api/v1/whoami``: who the token is (login check), for any valid token;
- ``GET .../rollouts/{name}/access``: which of the rollout's verbs RBAC grants the caller
  (a SelfSubjectAccessReview for the dashboard: the HTTP API's own SubjectAccessReview,
  so buttons show exactly when the action would be accepted);
- ``GET .../rollouts/{name}/tree``: the rollout's summary with its ReplicaSets and pods by
  role, its AnalysisRuns with measurements and the judge's evidence over time. It needs
  ``get`` on the rollout, as the summary does: the tree is what ``rollouts get rollout``
  shows of it.
"""


import asyncio
from collections import OrderedDict
from importlib import resources
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from rollouts.api.constants import GROUP, POD_TEMPLATE_HASH_LABEL, VERSION
from rollouts.api.summary import summarize
from rollouts.kube.auth import Authorizer
from rollouts.kube.client import EVENTS, JSON, PODS, REPLICASETS, Kube, KubeError, Resource
from rollouts.kube.signals import ROLLOUTS
from rollouts.server.api import ERRORS, NAME_RE, NS_RE
from rollouts.server.auth import BEARER, Caller, authenticate, authorize
from rollouts.server.dashboard.evidence import run_view
from rollouts.server.dashboard.tree import owned_by, replica_sets

ANALYSIS_RUNS = Resource(GROUP, VERSION, "analysisruns")
STATIC = FsPath(__file__).parent / "static"
VERBS = ("get", "promote", "abort", "retry", "pause", "resume")
MAX_RUNS = 6  # newest AnalysisRuns on the page: each judge run is replayed
# HTML, scripts, styles, images from this origin only: the page cannot load a CDN's file
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class WhoAmI(BaseModel):
    username: str
    groups: list[str]


class Access(BaseModel):
    user: str
    namespace: str
    name: str
    verbs: dict[str, bool]


class RunCache:
    """Run views by (uid, resourceVersion): the page polls every few seconds and a judge
    run's replay is the costly part; an unchanged run is not replayed again."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._d: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    def view(self, run: JSON) -> dict[str, Any]:
        md = run.get("metadata") or {}
        key = (str(md.get("uid") or md.get("name")), str(md.get("resourceVersion") or ""))
        if not key[1]:
            return run_view(run)
        if key in self._d:
            self._d.move_to_end(key)
            return self._d[key]
        v = run_view(run)
        self._d[key] = v
        while len(self._d) > self.size:
            self._d.popitem(last=False)
        return v


def _event_rows(events: list[JSON], uid: str | None, limit: int = 12) -> list[dict[str, Any]]:
    def when(e: JSON) -> str:
        return str(e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") or "")
    mine = [e for e in events if (e.get("involvedObject") or {}).get("uid") in (None, uid)]
    rows = [{"time": when(e), "type": e.get("type", ""), "reason": e.get("reason", ""),
             "message": e.get("message", ""), "count": e.get("count", 1)}
            for e in sorted(mine, key=when)]
    return rows[-limit:][::-1]


async def _events(kube: Kube, ns: str, name: str) -> JSON:
    """The rollout's Events, or none with the reason: the controller's role need not
    allow listing Events (it only writes them), and the rest of the page stands without."""
    try:
        return await kube.get_list(EVENTS.path(ns), fieldSelector="involvedObject.kind=Rollout,"
                                                                  f"involvedObject.name={name}")
    except KubeError as e:
        return {"items": [], "error": f"Events cannot be listed ({e.status}): {e.message}"}


def _kube_error(e: KubeError) -> HTTPException:
    if e.status == 404:
        return HTTPException(404, "rollout not found")
    return HTTPException(502, f"Kubernetes API error: {e.message}")


def create_dashboard_api(kube: Kube, authz: Authorizer, namespace: str | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["dashboard"])
    cache = RunCache()
    NsPath = Annotated[str, Path(alias="namespace", pattern=NS_RE, max_length=63)]
    Name = Annotated[str, Path(pattern=NAME_RE, max_length=253, description="rollout name")]

    async def caller(cred: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> Caller:
        return await authenticate(authz, cred)

    Authed = Annotated[Caller, Depends(caller)]

    def managed(ns: str) -> None:
        if namespace is not None and ns != namespace:
            raise HTTPException(404, f"namespace {ns!r} is not managed by this controller")

    @router.get("/whoami", response_model=WhoAmI, responses=ERRORS,
                summary="Who the bearer token is (the dashboard's login check)")
    async def whoami(who: Authed) -> WhoAmI:
        return WhoAmI(username=who.user.username, groups=list(who.user.groups))

    @router.get("/namespaces/{namespace}/rollouts/{name}/access", response_model=Access,
                responses=ERRORS, summary="Which of the rollout's verbs RBAC grants the caller")
    async def access(ns: NsPath, name: Name, who: Authed) -> Access:
        # like a SelfSubjectAccessReview: anyone authenticated may ask about themselves
        try:
            answers = await asyncio.gather(*[authz.allowed(who.token, who.user, v, ns, name)
                                             for v in VERBS])
        except (KubeError, OSError, TimeoutError) as e:
            raise HTTPException(503, "cannot check permissions with the Kubernetes API now") from e
        if namespace is not None and ns != namespace:
            answers = [False] * len(VERBS)  # not managed here: nothing would be accepted
        return Access(user=who.user.username, namespace=ns, name=name,
                      verbs=dict(zip(VERBS, answers, strict=True)))

    @router.get("/namespaces/{namespace}/rollouts/{name}/tree", responses={
                    **ERRORS, 404: {"description": "no such rollout"}},
                summary="A rollout with its ReplicaSets, pods, AnalysisRuns and the judge's evidence")
    async def tree(ns: NsPath, name: Name, who: Authed) -> dict[str, Any]:
        await authorize(authz, who, "get", ns, name)
        managed(ns)
        try:
            obj = await kube.get(ROLLOUTS.path(ns, name))
            uid = (obj.get("metadata") or {}).get("uid")
            rss, pods, runs, events = await asyncio.gather(
                kube.get_list(REPLICASETS.path(ns), labelSelector=POD_TEMPLATE_HASH_LABEL),
                kube.get_list(PODS.path(ns), labelSelector=POD_TEMPLATE_HASH_LABEL),
                kube.get_list(ANALYSIS_RUNS.path(ns), labelSelector=f"{GROUP}/rollout={name}"),
                _events(kube, ns, name))
        except KubeError as e:
            raise _kube_error(e) from e
        summary = summarize(obj)
        mine_rs = [rs for rs in rss.get("items") or [] if owned_by(rs, uid)]
        mine_runs = sorted((r for r in runs.get("items") or [] if owned_by(r, uid)),
                           key=lambda r: str((r.get("metadata") or {}).get("creationTimestamp") or ""),
                           reverse=True)[:MAX_RUNS]
        views = await asyncio.to_thread(lambda: [cache.view(r) for r in mine_runs])
        return {"rollout": summary,
                "replicaSets": replica_sets(summary, mine_rs, pods.get("items") or []),
                "analysisRuns": views,
                "events": _event_rows(events.get("items") or [], uid),
                "eventsError": events.get("error")}

    return router


def _swagger_dir() -> FsPath:
    return FsPath(str(resources.files("fastapi_swagger") / "resources"))


def install_dashboard(app: FastAPI, kube: Kube, authz: Authorizer, namespace: str | None = None) -> None:
    """Mounts the dashboard (``/dashboard``), its API and a local Swagger UI on ``/docs``."""
    app.include_router(create_dashboard_api(kube, authz, namespace))
    page = (STATIC / "index.html").read_text()

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard_bare() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    @app.get("/dashboard/", include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": CSP,
                                           "Cache-Control": "no-cache"})

    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")
    app.mount("/docs/static", StaticFiles(directory=_swagger_dir()), name="swagger-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json",
                                   title=f"{app.title} - API",
                                   swagger_js_url="/docs/static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/static/swagger-ui.css",
                                   swagger_favicon_url="/docs/static/favicon-32x32.png")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

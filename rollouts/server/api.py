"""The rollouts HTTP API: read rollouts, record promote/abort/retry/pause/resume.

Clients only record intent (``rollouts.kube.signals.request_action``, the same code as the
CLI); the controller applies it. The status write uses the controller's credentials after
the caller is authorized with a SubjectAccessReview on the custom verb, so admins can
grant ``promote`` without ``patch``. The caller's username is the action's user.
"""


from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError

from rollouts.api.summary import list_row, summarize
from rollouts.kube.auth import Authorizer
from rollouts.kube.client import JSON, Kube, KubeError
from rollouts.kube.signals import ROLLOUTS, ActionRejected, request_action
from rollouts.server.auth import Caller, authenticate, authorize
from rollouts.server.models import (
    ActionAccepted,
    Problem,
    PromoteRequest,
    RolloutList,
    RolloutView,
)

# DNS names as Kubernetes accepts them: anything else is a 422 before reaching the API server.
NS_RE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
NAME_RE = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
Namespace = Annotated[str, Path(pattern=NS_RE, max_length=63, description="namespace")]
Name = Annotated[str, Path(pattern=NAME_RE, max_length=253, description="rollout name")]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no or invalid bearer token"},
    403: {"model": Problem, "description": "RBAC does not allow this verb"},
    503: {"model": Problem, "description": "the Kubernetes API cannot be reached"},
}
ACTION_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    404: {"model": Problem, "description": "no such rollout"},
    409: {"model": Problem, "description": "the action does not apply to the rollout now"},
}
PROMOTE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ACTION_ERRORS, 413: {"model": Problem, "description": "request body over 16 KiB"}}


def _kube_error(e: KubeError) -> HTTPException:
    if e.status == 404:
        return HTTPException(404, "rollout not found")
    if e.status == 409:
        return HTTPException(409, e.message or "conflict")
    if 400 <= e.status < 500:
        return HTTPException(400, e.message or f"rejected by the Kubernetes API ({e.status})")
    return HTTPException(502, f"Kubernetes API error: {e.message}")


def create_api(kube: Kube, authorizer: Authorizer | None = None,
               namespace: str | None = None) -> APIRouter:
    """The API routes; ``namespace`` limits them to the one namespace the controller manages."""
    authz = authorizer or Authorizer(kube)
    bearer = HTTPBearer(auto_error=False, description="a Kubernetes token (ServiceAccount or user)")
    router = APIRouter(prefix="/api/v1", tags=["rollouts"])

    async def caller(cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
        return await authenticate(authz, cred)

    Authed = Annotated[Caller, Depends(caller)]

    def managed(ns: str) -> None:
        if namespace is not None and ns != namespace:
            raise HTTPException(404, f"namespace {ns!r} is not managed by this controller")

    async def read(ns: str, name: str) -> JSON:
        managed(ns)
        try:
            return await kube.get(ROLLOUTS.path(ns, name))
        except KubeError as e:
            raise _kube_error(e) from e

    async def list_in(ns: str | None) -> RolloutList:
        try:
            data = await kube.get_list(ROLLOUTS.path(ns))
        except KubeError as e:
            raise _kube_error(e) from e
        items = sorted(data.get("items") or [], key=lambda o: (o["metadata"].get("namespace", ""),
                                                                o["metadata"]["name"]))
        return RolloutList.model_validate({"items": [list_row(o) for o in items]})

    @router.get("/rollouts", response_model=RolloutList, responses=ERRORS,
                summary="List rollouts in all namespaces (needs list at the cluster scope)")
    async def list_all(who: Authed) -> RolloutList:
        await authorize(authz, who, "list", namespace or "")
        return await list_in(namespace)

    @router.get("/namespaces/{namespace}/rollouts", response_model=RolloutList, responses=ERRORS,
                summary="List the rollouts of a namespace")
    async def list_ns(ns: Annotated[str, Path(alias="namespace", pattern=NS_RE, max_length=63)],
                      who: Authed) -> RolloutList:
        await authorize(authz, who, "list", ns)
        managed(ns)
        return await list_in(ns)

    @router.get("/namespaces/{namespace}/rollouts/{name}", response_model=RolloutView,
                responses=ACTION_ERRORS, summary="A rollout: steps, weights, replicas, analysis")
    async def get_one(ns: Annotated[str, Path(alias="namespace", pattern=NS_RE, max_length=63)],
                      name: Name, who: Authed) -> RolloutView:
        await authorize(authz, who, "get", ns, name)
        return RolloutView.model_validate(summarize(await read(ns, name)))

    async def act(ns: str, name: str, action: str, who: Caller, full: bool = False) -> ActionAccepted:
        await authorize(authz, who, action, ns, name)
        managed(ns)
        try:
            a = await request_action(kube, ns, name, action, user=who.user.username, full=full)
        except ActionRejected as e:
            raise HTTPException(409, str(e)) from e
        except KubeError as e:
            raise _kube_error(e) from e
        return ActionAccepted(namespace=ns, name=name, action=a.action, id=a.id, user=a.user,
                              requestedAt=a.requested_at, full=a.full, podHash=a.pod_hash,
                              message=f"{action} recorded; the controller applies it "
                                      "(see status.lastAction)")

    @router.post("/namespaces/{namespace}/rollouts/{name}/promote", status_code=202,
                 response_model=ActionAccepted, responses=PROMOTE_ERRORS,
                 summary="End the current pause (or skip the current step); full: skip all steps",
                 openapi_extra={"requestBody": {"required": False, "content": {
                     "application/json": {"schema": PromoteRequest.model_json_schema()}}}})
    async def promote(ns: Annotated[str, Path(alias="namespace", pattern=NS_RE, max_length=63)],
                      name: Name, who: Authed, request: Request) -> ActionAccepted:
        # the body is read only after authorization: 401/403 come before any 422
        await authorize(authz, who, "promote", ns, name)
        body = await _promote_body(request)
        return await act(ns, name, "promote", who, full=body.full)

    def simple(action: str, doc: str) -> None:
        async def endpoint(ns: Annotated[str, Path(alias="namespace", pattern=NS_RE, max_length=63)],
                           name: Name, who: Authed) -> ActionAccepted:
            return await act(ns, name, action, who)
        endpoint.__name__ = action
        router.add_api_route(f"/namespaces/{{namespace}}/rollouts/{{name}}/{action}", endpoint,
                             methods=["POST"], summary=doc, status_code=202,
                             response_model=ActionAccepted, responses=ACTION_ERRORS)

    simple("abort", "Abort the canary: all traffic back to stable")
    simple("retry", "Restart the steps of an aborted rollout")
    simple("pause", "Hold the rollout where it is until resumed")
    simple("resume", "Lift a pause set by a user")
    return router


# A promote body is at most {"full": false}; anything much bigger is not a promote.
MAX_BODY_BYTES = 16 * 1024


async def _read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused with 413 past ``limit`` without reading the rest into memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _promote_body(request: Request) -> PromoteRequest:
    raw = await _read_body(request)
    if not raw.strip():
        return PromoteRequest(full=False)
    try:
        # pydantic's own JSON parser: bounded nesting (no RecursionError on 100,000 "["),
        # and with the strict model NaN/Infinity are simply not booleans
        return PromoteRequest.model_validate_json(raw)
    except ValidationError as e:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in e.errors(include_url=False)]) from e


def _readable(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _safe(err: Any) -> dict[str, Any]:
    """An error without the offending input: it may be NaN, undecodable bytes or 16 KiB
    of brackets, none of which a JSON response can (or should) echo."""
    d = err if isinstance(err, dict) else {"msg": str(err)}
    return {"type": str(d.get("type", "invalid")), "loc": [str(x) for x in d.get("loc", ())],
            "msg": str(d.get("msg", "invalid"))}


async def _validation_error(_req: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # keeps FastAPI's list under "detail" and adds one readable line under "message"
    return JSONResponse(status_code=422, content={
        "detail": [_safe(e) for e in exc.errors()], "message": _readable(exc)})


def install(app: FastAPI, kube: Kube, namespace: str | None = None,
            authorizer: Authorizer | None = None) -> None:
    """Mounts the API on the controller's app, with readable 422 messages."""
    app.include_router(create_api(kube, authorizer, namespace))
    app.add_exception_handler(RequestValidationError, _validation_error)


"""The FastAPI side of authentication: bearer token -> caller, or 401/403.

Authentication and authorization always come before anything else (404, 422, 409), so an
unauthorized caller learns nothing and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rollouts.kube.auth import Authorizer, UserInfo
from rollouts.kube.client import KubeError

log = logging.getLogger("rollouts.server")

UNAUTHENTICATED = {"WWW-Authenticate": 'Bearer realm="rollouts"'}


@dataclass(frozen=True)
class Caller:
    user: UserInfo
    token: str


async def authenticate(authz: Authorizer, cred: HTTPAuthorizationCredentials | None) -> Caller:
    if cred is None or cred.scheme.lower() != "bearer" or not cred.credentials.strip():
        raise HTTPException(401, "missing bearer token (Authorization: Bearer <Kubernetes token>)",
                            headers=UNAUTHENTICATED)
    token = cred.credentials.strip()
    try:
        user = await authz.authenticate(token)
    except (KubeError, OSError, TimeoutError) as e:
        log.warning("TokenReview failed: %s", e)
        raise HTTPException(503, "cannot verify the token with the Kubernetes API now") from e
    if user is None:
        raise HTTPException(401, "the token is not valid for this cluster", headers=UNAUTHENTICATED)
    return Caller(user, token)


async def authorize(authz: Authorizer, caller: Caller, verb: str, namespace: str,
                    name: str = "") -> None:
    try:
        ok = await authz.allowed(caller.token, caller.user, verb, namespace, name)
    except (KubeError, OSError, TimeoutError) as e:
        log.warning("SubjectAccessReview failed: %s", e)
        raise HTTPException(503, "cannot check permissions with the Kubernetes API now") from e
    if not ok:
        what = f"rollouts.rollouts.dev {name!r}" if name else "rollouts.rollouts.dev"
        where = f"in namespace {namespace!r}" if namespace else "at the cluster scope"
        raise HTTPException(403, f"{caller.user.username} cannot {verb} {what} {where}")


async def authorize_path(authz: Authorizer, caller: Caller, path: str, verb: str = "get") -> None:
    try:
        ok = await authz.allowed_path(caller.token, caller.user, path, verb)
    except (KubeError, OSError, TimeoutError) as e:
        log.warning("SubjectAccessReview failed: %s", e)
        raise HTTPException(503, "cannot check permissions with the Kubernetes API now") from e
    if not ok:
        raise HTTPException(403, f"{caller.user.username} cannot {verb} {path} (RBAC: a ClusterRole "
                                 f"with nonResourceURLs: [{path}], verbs: [{verb}])")


BEARER = HTTPBearer(auto_error=False, description="a Kubernetes token (ServiceAccount or user)")


def path_guard(authz: Authorizer, path: str) -> Callable[..., Awaitable[None]]:
    """A dependency: bearer token, TokenReview, then SubjectAccessReview for ``get path``
    (how controller-runtime guards its secure /metrics)."""
    async def guard(cred: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        await authorize_path(authz, await authenticate(authz, cred), path)
    return guard

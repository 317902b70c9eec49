"""A connection to the cluster with the user's own kubeconfig (so RBAC and audit are native).

Imported only by commands that talk to the cluster: kubernetes_asyncio is slow to import.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import typer

from rollouts.cli import exitcodes
from rollouts.cli.common import fail
from rollouts.kube.client import Kube, KubeError, make_api_client

T = TypeVar("T")


@dataclass
class Session:
    kube: Kube
    namespace: str
    context_user: str | None

    async def username(self) -> str:
        """Who the API server says we are (SelfSubjectReview), else the context's user name."""
        from rollouts.kube.auth import whoami

        try:
            name = await whoami(self.kube)
        except (KubeError, OSError, TimeoutError):
            name = None
        return name or self.context_user or os.environ.get("USER") or "unknown"


def _context_defaults(kubeconfig: str | None, context: str | None) -> tuple[str | None, str | None]:
    """(namespace, user name) of the chosen kubeconfig context, when there is one."""
    from kubernetes_asyncio.config import kube_config

    try:
        contexts, active = kube_config.list_kube_config_contexts(kubeconfig)
    except Exception:  # in-cluster or no kubeconfig: no defaults to read
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            try:
                with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
                    return f.read().strip() or None, None
            except OSError:
                pass
        return None, None
    ctx = next((c for c in contexts if c.get("name") == context), None) if context else active
    body = (ctx or {}).get("context") or {}
    return body.get("namespace"), body.get("user")


@asynccontextmanager
async def open_session(kubeconfig: str | None, context: str | None,
                       namespace: str | None) -> AsyncIterator[Session]:
    from rollouts.cli.kubeconfig import kubeconfig_problem

    problem = kubeconfig_problem(kubeconfig, context)
    if problem is not None:
        raise fail(problem, exitcodes.KUBE_ERROR)
    ns, user = _context_defaults(kubeconfig, context)
    try:
        api = await make_api_client(kubeconfig, context)
    except Exception as e:  # the config loader raises several unrelated types
        raise fail(f"cannot load kubeconfig: {e}", exitcodes.KUBE_ERROR) from e
    try:
        yield Session(Kube(api, timeout=30.0), namespace or ns or "default", user)
    finally:
        await api.close()


def run(fn: Callable[[], Awaitable[T]]) -> T:
    """Runs a command's coroutine; API errors become a message and exit code 4."""
    try:
        return asyncio.run(_guard(fn))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


async def _guard(fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return await fn()
    except KubeError as e:
        raise fail(_explain(e), exitcodes.KUBE_ERROR) from e
    except (OSError, TimeoutError) as e:
        raise fail(f"cannot reach the Kubernetes API: {e or type(e).__name__}",
                   exitcodes.KUBE_ERROR) from e


def _explain(e: KubeError) -> str:
    if e.status == 404:
        return f"not found: {e.message}"
    if e.status == 403:
        return f"forbidden: {e.message}"
    if e.status == 401:
        return "unauthorized: the kubeconfig's credentials were not accepted"
    return f"Kubernetes API error {e.status}: {e.message}"


def with_session(kubeconfig: str | None, context: str | None, namespace: str | None,
                 body: Callable[[Session], Awaitable[T]]) -> T:
    async def go() -> T:
        async with open_session(kubeconfig, context, namespace) as s:
            return await body(s)
    return run(go)

"""Small helpers for provider tests: a Context whose Secrets come from a dict, and an
aiohttp app served on 127.0.0.1 on a free port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from rollouts.metrics.providers import Context


def ctx_with(secrets: dict[str, dict[str, str]], namespace: str = "rollouts-system",
             **kw: Any) -> Context:
    """Secrets keyed by name, all in the controller's namespace ``namespace``."""
    async def read(ns: str, name: str) -> dict[str, str] | None:
        return secrets.get(name) if ns == namespace else None
    return Context(secrets=read, controller_namespace=namespace, **kw)


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def closed_port_url() -> str:
    """An address nothing listens on (bound, then released)."""
    from tests.providers_fakes.servers import free_port
    return f"http://127.0.0.1:{free_port()}"

"""The web provider against a real HTTPS server with a self-signed certificate, in-process.

``insecure: true`` skips certificate verification (Argo's meaning); without it the
measurement fails with a message that says why and what to set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from rollouts.metrics.providers import ProviderError
from rollouts.metrics.providers import web as web_provider
from rollouts.server.tls import load_serving_cert


@pytest.fixture
async def https_url() -> AsyncIterator[str]:
    async def health(_req: web.Request) -> web.Response:
        return web.json_response({"status": {"ok": 1, "latency": 12.5}})

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    cert = load_serving_cert(None, None, "127.0.0.1")  # self-signed, made here
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=cert.context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"https://127.0.0.1:{port}/health"
    finally:
        await runner.cleanup()


async def test_insecure_true_measures_a_self_signed_endpoint(https_url: str) -> None:
    reading = await web_provider({"url": https_url, "insecure": True,
                                  "jsonPath": "{$.status.latency}"})
    assert reading.value == 12.5


@pytest.mark.parametrize("spec", [{}, {"insecure": False}])
async def test_without_insecure_the_certificate_is_verified(
        https_url: str, spec: dict[str, object]) -> None:
    with pytest.raises(ProviderError) as e:
        await web_provider({"url": https_url, "jsonPath": "{$.status.ok}", **spec})
    msg = str(e.value)
    assert "TLS certificate is not trusted" in msg and "web.insecure: true" in msg, msg


async def test_insecure_must_be_a_boolean(https_url: str) -> None:
    with pytest.raises(ProviderError, match=r"web\.insecure must be true or false"):
        await web_provider({"url": https_url, "insecure": "yes"})

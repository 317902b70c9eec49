"""A Web metric against a self-signed HTTPS endpoint, as an AnalysisRun on the test bed.

``web.insecure: true`` (Argo's field) measures it; without it every measurement is an
Error whose message says the certificate is not trusted and what to set. The endpoint is
a tiny HTTPS server this test starts on 127.0.0.1 with a certificate it makes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from rollouts.kube.apply import apply
from rollouts.kube.client import JSON, Kube
from rollouts.server.tls import load_serving_cert
from tests.e2e.kit import ControllerProcess, eventually


@pytest.fixture
async def self_signed_endpoint() -> AsyncIterator[str]:
    async def health(_req: web.Request) -> web.Response:
        return web.json_response({"checks": {"ok": 1}})

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0,
                       ssl_context=load_serving_cert(None, None, "127.0.0.1").context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"https://127.0.0.1:{port}/health"
    finally:
        await runner.cleanup()


def _run(name: str, web_spec: dict[str, Any]) -> JSON:
    return {"apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": name},
            "spec": {"metrics": [{"name": "health", "interval": "1s", "count": 2,
                                  "consecutiveErrorLimit": 0, "successCondition": "result == 1",
                                  "provider": {"web": {"jsonPath": "{$.checks.ok}", **web_spec}}}]}}


async def _finished(rkube: Kube, ns: str, name: str) -> JSON | None:
    run: JSON = await rkube.get(f"/apis/rollouts.dev/v1alpha1/namespaces/{ns}/analysisruns/{name}")
    phase = (run.get("status") or {}).get("phase")
    return run if phase in ("Successful", "Failed", "Error", "Inconclusive") else None


async def test_web_metric_insecure_true_measures_a_self_signed_endpoint(
        rkube: Kube, namespace: str, self_signed_endpoint: str,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns, url = namespace, self_signed_endpoint
    start_controller()
    await apply(rkube, _run("insecure", {"url": url, "insecure": True}), ns)
    await apply(rkube, _run("verified", {"url": url}), ns)

    run = await eventually(lambda: _finished(rkube, ns, "insecure"), 60, "insecure run finished")
    st = run["status"]
    assert st["phase"] == "Successful", st
    res = st["metricResults"][0]
    assert res["successful"] == 2 and not res.get("error"), res

    run = await eventually(lambda: _finished(rkube, ns, "verified"), 60, "verified run finished")
    st = run["status"]
    assert st["phase"] == "Error", st
    msg = st["metricResults"][0]["measurements"][-1]["message"]
    assert "TLS certificate is not trusted" in msg and "web.insecure: true" in msg, msg
    assert "web.insecure" in st.get("message", ""), st

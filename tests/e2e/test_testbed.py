"""The test bed itself behaves like a real cluster with real Prometheus and Alertmanager."""

from __future__ import annotations

import copy
import time
from typing import Any

import httpx
import pytest
from aiohttp import web
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from testbed.cluster import TestBed
from tests.e2e.kit import eventually


async def _ready_pods(core: client.CoreV1Api, ns: str, selector: str) -> int:
    pods = await core.list_namespaced_pod(ns, label_selector=selector)
    return sum(
        1 for p in pods.items
        if p.metadata.deletion_timestamp is None and p.status.conditions
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)
    )


async def test_deployment_pods_become_ready_on_kwok_nodes_and_scale_down(
        kube: client.ApiClient, namespace: str) -> None:
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    dep = {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "example/web:1"}]}},
        },
    }
    await apps.create_namespaced_deployment(namespace, dep)
    t0 = time.monotonic()
    await eventually(lambda: _count_is(core, namespace, 3), 60, "3 ready pods")
    assert time.monotonic() - t0 < 60
    pods = await core.list_namespaced_pod(namespace, label_selector="app=web")
    assert all(p.spec.node_name and p.spec.node_name.startswith("kwok-node-") for p in pods.items)

    await apps.patch_namespaced_deployment_scale(namespace=namespace, name="web",
                                                 body={"spec": {"replicas": 1}})
    await eventually(lambda: _total_pods_is(core, namespace, 1), 60, "1 pod left")
    assert await _ready_pods(core, namespace, "app=web") == 1


async def _count_is(core: client.CoreV1Api, ns: str, n: int) -> bool:
    return await _ready_pods(core, ns, "app=web") == n


async def _total_pods_is(core: client.CoreV1Api, ns: str, n: int) -> bool:
    pods = await core.list_namespaced_pod(ns, label_selector="app=web")
    return len(pods.items) == n


VALID_VS = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "shop"},
    "spec": {
        "hosts": ["shop"],
        "http": [{
            "name": "primary",
            "route": [
                {"destination": {"host": "shop-stable"}, "weight": 80},
                {"destination": {"host": "shop-canary"}, "weight": 20},
            ],
        }],
    },
}


async def test_istio_schema_rejects_invalid_virtualservice_and_keeps_valid_one(
        kube: client.ApiClient, namespace: str) -> None:
    api = client.CustomObjectsApi(kube)
    bad = copy.deepcopy(VALID_VS)
    bad["metadata"]["name"] = "bad"
    bad["spec"]["http"][0]["route"][0]["weight"] = "eighty"  # must be an integer
    with pytest.raises(ApiException) as err:
        await api.create_namespaced_custom_object("networking.istio.io", "v1", namespace,
                                                  "virtualservices", bad)
    assert err.value.status == 422
    assert "weight" in err.value.body

    await api.create_namespaced_custom_object("networking.istio.io", "v1", namespace,
                                              "virtualservices", copy.deepcopy(VALID_VS))
    got = await api.get_namespaced_custom_object("networking.istio.io", "v1", namespace,
                                                 "virtualservices", "shop")
    assert got["spec"] == VALID_VS["spec"]


async def test_alert_posted_to_alertmanager_reaches_webhook_receiver(
        testbed: TestBed, namespace: str) -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        testbed.route_alerts("namespace", namespace, f"http://127.0.0.1:{port}/hook")
        alert = [{"labels": {"alertname": "TestBedAlert", "namespace": namespace, "severity": "info"},
                  "annotations": {"summary": "hello from the test bed"}}]
        async with httpx.AsyncClient() as http:
            r = await http.post(f"{testbed.alertmanager_url}/api/v2/alerts", json=alert)
            assert r.status_code == 200, r.text

        async def got_it() -> bool:
            return any(a["labels"].get("alertname") == "TestBedAlert"
                       for msg in received for a in msg.get("alerts", []))

        await eventually(got_it, 30, "the webhook to receive the alert")
        msg = next(m for m in received if m.get("alerts"))
        assert msg["status"] == "firing"
        assert msg["alerts"][0]["annotations"]["summary"] == "hello from the test bed"
    finally:
        testbed.route_alerts("namespace", namespace, None)
        await runner.cleanup()

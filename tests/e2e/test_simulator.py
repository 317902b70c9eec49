"""The traffic simulator against the real test bed: weights in, Istio metrics out.

Uses the test bed's fixtures (``testbed``, ``namespace``, ``kube``): real apiserver,
controller-manager and kwok for the pods, real Prometheus scraping the simulator
every second, and PromQL written as for a real Istio mesh.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from typing import Any

import httpx
import pytest
from kubernetes_asyncio import client

from testbed.simulator import Simulator

pytestmark = pytest.mark.e2e

GROUP, VERSION = "networking.istio.io", "v1"
MERGE_PATCH = "application/merge-patch+json"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --------------------------------------------------------------------------- helpers


def deployment(name: str, replicas: int, annotations: dict[str, str]) -> Any:  # V1Deployment
    labels = {"app": "demo", "track": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "containers": [{"name": "app", "image": "demo:1"}],
                    # kwok fake nodes; tolerate their usual taint should one be set.
                    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists"}],
                },
            },
        },
    }


def service(name: str, track: str) -> Any:  # a V1Service body, as a dict
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {"app": "demo", "track": track},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    }


def routes(stable: int, canary: int) -> list[dict[str, Any]]:
    return [
        {"destination": {"host": "demo-stable"}, "weight": stable},
        {"destination": {"host": "demo-canary"}, "weight": canary},
    ]


def virtual_service(stable: int, canary: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VirtualService",
        "metadata": {"name": "demo"},
        "spec": {"hosts": ["demo.example.com"], "http": [{"route": routes(stable, canary)}]},
    }


async def patch_vs(kube: client.ApiClient, ns: str, body: dict[str, Any]) -> None:
    custom: Any = client.CustomObjectsApi(kube)  # its stub lacks _content_type
    await custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, "virtualservices", "demo", body, _content_type=MERGE_PATCH
    )


async def wait_ready_pods(kube: client.ApiClient, ns: str, want: int, timeout: float) -> None:
    core = client.CoreV1Api(kube)
    deadline = time.monotonic() + timeout
    ready = 0
    while time.monotonic() < deadline:
        pods = (await core.list_namespaced_pod(ns, label_selector="app=demo")).items
        ready = sum(
            1
            for p in pods
            if p.metadata.deletion_timestamp is None
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        )
        if ready >= want:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"only {ready}/{want} demo pods Ready after {timeout:.0f}s")


async def promql(http: httpx.AsyncClient, url: str, query: str) -> float | None:
    """A scalar from an instant query (None when the result is empty or NaN)."""
    r = await http.get(f"{url}/api/v1/query", params={"query": query})
    r.raise_for_status()
    result = r.json()["data"]["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value


async def wait_for(
    http: httpx.AsyncClient, url: str, query: str, ok: Any, timeout: float
) -> tuple[float | None, float]:
    """Poll ``query`` until ``ok(value)``; returns (last value, seconds waited)."""
    t0 = time.monotonic()
    value: float | None = None
    while time.monotonic() - t0 < timeout:
        value = await promql(http, url, query)
        if value is not None and ok(value):
            break
        await asyncio.sleep(1.0)
    return value, time.monotonic() - t0


def share_query(ns: str, window: str) -> str:
    canary = f'destination_service_name="demo-canary", destination_service_namespace="{ns}"'
    every = f'destination_service_namespace="{ns}"'
    return (
        f"sum(rate(istio_requests_total{{{canary}}}[{window}]))"
        f" / sum(rate(istio_requests_total{{{every}}}[{window}]))"
    )


def remove_target(testbed: Any, job: str) -> None:
    remove = getattr(testbed, "remove_scrape_target", None)
    if remove is not None:
        remove(job)


# --------------------------------------------------------------------------- tests


async def test_weights_and_errors_reach_prometheus(
    testbed: Any, namespace: str, kube: client.ApiClient
) -> None:
    ns = namespace
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    await apps.create_namespaced_deployment(ns, deployment("stable", 3, {}))
    await apps.create_namespaced_deployment(
        ns, deployment("canary", 1, {"simulator.rollouts.dev/error-rate": "0.05"})
    )
    await core.create_namespaced_service(ns, service("demo-stable", "stable"))
    await core.create_namespaced_service(ns, service("demo-canary", "canary"))
    await client.CustomObjectsApi(kube).create_namespaced_custom_object(
        GROUP, VERSION, ns, "virtualservices", virtual_service(80, 20)
    )
    await wait_ready_pods(kube, ns, 4, timeout=60)

    job = f"simulator-{ns}"
    url = testbed.prometheus_url
    # 200 rps: the 30 s window of step 1 holds as many requests (~6000) as a minute at 100.
    async with (
        Simulator(api_client=kube, namespace=ns, rps=200, seed=20) as sim,
        httpx.AsyncClient(timeout=10) as http,
    ):
        testbed.add_scrape_target(job, sim.address)
        started = time.monotonic()
        # The workload labels come from the ReplicaSets (hash trimmed).
        workloads = {
            dict(d.service_labels)["destination_service_name"]: {
                dict(g.labels)["destination_workload"] for g in d.groups
            }
            for d in sim.plans[0].destinations
        }
        assert workloads == {"demo-stable": {"stable"}, "demo-canary": {"canary"}}

        # 1. 80/20 over 30 s of traffic (~6000 requests: the share's sd is 0.005).
        value, _ = await wait_for(
            http, url, f'count(istio_requests_total{{destination_service_namespace="{ns}"}})',
            lambda v: v >= 2, timeout=30,
        )  # fmt: skip
        assert value is not None, "Prometheus never scraped the simulator"
        await asyncio.sleep(max(0.0, 32 - (time.monotonic() - started)))
        share_80_20 = await promql(http, url, share_query(ns, "30s"))
        print(f"canary share at 80/20 over 30s: {share_80_20}")
        assert share_80_20 is not None and abs(share_80_20 - 0.20) <= 0.03

        # 2. 50/50: the simulator's plan follows the watch at once, PromQL within 30 s.
        await patch_vs(kube, ns, {"spec": {"http": [{"route": routes(50, 50)}]}})
        patched = time.monotonic()
        while sim.plans[0].destinations[1].weight != 50:
            assert time.monotonic() - patched < 1.0, "watch did not deliver the new weights"
            await asyncio.sleep(0.02)
        watch_lag = time.monotonic() - patched
        share_50_50, waited = await wait_for(
            http, url, share_query(ns, "15s"), lambda v: abs(v - 0.5) <= 0.03, timeout=30
        )
        print(f"watch lag {watch_lag:.3f}s; 15s-window share {share_50_50} after {waited:.1f}s")
        assert share_50_50 is not None and abs(share_50_50 - 0.5) <= 0.03, (share_50_50, waited)
        assert waited <= 30

        # 3. The canary's 5 % errors, at a higher rate to shrink the noise.
        await patch_vs(kube, ns, {"metadata": {"annotations": {"simulator.rollouts.dev/rps": "2000"}}})
        canary = f'destination_service_name="demo-canary", destination_service_namespace="{ns}"'
        # until Prometheus holds 12000 canary requests (the 5 % share's sd is then 0.002,
        # the bounds below are 5 sd away): ~10 s at 1000 canary rps, longer on a slow machine
        total, _ = await wait_for(
            http, url, f"sum(increase(istio_requests_total{{{canary}}}[5m]))",
            lambda v: v >= 12000, timeout=60,
        )  # fmt: skip
        assert total is not None and total >= 12000, f"only {total} canary requests in Prometheus"
        errors = await promql(
            http,
            url,
            f'sum(increase(istio_requests_total{{{canary}, response_code=~"5.."}}[5m]))'
            f" / sum(increase(istio_requests_total{{{canary}}}[5m]))",
        )
        stable_errors = await promql(
            http,
            url,
            'sum(istio_requests_total{destination_service_name="demo-stable",'
            f' destination_service_namespace="{ns}", response_code=~"5.."}})',
        )
        median = await promql(
            http,
            url,
            "histogram_quantile(0.5, sum by (le) (rate("
            f"istio_request_duration_milliseconds_bucket{{{canary}}}[1m])))",
        )
        print(f"canary 5xx share {errors}; stable 5xx {stable_errors}; canary median ms {median}")
        assert errors is not None and 0.04 <= errors <= 0.06
        assert stable_errors is None  # no 5xx series for the healthy stable pods
        assert median is not None and 25 <= median <= 100  # default median latency 50 ms
    remove_target(testbed, job)


async def test_subprocess_cli_reports_unready_destination_and_stops_on_sigterm(
    testbed: Any, namespace: str, kube: client.ApiClient
) -> None:
    """The CLI: first line names the port; a Service without pods gives 503 UH."""
    ns = namespace
    await client.CoreV1Api(kube).create_namespaced_service(ns, service("demo-canary", "canary"))
    vs = virtual_service(0, 100)
    vs["spec"]["http"][0]["route"] = [{"destination": {"host": "demo-canary"}}]
    await client.CustomObjectsApi(kube).create_namespaced_custom_object(
        GROUP, VERSION, ns, "virtualservices", vs
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "testbed.simulator", "--kubeconfig", testbed.kubeconfig,
        "--namespace", ns, "--rps", "50", "--seed", "1", "--listen", "127.0.0.1:0",
        cwd=REPO, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=30)).decode().strip()
        assert line.startswith("listening 127.0.0.1:"), line
        address = line.split()[1]
        async with httpx.AsyncClient(timeout=5) as http:
            text = ""
            for _ in range(50):
                text = (await http.get(f"http://{address}/metrics")).text
                if "istio_requests_total{" in text:
                    break
                await asyncio.sleep(0.1)
        sample = next(ln for ln in text.splitlines() if ln.startswith("istio_requests_total{"))
        assert f'destination_service="demo-canary.{ns}.svc.cluster.local"' in sample
        assert 'response_code="503"' in sample and 'response_flags="UH"' in sample
        # per-pod series (the default): no destination proxy saw it, the gateway reports it
        assert 'reporter="source"' in sample and 'pod="istio-ingressgateway"' in sample
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

"""Analysis through each router, end to end: the simulator follows the router's objects (the
NGINX canary Ingress, the SMI TrafficSplit, the HTTPRoute), exports the metrics that
router's users query (ingress-nginx's for NGINX, Istio's for the mesh routers), the test
bed's Prometheus scrapes them, and an analysis step with the shipped template for that
router (examples/) judges the canary: a bad canary is rolled back, a good one promoted.

What a user would check: `kubectl get rollout` Degraded with the analysis's reason and all
traffic back on stable (no canary Ingress, TrafficSplit/HTTPRoute weight 0) for the bad
version; Healthy on the new version, both analysis runs Successful, for the good one; and
the router's series in Prometheus showing the canary's share of requests.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import yaml

from rollouts.kube.apply import apply
from rollouts.kube.client import JSON, Kube
from rollouts.kube.signals import request_action
from testbed.cluster import TestBed
from testbed.simulator.core import Simulator
from tests.e2e.kit import (
    REPO,
    ControllerProcess,
    eventually,
    get_rollout,
    phase_is,
    rollout,
    services,
    virtual_service,
)
from tests.e2e.test_router_crds import routers_installed  # noqa: F401  (fixture)
from tests.e2e.test_routers import ROUTERS

pytestmark = pytest.mark.e2e

SIM = "simulator.rollouts.dev/"
STABLE = {SIM + "error-rate": "0.01", SIM + "latency-ms": "50"}


def _templates(name: str) -> dict[str, JSON]:
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all((REPO / "examples" / name).read_text())}


# router -> (shipped template, its file, the analysis step's args beyond prometheus-address)
JUDGES: dict[str, tuple[str, str, list[JSON]]] = {
    "nginx": ("nginx-canary-judge", "analysis-templates-nginx.yaml", [{"name": "ingress", "value": "demo"}]),
    "alb": ("alb-canary-judge", "analysis-templates-alb.yaml", [
        {"name": "ingress", "value": "demo"}, {"name": "canary-service", "value": "demo-canary"},
        {"name": "stable-service", "value": "demo-stable"}]),
    "smi": ("canary-judge", "analysis-templates.yaml", [
        {"name": "canary-service", "value": "demo-canary"},
        {"name": "stable-service", "value": "demo-stable"}]),
    "gatewayAPI": ("canary-judge", "analysis-templates.yaml", [
        {"name": "canary-service", "value": "demo-canary"},
        {"name": "stable-service", "value": "demo-stable"}]),
}
# the share of the canary's requests as that router's users query it
CANARY_SHARE = {
    "nginx": ('sum(nginx_ingress_controller_requests{{namespace="{ns}",ingress="demo",canary!=""}})'
              ' / sum(nginx_ingress_controller_requests{{namespace="{ns}",ingress="demo"}})'),
    "alb": ('sum(nginx_ingress_controller_requests{{namespace="{ns}",ingress="demo",service="demo-canary"}})'
            ' / sum(nginx_ingress_controller_requests{{namespace="{ns}",ingress="demo"}})'),
    "mesh": ('sum(istio_requests_total{{destination_service_namespace="{ns}",'
             'destination_service_name="demo-canary"}}) / sum(istio_requests_total{{'
             'destination_service_namespace="{ns}",destination_service_name=~"demo-stable|demo-canary"}})'),
}


@pytest.fixture
async def simulator(testbed: TestBed, namespace: str, routers_installed: None  # noqa: F811
                    ) -> AsyncIterator[Simulator]:
    sim = Simulator(kubeconfig=testbed.kubeconfig, namespace=namespace, rps=1000, seed=11)
    await sim.start()
    testbed.add_scrape_target(f"sim-{namespace}", sim.address)
    try:
        yield sim
    finally:
        testbed.remove_scrape_target(f"sim-{namespace}")
        await sim.stop()


def judge(router: str, *, interval: str, count: int) -> JSON:
    name, file, _ = JUDGES[router]
    t = copy.deepcopy(_templates(file)[name])
    m = t["spec"]["metrics"][0]
    m["interval"], m["count"] = interval, count
    m["provider"]["judge"]["earlyPromotion"] = False
    return t


def analysis_step(router: str, prom: str) -> JSON:
    name, _, args = JUDGES[router]
    return {"analysis": {"templates": [{"templateName": name}],
                         "args": [*args, {"name": "prometheus-address", "value": prom}]}}


async def release(rkube: Kube, ns: str, router: str, steps: list[JSON], template: JSON,
                  canary: dict[str, str]) -> None:
    """First deploy through ``router`` with the stable behaviour, then a new version with
    ``canary`` behaviour."""
    config, objects, _ = ROUTERS[router]
    for obj in [*services(), *objects(), copy.deepcopy(template)]:
        await apply(rkube, obj, ns)
    ro = rollout(steps, replicas=4, scaleDownDelaySeconds=2)
    ro["spec"]["strategy"]["canary"]["trafficRouting"] = copy.deepcopy(config)
    ro["spec"]["template"]["metadata"]["annotations"] = dict(STABLE)
    await apply(rkube, ro, ns)
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy")
    new = copy.deepcopy(ro)
    new["spec"]["template"]["metadata"]["annotations"] = {**STABLE, **canary}
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "demo:2"
    await apply(rkube, new, ns)


async def _runs(rkube: Kube, ns: str) -> list[JSON]:
    data = await rkube.get_list(f"/apis/rollouts.dev/v1alpha1/namespaces/{ns}/analysisruns")
    return list(data["items"])


async def _query(prom: str, q: str) -> float | None:
    async with httpx.AsyncClient(timeout=5) as c:
        r = await c.get(f"{prom}/api/v1/query", params={"query": q})
    res = r.json()["data"]["result"]
    return float(res[0]["value"][1]) if res else None


async def _canary_share(prom: str, router: str, ns: str) -> float | None:
    share = await _query(prom, CANARY_SHARE.get(router, CANARY_SHARE["mesh"]).format(ns=ns))
    return share if share and share > 0 else None


def _rendered(file: str, name: str, args: dict[str, str]) -> str:
    """The shipped template's PromQL with its args filled in."""
    query: str = _templates(file)[name]["spec"]["metrics"][0]["provider"]["prometheus"]["query"]
    for k, v in args.items():
        query = query.replace("{{args." + k + "}}", v)
    assert "{{" not in query, query
    return query


async def _argo_style_templates_read_the_canary(prom: str, router: str, ns: str) -> None:
    """nginx-/alb-success-rate sees the canary's 20 % errors; -latency-p99 its p99 (median
    50 ms, log-sd 0.5: about 0.16 s, read from the 0.1/0.25 s buckets), in seconds."""
    file = f"analysis-templates-{router}.yaml"
    args = {"namespace": ns, "ingress": "demo", "canary-service": "demo-canary"}
    success = _rendered(file, f"{router}-success-rate", args)
    p99 = _rendered(file, f"{router}-latency-p99", args)

    async def read() -> tuple[float, float] | None:
        s, p = await _query(prom, success), await _query(prom, p99)
        return (s, p) if s is not None and p is not None and 0.7 < s < 0.9 else None

    _, latency = await eventually(read, 30, f"{router} success rate about 0.8")
    assert 0.1 < latency < 0.3, latency


async def _canary_seen(prom: str, router: str, ns: str, sim: Simulator) -> None:
    try:
        await eventually(lambda: _canary_share(prom, router, ns), 30,
                         f"canary requests in the {router} series")
    except AssertionError as e:  # say what the simulator routed
        plans = [(p.kind, p.name, [(dict(d.service_labels), d.weight, d.failure_flag)
                                   for d in p.destinations]) for p in sim.plans]
        raise AssertionError(f"{e}; the simulator's plans: {plans}") from None


async def _promoted(rkube: Kube, ns: str, last_step: int) -> JSON | None:
    ro = await get_rollout(rkube, ns)
    st = ro.get("status") or {}
    if st.get("phase") == "Degraded":
        raise AssertionError(f"rolled back instead: {st.get('message')}")
    ok = (st.get("phase") == "Healthy" and st.get("stableRS") == st.get("currentPodHash")
          and st.get("observedGeneration") == ro["metadata"]["generation"]
          and st.get("currentStepIndex") == last_step)
    return ro if ok else None


@pytest.mark.parametrize("router", ["nginx", "alb", "smi", "gatewayAPI"])
async def test_bad_canary_is_rolled_back_by_analysis_on_the_routers_metrics(
        router: str, rkube: Kube, namespace: str, testbed: TestBed, simulator: Simulator,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns, prom = namespace, testbed.prometheus_url
    start_controller()
    steps = [{"setWeight": 20}, analysis_step(router, prom), {"setWeight": 60}]
    await release(rkube, ns, router, steps, judge(router, interval="2s", count=15),
                  {SIM + "error-rate": "0.2"})
    # the router's series carry the canary's requests
    await _canary_seen(prom, router, ns, simulator)
    if router in ("nginx", "alb"):  # the router's other shipped templates, on the same series
        await _argo_style_templates_read_the_canary(prom, router, ns)
    ro = await eventually(lambda: phase_is(rkube, ns, "Degraded"), 60, "rolled back")
    msg = ro["status"]["message"]
    assert "RolloutAborted" in msg and "error" in msg, msg
    run = next(r for r in await _runs(rkube, ns) if r["status"].get("phase") == "Failed")
    assert "error rate" in run["status"]["message"], run["status"]["message"]
    _, _, weight = ROUTERS[router]
    await eventually(lambda: _weight_in(weight, rkube, ns, {0, None}), 30, "all traffic on stable")


async def _weight_in(weight: Callable[[Kube, str], Any], rkube: Kube, ns: str, want: set[int | None]) -> bool:
    return await weight(rkube, ns) in want


@pytest.mark.parametrize("router", ["nginx", "smi"])
async def test_good_canary_is_promoted_by_analysis_on_the_routers_metrics(
        router: str, rkube: Kube, namespace: str, testbed: TestBed, simulator: Simulator,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns, prom = namespace, testbed.prometheus_url
    start_controller()
    steps = [{"setWeight": 30}, analysis_step(router, prom), {"setWeight": 60}]
    template = judge(router, interval="2s", count=4)
    # a false rollback (at most alpha, in practice far less in 4 looks) would make the test
    # flaky: a smaller alpha keeps it negligible
    template["spec"]["metrics"][0]["provider"]["judge"]["alpha"] = 0.01
    await release(rkube, ns, router, steps, template, {SIM + "error-rate": "0.01"})
    await _canary_seen(prom, router, ns, simulator)
    ro = await eventually(lambda: _promoted(rkube, ns, len(steps)), 90, "promoted")
    assert ro["status"]["phase"] == "Healthy"
    runs = await _runs(rkube, ns)
    assert len(runs) == 1 and runs[0]["status"]["phase"] == "Successful", runs
    measurements = runs[0]["status"]["metricResults"][0]["measurements"]
    assert len(measurements) == 4 and measurements[-1]["phase"] == "Successful", measurements


HEADER_STEPS: list[JSON] = [
    {"setWeight": 10},
    {"setHeaderRoute": {"name": "canary-header",
                        "match": [{"headerName": "X-Canary", "headerValue": {"exact": "yes"}}]}},
    {"pause": {}}]
RATE_SHARE = {
    "nginx": ('sum(rate(nginx_ingress_controller_requests{{namespace="{ns}",ingress="demo",canary!=""}}[4s]))'
              ' / sum(rate(nginx_ingress_controller_requests{{namespace="{ns}",ingress="demo"}}[4s]))'),
    "mesh": ('sum(rate(istio_requests_total{{destination_service_namespace="{ns}",'
             'destination_service_name="demo-canary"}}[4s])) / sum(rate(istio_requests_total{{'
             'destination_service_namespace="{ns}",'
             'destination_service_name=~"demo-stable|demo-canary"}}[4s]))'),
}


@pytest.mark.parametrize("router", ["nginx", "gatewayAPI", "istio"])
async def test_header_route_sends_the_header_clients_to_the_canary(
        router: str, rkube: Kube, namespace: str, testbed: TestBed,
        routers_installed: None,  # noqa: F811
        start_controller: Callable[..., ControllerProcess]) -> None:
    """A setHeaderRoute step at weight 10: the 20 % of clients sending ``X-Canary: yes`` all
    reach the canary (the canary Ingress's canary-by-header, the HTTPRoute's header rule),
    10 % of the others do: 28 % of all requests; abort takes them all back to stable."""
    ns, prom = namespace, testbed.prometheus_url
    sim = Simulator(kubeconfig=testbed.kubeconfig, namespace=ns, rps=1000, seed=5,
                    headers={"X-Canary": "yes"}, header_share=0.2)
    await sim.start()
    testbed.add_scrape_target(f"sim-{ns}", sim.address)
    try:
        start_controller()
        ro = rollout(HEADER_STEPS, replicas=2, scaleDownDelaySeconds=2)
        if router == "istio":
            config, objects = ro["spec"]["strategy"]["canary"]["trafficRouting"], [virtual_service()]
        else:
            config, objects = ROUTERS[router][0], ROUTERS[router][1]()
        for obj in [*services(), *objects]:
            await apply(rkube, obj, ns)
        ro["spec"]["strategy"]["canary"]["trafficRouting"] = {
            **copy.deepcopy(config), "managedRoutes": [{"name": "canary-header"}]}
        await apply(rkube, ro, ns)
        await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy")
        new = copy.deepcopy(ro)
        new["spec"]["template"]["spec"]["containers"][0]["image"] = "demo:2"
        await apply(rkube, new, ns)
        await eventually(lambda: phase_is(rkube, ns, "Paused"), 60, "paused on the header route")

        async def share_in(lo: float, hi: float) -> bool:
            v = await _query(prom, RATE_SHARE.get(router, RATE_SHARE["mesh"]).format(ns=ns))
            return v is not None and lo <= v <= hi

        try:
            await eventually(lambda: share_in(0.23, 0.33), 30, "28 % of requests on the canary")
        except AssertionError as e:
            plans = [(p.kind, p.name, p.header_share,
                      [(dict(d.service_labels), d.weight) for d in p.destinations],
                      [(dict(d.service_labels), d.weight) for d in p.header_destinations])
                     for p in sim.plans]
            objs = (await rkube.get_list(f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses"))["items"]
            routes = await rkube.get_list(f"/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes")
            raise AssertionError(f"{e}; plans {plans}; ingresses {[o['metadata'] for o in objs]}; "
                                 f"routes {[r['spec'] for r in routes['items']]}") from None
        await request_action(rkube, ns, "demo", "abort", user="e2e")
        await eventually(lambda: share_in(0.0, 0.01), 30, "no request on the canary after abort")
    finally:
        testbed.remove_scrape_target(f"sim-{ns}")
        await sim.stop()

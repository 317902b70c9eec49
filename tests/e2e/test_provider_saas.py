"""Datadog, New Relic, Wavefront, CloudWatch and Kayenta metrics as AnalysisRuns on the
test bed, each against an in-test server of the vendor's API (tests/providers_fakes).

What a user checks: each run succeeds with the value the vendor returned in its
measurements; wrong credentials give an Error run naming the 401/403 after
consecutiveErrorLimit errors; a query without data is an Error, never a success; a rollout
whose Datadog analysis passes is promoted. Credentials are where Argo reads them: Secrets
in the controller's namespace (POD_NAMESPACE is the test's namespace here) and, for
CloudWatch, the controller's AWS environment.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from rollouts.kube.apply import apply
from rollouts.kube.client import JSON, Kube
from tests.e2e.kit import (
    ControllerProcess,
    eventually,
    get_rollout,
    phase_is,
    rollout,
    services,
    virtual_service,
)
from tests.providers_fakes.kit import serve
from tests.providers_fakes.saas import CloudWatch, Datadog, Kayenta, NewRelic, Wavefront

RUNS = "/apis/rollouts.dev/v1alpha1/namespaces/{ns}/analysisruns"
NRQL = "SELECT percentage(count(*), WHERE error IS true) AS rate FROM Transaction"


def secret(name: str, data: dict[str, str]) -> JSON:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def run(name: str, provider: dict[str, Any], success: str | None = None, **metric: Any) -> JSON:
    m: dict[str, Any] = {"name": name, "provider": provider, **metric}
    if success:
        m["successCondition"] = success
    return {"apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": name}, "spec": {"metrics": [m]}}


async def done(rkube: Kube, ns: str, name: str) -> JSON | None:
    r: JSON = await rkube.get(RUNS.format(ns=ns) + "/" + name)
    return r if (r.get("status") or {}).get("phase") in (
        "Successful", "Failed", "Error", "Inconclusive") else None


@pytest.fixture
async def vendors(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, Any]]:
    dd = Datadog(series={"avg:trace.errors{service:shop}": [0.02, 0.01]})
    nr = NewRelic(results={NRQL: [{"rate": 0.4}]})
    wf = Wavefront(series={"ts(shop.error.rate)": [[[-1, 0.03]]]})
    cw = CloudWatch(values={"shop_5xx": [2.0, 5.0]})
    ky = Kayenta(configs=[{"id": "cfg-1", "name": "shop-canary"}], score=93)
    async with serve(dd.app()) as d, serve(nr.app()) as n, serve(wf.app()) as w, \
            serve(cw.app()) as c, serve(ky.app()) as k:
        for key, value in (("AWS_ACCESS_KEY_ID", cw.access_key),
                           ("AWS_SECRET_ACCESS_KEY", cw.secret_key), ("AWS_REGION", cw.region),
                           ("AWS_ENDPOINT_URL_CLOUDWATCH", c)):
            monkeypatch.setenv(key, value)  # the controller's environment (started after)
        yield {"dd": (dd, d), "nr": (nr, n), "wf": (wf, w), "cw": (cw, c), "ky": (ky, k)}


async def test_each_saas_provider_measures_through_its_api(
        rkube: Kube, namespace: str, vendors: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    dd_url, nr_url, wf_url, ky_url = (vendors[k][1] for k in ("dd", "nr", "wf", "ky"))
    for s in (secret("datadog", {"address": dd_url, "api-key": "dd-api", "app-key": "dd-app"}),
              secret("datadog-wrong", {"address": dd_url, "api-key": "dd-api", "app-key": "nope"}),
              secret("newrelic", {"personal-api-key": "NRAK-test", "account-id": "1234567",
                                  "base-url-nerdgraph": f"{nr_url}/graphql"}),
              secret("wavefront-api-tokens", {"127.0.0.1": "wf-token"})):
        await apply(rkube, s, ns)
    monkeypatch.setenv("POD_NAMESPACE", ns)
    start_controller()
    kayenta = {"address": ky_url, "application": "shop", "canaryConfigName": "shop-canary",
               "metricsAccountName": "prom", "configurationAccountName": "cfg",
               "storageAccountName": "store", "threshold": {"pass": 90, "marginal": 75},
               "pollInterval": "250ms",
               "scopes": [{"name": "default",
                           "controlScope": {"scope": "role=stable", "region": "eu", "step": 60},
                           "experimentScope": {"scope": "role=canary", "region": "eu", "step": 60}}]}
    good = [
        run("datadog", {"datadog": {"query": "avg:trace.errors{service:shop}"}}, "result < 0.05"),
        run("newrelic", {"newRelic": {"query": NRQL}}, "result.rate < 1"),
        run("wavefront", {"wavefront": {"address": wf_url, "query": "ts(shop.error.rate)"}},
            "result < 0.05"),
        run("cloudwatch", {"cloudWatch": {"metricDataQueries": [{"id": "e", "metricStat": {
            "metric": {"namespace": "Shop", "metricName": "shop_5xx"}, "period": 60,
            "stat": "Sum"}}]}}, "result[0].Values[0] < 10"),
        run("kayenta", {"kayenta": kayenta}, interval="5m", count=1),
    ]
    bad = [
        run("datadog-bad-key", {"datadog": {"query": "avg:trace.errors{service:shop}",
                                        "secretRef": {"name": "datadog-wrong"}}},
            "result < 0.05", interval="1s", count=2, consecutiveErrorLimit=1),
        run("newrelic-empty", {"newRelic": {"query": "SELECT count(*) FROM Nothing"}},
            "true", consecutiveErrorLimit=0),
    ]
    for r in good + bad:
        await apply(rkube, r, ns)

    expect = {"datadog": "0.01", "newrelic": "rate", "wavefront": "0.03", "cloudwatch": "5.0",
              "kayenta": "93"}
    for name, value in expect.items():
        r = await eventually(lambda name=name: done(rkube, ns, name), 60, f"{name} finished")
        st = r["status"]
        assert st["phase"] == "Successful", (name, st)
        m = st["metricResults"][0]["measurements"][-1]
        assert m["phase"] == "Successful" and value in str(m["value"]), (name, m)

    r = await eventually(lambda: done(rkube, ns, "datadog-bad-key"), 60, "datadog-bad-key finished")
    res = r["status"]["metricResults"][0]
    assert r["status"]["phase"] == "Error" and res["consecutiveError"] == 2, r["status"]
    assert "rejected the credentials (HTTP 403): Forbidden" in res["measurements"][-1]["message"]
    r = await eventually(lambda: done(rkube, ns, "newrelic-empty"), 60, "newrelic-empty finished")
    assert r["status"]["phase"] == "Error", r["status"]
    assert "returned no results" in r["status"]["metricResults"][0]["measurements"][-1]["message"]


async def test_datadog_analysis_promotes_a_healthy_canary(
        rkube: Kube, namespace: str, vendors: dict[str, Any],
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    fake, url = vendors["dd"]
    await apply(rkube, secret("datadog", {"address": url, "api-key": "dd-api", "app-key": "dd-app"}), ns)
    start_controller(f"--controller-namespace={ns}")  # the flag, this time: Secrets are read there
    tmpl = {"apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": "dd-errors"},
            "spec": {"metrics": [{"name": "errors", "interval": "1s", "count": 2,
                                  "successCondition": "result < 0.05",
                                  "provider": {"datadog": {"apiVersion": "v2", "aggregator": "last",
                                                           "query": "avg:trace.errors{service:shop}"}}}]}}
    for obj in [*services(), virtual_service(), tmpl]:
        await apply(rkube, obj, ns)
    ro = rollout([{"setWeight": 50}, {"analysis": {"templates": [{"templateName": "dd-errors"}]}}],
                 replicas=2, scaleDownDelaySeconds=2)
    await apply(rkube, ro, ns)
    first = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy")
    ro["spec"]["template"]["spec"]["containers"][0]["image"] = "demo:2"
    await apply(rkube, ro, ns)

    async def promoted() -> JSON | None:
        cur = await get_rollout(rkube, ns)
        st = cur.get("status") or {}
        if st.get("phase") == "Degraded":
            raise AssertionError(f"rolled back instead: {st.get('message')}")
        return cur if st.get("phase") == "Healthy" and st.get("stableRS") == st.get(
            "currentPodHash") != first["status"]["currentPodHash"] else None

    await eventually(promoted, 90, "promoted")
    v2 = [r for r in fake.requests if r["path"] == "/api/v2/query/scalar"]
    assert len(v2) >= 2 and v2[-1]["headers"]["DD-APPLICATION-KEY"] == "dd-app"

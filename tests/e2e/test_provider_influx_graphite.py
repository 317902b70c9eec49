"""Rollouts whose analysis asks a real InfluxDB (1.x, InfluxQL) and a real Graphite
(carbon-cache + graphite-web), both started by the test on 127.0.0.1.

What a user checks: a canary whose error rate in InfluxDB is too high is rolled back, with
the value InfluxDB returned in the AnalysisRun; a canary that Graphite shows healthy is
promoted; a template naming a Secret that does not exist gives an Error run that says so.
The provider Secret lives in the controller's own namespace (Argo's rule): here the
controller runs with POD_NAMESPACE set to the test's namespace.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rollouts.kube.apply import apply
from rollouts.kube.client import JSON, Kube
from tests.e2e.kit import (
    ControllerProcess,
    canary_weight,
    eventually,
    get_rollout,
    phase_is,
    rollout,
    services,
    virtual_service,
)
from tests.providers_fakes.servers import (
    INSTALL,
    Graphite,
    Influx,
    graphite,
    graphite_available,
    influx_available,
    influxdb,
)

RUNS = "/apis/rollouts.dev/v1alpha1/namespaces/{ns}/analysisruns"


@pytest.fixture
def influx() -> Iterator[Influx]:
    if not influx_available():
        pytest.fail(f"influxd is not installed: run `{INSTALL}`")
    with influxdb() as i:
        yield i


@pytest.fixture
def gr() -> Iterator[Graphite]:
    if not graphite_available():
        pytest.fail(f"graphite is not installed: run `{INSTALL}`")
    with graphite() as g:
        yield g


def secret(name: str, data: dict[str, str]) -> JSON:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def template(name: str, provider: dict[str, Any], success: str) -> JSON:
    return {"apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": name},
            "spec": {"metrics": [{"name": name, "interval": "1s", "count": 2,
                                  "successCondition": success, "provider": provider}]}}


async def release(rkube: Kube, ns: str, tmpl: JSON) -> str:
    """Deploys version 1, then version 2 behind the analysis step; returns v1's pod hash."""
    for obj in [*services(), virtual_service(), tmpl]:
        await apply(rkube, obj, ns)
    steps = [{"setWeight": 50},
             {"analysis": {"templates": [{"templateName": tmpl["metadata"]["name"]}]}}]
    ro = rollout(steps, replicas=2, scaleDownDelaySeconds=2)
    await apply(rkube, ro, ns)
    first = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy")
    ro["spec"]["template"]["spec"]["containers"][0]["image"] = "demo:2"
    await apply(rkube, ro, ns)
    return str(first["status"]["currentPodHash"])


async def _runs(rkube: Kube, ns: str) -> list[JSON]:
    return list((await rkube.get_list(RUNS.format(ns=ns)))["items"])


async def _run_done(rkube: Kube, ns: str, name: str) -> JSON | None:
    run: JSON = await rkube.get(RUNS.format(ns=ns) + "/" + name)
    return run if (run.get("status") or {}).get("phase") in (
        "Successful", "Failed", "Error", "Inconclusive") else None


async def test_influxdb_error_rate_rolls_back_a_bad_canary(
        rkube: Kube, namespace: str, influx: Influx, monkeypatch: pytest.MonkeyPatch,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    influx.query("CREATE DATABASE shop")
    now = int(time.time())
    influx.write("shop", f"error_rate,version=stable value=0.01 {now - 5}\n"
                         f"error_rate,version=canary value=0.3 {now - 5}\n")
    await apply(rkube, secret("influxdb", {"address": influx.address, "database": "shop"}), ns)
    monkeypatch.setenv("POD_NAMESPACE", ns)  # the controller's namespace holds the Secret
    start_controller()
    # A run naming a profile Secret that does not exist: an Error that says which.
    absent = template("absent", {"influxdb": {"profile": "absent", "query": "SELECT 1"}},
                      "result < 1")
    await apply(rkube, {**absent, "kind": "AnalysisRun",
                        "spec": {**absent["spec"], "metrics": [
                            {**absent["spec"]["metrics"][0], "consecutiveErrorLimit": 0}]}}, ns)

    await release(rkube, ns, template("error-rate", {"influxdb": {
        "query": "SELECT last(value) FROM error_rate WHERE version = 'canary'"}}, "result < 0.05"))
    ro = await eventually(lambda: phase_is(rkube, ns, "Degraded"), 90, "rolled back")
    assert await canary_weight(rkube, ns) == 0
    assert ro["status"]["stableRS"] != ro["status"]["currentPodHash"]
    (run,) = [r for r in await _runs(rkube, ns) if r["metadata"]["name"] != "absent"]
    assert run["status"]["phase"] == "Failed", run["status"]
    m = run["status"]["metricResults"][0]["measurements"][-1]
    assert m["phase"] == "Failed" and float(m["value"]) == 0.3, m
    assert "error-rate" in ro["status"]["message"]

    bad = await eventually(lambda: _run_done(rkube, ns, "absent"), 30, "the absent-Secret run")
    assert bad["status"]["phase"] == "Error", bad["status"]
    msg = bad["status"]["metricResults"][0]["measurements"][-1]["message"]
    assert f"Secret {ns}/absent not found" in msg, msg


async def test_graphite_healthy_canary_is_promoted(
        rkube: Kube, namespace: str, gr: Graphite,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    now = time.time()
    gr.send([("shop.canary.error_rate", 0.01, now - 3), ("shop.canary.error_rate", 0.02, now - 2)])
    start_controller()
    v1 = await release(rkube, ns, template("graphite-errors", {"graphite": {
        "address": gr.address, "query": "target=shop.canary.error_rate&from=-10min"}},
        "len(result) == 2 && result[0] < 0.05 && result[1] < 0.05"))

    async def promoted() -> JSON | None:
        ro = await get_rollout(rkube, ns)
        st = ro.get("status") or {}
        if st.get("phase") == "Degraded":
            raise AssertionError(f"rolled back instead: {st.get('message')}")
        return ro if st.get("phase") == "Healthy" and st.get("stableRS") == st.get(
            "currentPodHash") != v1 and st.get("currentStepIndex") == 2 else None

    await eventually(promoted, 90, "promoted")
    (run,) = await _runs(rkube, ns)
    res = run["status"]["metricResults"][0]
    assert run["status"]["phase"] == "Successful" and res["successful"] == 2, run["status"]
    assert res["measurements"][-1]["value"] in ("[0.01, 0.02]", [0.01, 0.02]), res


async def test_judge_fed_by_influxdb_rolls_back_a_failing_canary(
        rkube: Kube, namespace: str, influx: Influx, monkeypatch: pytest.MonkeyPatch,
        start_controller: Callable[..., ControllerProcess]) -> None:
    """The sequential judge with ``source: influxdb``: cumulative counters written to a real
    InfluxDB while the step runs (canary 30 % errors, stable 1 %) roll the canary back."""
    ns = namespace
    influx.query("CREATE DATABASE shop")
    await apply(rkube, secret("influxdb", {"address": influx.address, "database": "shop"}), ns)
    monkeypatch.setenv("POD_NAMESPACE", ns)
    start_controller()
    q = "SELECT last(value) FROM {m} WHERE role = '{r}'"
    judge = {"source": {"influxdb": {"queryLanguage": "influxql"}}, "earlyPromotion": False,
             **{arm: {"requests": q.format(m="requests", r=role), "errors": q.format(m="errors", r=role)}
                for arm, role in (("canary", "canary"), ("baseline", "stable"))}}
    tmpl = {"apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": "judge-influx"},
            "spec": {"metrics": [{"name": "canary-vs-stable", "interval": "2s", "count": 30,
                                  "provider": {"judge": judge}}]}}

    stop = asyncio.Event()

    async def traffic() -> None:  # what the app's instrumentation would write
        k = 0
        while not stop.is_set():
            k += 1
            now = int(time.time())
            await asyncio.to_thread(influx.write, "shop", "\n".join([
                f"requests,role=canary value={200 * k} {now}", f"errors,role=canary value={60 * k} {now}",
                f"requests,role=stable value={200 * k} {now}", f"errors,role=stable value={2 * k} {now}"]))
            await asyncio.sleep(1)

    writer = asyncio.create_task(traffic())
    try:
        await release(rkube, ns, tmpl)
        ro = await eventually(lambda: phase_is(rkube, ns, "Degraded"), 120, "rolled back by the judge")
    finally:
        stop.set()
        await writer
    (run,) = await _runs(rkube, ns)
    res = run["status"]["metricResults"][0]
    assert run["status"]["phase"] == "Failed", run["status"]
    assert res["measurements"][-1]["value"] == "rollback", res["measurements"][-1]
    snap = res["judgeSnapshots"][-1]
    assert snap["canary"]["requests"] > 0 and snap["canary"]["errors"] > snap["baseline"]["errors"]
    assert ro["status"]["stableRS"] != ro["status"]["currentPodHash"]

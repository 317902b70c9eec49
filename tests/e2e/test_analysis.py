"""Analysis in the rollout, end to end: simulator -> real Prometheus -> AnalysisRuns -> decisions."""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rollouts.kube.apply import apply
from rollouts.kube.client import JSON, Kube
from rollouts.kube.signals import request_action
from testbed.cluster import TestBed, free_port
from testbed.simulator.core import Simulator
from tests.e2e.kit import (
    REPO,
    ControllerProcess,
    WeightRecorder,
    canary_weight,
    eventually,
    get_rollout,
    phase_is,
    rollout,
    services,
    virtual_service,
)

SIM = "simulator.rollouts.dev/"
STABLE = {SIM + "error-rate": "0.01", SIM + "latency-ms": "50"}
TEMPLATES = {d["metadata"]["name"]: d for d in
             yaml.safe_load_all((REPO / "examples" / "analysis-templates.yaml").read_text())}


@pytest.fixture
async def simulator(testbed: TestBed, namespace: str) -> AsyncIterator[Simulator]:
    sim = Simulator(kubeconfig=testbed.kubeconfig, namespace=namespace, rps=1000, seed=7)
    await sim.start()
    testbed.add_scrape_target(f"sim-{namespace}", sim.address)
    try:
        yield sim
    finally:
        testbed.remove_scrape_target(f"sim-{namespace}")
        await sim.stop()


def judge_template(interval: str = "3s", count: int = 20) -> JSON:
    t = copy.deepcopy(TEMPLATES["canary-judge"])
    m = t["spec"]["metrics"][0]
    m["interval"], m["count"] = interval, count
    m["provider"]["judge"]["earlyPromotion"] = False
    return t


def with_behaviour(ro: JSON, annotations: dict[str, str]) -> JSON:
    ro["spec"]["template"]["metadata"]["annotations"] = dict(annotations)
    return ro


async def release(rkube: Kube, ns: str, steps: list[JSON], templates: list[JSON], prom: str,
                  canary: dict[str, str], **extra: Any) -> None:
    """First deploy with the stable behaviour, then a new version with ``canary`` behaviour."""
    for obj in [*services(), virtual_service(), *copy.deepcopy(templates)]:
        await apply(rkube, obj, ns)
    ro = with_behaviour(rollout(steps, replicas=4, scaleDownDelaySeconds=2, **extra), STABLE)
    await apply(rkube, ro, ns)
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy")
    await asyncio.sleep(3)  # some stable history in Prometheus
    new = with_behaviour(copy.deepcopy(ro), {**STABLE, **canary})
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "demo:2"
    await apply(rkube, new, ns)


def analysis_step(template: str, prom: str) -> JSON:
    return {"analysis": {"templates": [{"templateName": template}], "args": [
        {"name": "canary-service", "value": "demo-canary"},
        {"name": "stable-service", "value": "demo-stable"},
        {"name": "service", "value": "demo-canary"},
        {"name": "prometheus-address", "value": prom}]}}


async def _runs(rkube: Kube, ns: str) -> list[JSON]:
    data = await rkube.get_list(f"/apis/rollouts.dev/v1alpha1/namespaces/{ns}/analysisruns")
    return list(data["items"])


async def test_canary_behaving_like_stable_is_promoted(
        rkube: Kube, namespace: str, testbed: TestBed, simulator: Simulator,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns, prom = namespace, testbed.prometheus_url
    start_controller()
    steps = [{"setWeight": 25}, analysis_step("canary-judge", prom), {"setWeight": 50},
             analysis_step("canary-judge", prom)]
    await release(rkube, ns, steps, [judge_template(count=6)], prom, canary={SIM + "latency-ms": "50"})
    ro = await eventually(lambda: _promoted(rkube, ns), 150, "the canary promoted to 100 %")
    assert await canary_weight(rkube, ns) == 0
    runs = await _runs(rkube, ns)
    assert len(runs) == 2 and all(r["status"]["phase"] == "Successful" for r in runs)
    assert ro["status"]["phase"] == "Healthy"


async def _promoted(rkube: Kube, ns: str) -> JSON | None:
    ro = await get_rollout(rkube, ns)
    st = ro.get("status") or {}
    if st.get("phase") == "Degraded":
        raise AssertionError(f"rolled back instead: {st.get('message')}")
    ok = st.get("phase") == "Healthy" and st.get("stableRS") == st.get("currentPodHash") and \
        st.get("observedGeneration") == ro["metadata"]["generation"] and st.get("currentStepIndex") == 4
    return ro if ok else None


@pytest.mark.parametrize("behaviour, what", [
    ({SIM + "error-rate": "0.03"}, "error"),
    ({SIM + "latency-ms": "75"}, "slower than"),
])
async def test_bad_canary_is_rolled_back_before_half_the_traffic(
        rkube: Kube, namespace: str, testbed: TestBed, simulator: Simulator,
        start_controller: Callable[..., ControllerProcess], behaviour: dict[str, str], what: str) -> None:
    ns, prom = namespace, testbed.prometheus_url
    start_controller()
    rec = WeightRecorder(rkube, ns).start()
    steps = [{"setWeight": 20}, analysis_step("canary-judge", prom), {"setWeight": 50},
             analysis_step("canary-judge", prom), {"setWeight": 80}]
    await release(rkube, ns, steps, [judge_template(count=40)], prom, canary=behaviour)
    ro = await eventually(lambda: phase_is(rkube, ns, "Degraded"), 150, "rolled back")
    await asyncio.sleep(1)
    await rec.stop()
    assert await canary_weight(rkube, ns) == 0
    assert max(rec.sequence()) <= 20, rec.sequence()
    msg = ro["status"]["message"]
    assert "RolloutAborted" in msg and what in msg and "roll back" in msg, msg
    run = next(r for r in await _runs(rkube, ns) if r["status"].get("phase") == "Failed")
    assert what in run["status"]["message"]
    events = await rkube.get_list(f"/api/v1/namespaces/{ns}/events",
                                  fieldSelector="involvedObject.name=demo")
    assert any(e["reason"] == "AnalysisRunFailed" for e in events["items"])


async def test_argo_style_template_and_inconclusive_pause_then_promote(
        rkube: Kube, namespace: str, testbed: TestBed, simulator: Simulator,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns, prom = namespace, testbed.prometheus_url
    start_controller()
    # Exactly what an Argo user writes, but for the apiVersion.
    argo = {"apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": "success-rate"},
            "spec": {"args": [{"name": "service-name"}, {"name": "prometheus-address"}],
                     "metrics": [{"name": "success-rate", "interval": "2s", "count": 3,
                                  "successCondition": "result[0] >= 0.95", "failureLimit": 1,
                                  "provider": {"prometheus": {
                                      "address": "{{args.prometheus-address}}",
                                      "query": 'sum(rate(istio_requests_total{destination_service_name='
                                               '"{{args.service-name}}",response_code!~"5.*"}[30s])) / '
                                               'sum(rate(istio_requests_total{destination_service_name='
                                               '"{{args.service-name}}"}[30s]))'}}}]}}
    undecided = copy.deepcopy(argo)
    undecided["metadata"]["name"] = "undecided"
    m = undecided["spec"]["metrics"][0]
    m.update(successCondition="result[0] > 2", failureCondition="result[0] < 0", count=1)
    m.pop("interval")

    def step(name: str) -> JSON:
        return {"analysis": {"templates": [{"templateName": name}], "args": [
            {"name": "service-name", "value": "demo-canary"}, {"name": "prometheus-address", "value": prom}]}}

    steps = [{"setWeight": 30}, {"pause": {"duration": "3s"}}, step("success-rate"), step("undecided"),
             {"setWeight": 60}]
    await release(rkube, ns, steps, [argo, undecided], prom, canary={SIM + "error-rate": "0"})
    async def inconclusive_pause() -> JSON | None:
        ro = await phase_is(rkube, ns, "Paused")
        return ro if ro and ro["status"].get("currentStepIndex") == 3 and \
            ro["status"]["message"] == "InconclusiveAnalysisRun" else None

    ro = await eventually(inconclusive_pause, 120, "paused on an inconclusive result")
    # Argo's fields: message and pause condition InconclusiveAnalysisRun, details in Paused
    assert [p["reason"] for p in ro["status"]["pauseConditions"]] == ["InconclusiveAnalysisRun"]
    paused = next(c for c in ro["status"]["conditions"] if c["type"] == "Paused")
    assert paused["reason"] == "InconclusiveAnalysisRun" and "inconclusive" in paused["message"]
    phases = {r["metadata"]["labels"]["rollouts.dev/step"]: r["status"]["phase"]
              for r in await _runs(rkube, ns)}
    assert phases == {"2": "Successful", "3": "Inconclusive"}
    assert await canary_weight(rkube, ns) == 30

    await request_action(rkube, ns, "demo", "promote", user="e2e-user")
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "promoted after manual judgement")


async def _step_is(rkube: Kube, ns: str, idx: int) -> bool:
    return ((await get_rollout(rkube, ns)).get("status") or {}).get("currentStepIndex") == idx


@pytest.fixture
def own_prometheus(simulator: Simulator) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Prometheus of this test's own, scraping the simulator, that the test may stop."""
    work = Path(tempfile.mkdtemp(prefix="prom-"))
    port = free_port()
    cfg = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
           "scrape_configs": [{"job_name": "sim", "static_configs": [{"targets": [simulator.address]}]}]}
    (work / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen(["prometheus", f"--config.file={work / 'prometheus.yml'}",
                             f"--storage.tsdb.path={work / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _ready(url + "/-/ready"):
            assert proc.poll() is None, "the test's Prometheus exited"
            assert time.monotonic() < deadline, "the test's Prometheus did not become ready"
            time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        shutil.rmtree(work, ignore_errors=True)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def test_prometheus_down_mid_analysis_never_promotes(
        rkube: Kube, namespace: str, own_prometheus: tuple[str, subprocess.Popen[bytes]],
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    prom, proc = own_prometheus
    start_controller()
    tmpl = copy.deepcopy(TEMPLATES["istio-success-rate"])
    m = tmpl["spec"]["metrics"][0]
    # initialDelay: the canary's series need a couple of scrapes before rate() has data
    m.update(interval="2s", count=30, consecutiveErrorLimit=2, initialDelay="5s",
             successCondition="result[0] >= 0.95")
    steps = [{"setWeight": 20}, analysis_step("istio-success-rate", prom), {"setWeight": 60}]
    await release(rkube, ns, steps, [tmpl], prom, canary={SIM + "error-rate": "0.01"})

    async def measured() -> bool:
        runs = await _runs(rkube, ns)
        return any(int(r.get("status", {}).get("metricResults", [{}])[0].get("successful", 0)) >= 2
                   for r in runs)

    await eventually(measured, 60, "two good measurements")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    ro = await eventually(lambda: phase_is(rkube, ns, "Degraded"), 60, "aborted after the error limit")
    run = (await _runs(rkube, ns))[0]
    assert run["status"]["phase"] == "Error"
    last = run["status"]["metricResults"][0]["measurements"][-1]
    assert last["phase"] == "Error" and "unreachable" in last["message"]
    assert "analysis" in ro["status"]["message"]
    assert await canary_weight(rkube, ns) == 0
    assert ro["status"]["stableRS"] != ro["status"]["currentPodHash"]  # never promoted


async def test_bad_promql_and_missing_arg_fail_the_run_with_the_reason(
        rkube: Kube, namespace: str, testbed: TestBed,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns, prom = namespace, testbed.prometheus_url
    start_controller()
    bad = copy.deepcopy(TEMPLATES["istio-success-rate"])
    bad["spec"]["metrics"][0].update(count=1, consecutiveErrorLimit=0)
    bad["spec"]["metrics"][0].pop("interval")
    bad["spec"]["metrics"][0]["provider"]["prometheus"]["query"] = "sum(rate(istio_requests_total[1m]"
    await release(rkube, ns, [{"setWeight": 10}, analysis_step("istio-success-rate", prom)], [bad], prom,
                  canary={SIM + "error-rate": "0"})
    ro = await eventually(lambda: phase_is(rkube, ns, "Degraded"), 60, "aborted on bad PromQL")
    run = (await _runs(rkube, ns))[0]
    assert run["status"]["phase"] == "Error"
    assert "Prometheus rejected the query" in run["status"]["metricResults"][0]["measurements"][-1]["message"]
    assert "parse error" in ro["status"]["message"]

    # A template arg without a value: the run fails and says which arg.
    missing = copy.deepcopy(TEMPLATES["istio-latency-p99"])
    missing["metadata"]["name"] = "needs-arg"
    missing["spec"]["args"].append({"name": "team"})
    missing["spec"]["metrics"][0]["provider"]["prometheus"]["query"] += " # {{args.team}}"
    await apply(rkube, missing, ns)
    ro_obj = await get_rollout(rkube, ns)
    ro_obj["spec"]["strategy"]["canary"]["steps"][1] = analysis_step("needs-arg", prom)
    await rkube.merge_patch(f"/apis/rollouts.dev/v1alpha1/namespaces/{ns}/rollouts/demo",
                            {"spec": {"strategy": ro_obj["spec"]["strategy"]}})
    await eventually(lambda: phase_is(rkube, ns, "Degraded"), 30, "the new spec observed")
    await request_action(rkube, ns, "demo", "retry", user="e2e-user")  # retry: new runs

    async def failed_run() -> JSON | None:
        for r in await _runs(rkube, ns):
            if "team" in str(r["spec"].get("args")) and r.get("status", {}).get("phase") == "Failed":
                return r
        return None

    run = await eventually(failed_run, 60, "the run with a missing arg failed")
    assert "args.team" in run["status"]["message"]


async def test_replay_reports_what_a_template_would_have_decided(
        rkube: Kube, namespace: str, testbed: TestBed, simulator: Simulator) -> None:
    ns = namespace
    for obj in [*services(), virtual_service()]:
        await apply(rkube, obj, ns)
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "demo"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "demo"}},
                    "template": {"metadata": {"labels": {"app": "demo"},
                                              "annotations": {SIM + "error-rate": "0.2"}},
                                 "spec": {"containers": [{"name": "app", "image": "demo:1"}]}}}}
    await rkube.create(f"/apis/apps/v1/namespaces/{ns}/deployments", dep)
    await asyncio.sleep(20)  # 20 s of traffic at 20 % errors on demo-stable
    tmpl = REPO / "examples" / "analysis-templates.yaml"
    cmd = [sys.executable, "-m", "rollouts.cli.main", "analyze", "--replay", str(tmpl),
           "--name", "istio-success-rate", "--start", "15s", "--end", "0s", "--interval", "5s",
           "--arg", "service=demo-stable", "--arg", f"namespace={ns}",
           "--arg", f"prometheus-address={testbed.prometheus_url}"]
    # the shipped template measures every 30 s; replay it every 5 s over the last 15 s
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO)  # noqa: ASYNC221
    assert proc.returncode == 1, proc.stdout + proc.stderr  # 80 % success < 99 %: it fails
    assert "Failed" in proc.stdout and "would have decided: success-rate Failed" in proc.stderr


async def test_background_analysis_aborts_a_bad_canary_during_a_pause(
        rkube: Kube, namespace: str, testbed: TestBed, simulator: Simulator,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns, prom = namespace, testbed.prometheus_url
    start_controller()
    background = {**analysis_step("canary-judge", prom)["analysis"], "startingStep": 1}
    steps = [{"setWeight": 30}, {"pause": {}}, {"setWeight": 60}]
    await release(rkube, ns, steps, [judge_template(count=200)], prom,
                  canary={SIM + "error-rate": "0.04"}, analysis=background)
    ro = await eventually(lambda: phase_is(rkube, ns, "Degraded"), 120, "aborted by background analysis")
    assert ro["status"]["currentStepIndex"] == 1  # while waiting at pause {}
    assert "error rate" in ro["status"]["message"]
    assert await canary_weight(rkube, ns) == 0
    runs = await _runs(rkube, ns)
    assert [r["metadata"]["labels"]["rollouts.dev/analysis"] for r in runs] == ["background"]
    assert runs[0]["status"]["phase"] == "Failed"


async def test_background_analysis_is_terminated_when_the_canary_is_promoted(
        rkube: Kube, namespace: str, testbed: TestBed, simulator: Simulator,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns, prom = namespace, testbed.prometheus_url
    start_controller()
    background = analysis_step("canary-judge", prom)["analysis"]
    await release(rkube, ns, [{"setWeight": 30}, {"pause": {}}], [judge_template(count=200)], prom,
                  canary={}, analysis=background)

    async def measuring() -> bool:
        runs = await _runs(rkube, ns)
        return bool(runs) and int((runs[0].get("status") or {}).get("metricResults", [{}])[0]
                                  .get("count", 0)) >= 2

    await eventually(measuring, 60, "background analysis measuring")
    await request_action(rkube, ns, "demo", "promote", user="e2e-user")
    await eventually(lambda: _promoted_at(rkube, ns, 2), 60, "promoted")

    async def terminated() -> JSON | None:
        run = (await _runs(rkube, ns))[0]
        return run if (run.get("status") or {}).get("phase") == "Successful" else None

    run = await eventually(terminated, 30, "the background run ended")
    assert run["spec"]["terminate"] is True and run["status"]["message"] == "run terminated"


async def _promoted_at(rkube: Kube, ns: str, n: int) -> bool:
    ro = await get_rollout(rkube, ns)
    st = ro.get("status") or {}
    return st.get("observedGeneration") == ro["metadata"]["generation"] and \
        st.get("phase") == "Healthy" and st.get("stableRS") == st.get("currentPodHash") and \
        st.get("currentStepIndex") == n


async def test_job_provider_measures_by_a_jobs_success(
        rkube: Kube, namespace: str, testbed: TestBed,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns, prom = namespace, testbed.prometheus_url
    start_controller()
    tmpl = {"apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": "smoke-test"},
            "spec": {"metrics": [{"name": "smoke", "interval": "1s", "count": 2, "provider": {"job": {
                "spec": {"backoffLimit": 0, "template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "smoke", "image": "curlimages/curl:8",
                                    "args": ["http://demo-canary/healthz"]}]}}}}}}]}}
    step = {"analysis": {"templates": [{"templateName": "smoke-test"}]}}
    await release(rkube, ns, [{"setWeight": 10}, step, {"setWeight": 50}], [tmpl], prom, canary={})
    await eventually(lambda: _promoted_at(rkube, ns, 3), 90, "promoted after the smoke Jobs")
    run = (await _runs(rkube, ns))[0]
    res = run["status"]["metricResults"][0]
    assert run["status"]["phase"] == "Successful" and res["count"] == 2 and res["successful"] == 2
    jobs = await rkube.get_list(f"/apis/batch/v1/namespaces/{ns}/jobs")
    assert len(jobs["items"]) == 2

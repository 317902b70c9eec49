"""The judge's per-pod path end to end: the simulator exports one series per pod with a `pod`
label (as Prometheus' kubernetes-pods scrape of the sidecars does), Prometheus scrapes it, and
the shipped `canary-judge-per-pod` template judges with per-pod queries on both arms, the
new-pod policy and per-series counter resets. What a user checks: a broken canary is rolled
back with the judge's reason; a harmless canary whose new pods start slow, or whose stable
pod restarts mid-analysis, is promoted."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable

import httpx
import pytest

from rollouts.kube.client import JSON, Kube
from testbed.cluster import TestBed
from tests.e2e.judgekit import at_step
from tests.e2e.kit import ControllerProcess, canary_weight, eventually, get_rollout, phase_is
from tests.e2e.test_analysis import SIM, TEMPLATES, _promoted, _runs, analysis_step, release, simulator

__all__ = ["simulator"]  # the fixture, re-exported for pytest

TEMPLATE = "canary-judge-per-pod"
# A slow start well past the judge's sensitivity: 3 x latency and 3 x errors (stable: 1 %)
# for the first 15 s after a canary pod becomes Ready, then exactly like stable.
SLOW_START = {SIM + "warmup-seconds": "15", SIM + "warmup-latency-factor": "3",
              SIM + "warmup-error-rate": "0.03"}


def per_pod_template(*, interval: str = "2s", count: int = 10, **judge: object) -> JSON:
    t = copy.deepcopy(TEMPLATES[TEMPLATE])
    m = t["spec"]["metrics"][0]
    m["interval"], m["count"] = interval, count
    m["provider"]["judge"]["earlyPromotion"] = False
    m["provider"]["judge"].update(judge)
    out: JSON = t
    return out


async def degraded(rkube: Kube, ns: str) -> JSON:
    """The rollout once aborted (Degraded), read as the user would."""
    ro = await eventually(lambda: phase_is(rkube, ns, "Degraded"), 75, "rolled back")
    assert ro is not None
    return ro


def steps(prom: str) -> list[JSON]:
    # Two scale-ups (1 then 2 of 4 canary pods): each starts new pods.
    return [{"setWeight": 25}, analysis_step(TEMPLATE, prom), {"setWeight": 50},
            analysis_step(TEMPLATE, prom)]


async def _prom(prom: str, query: str) -> list[JSON]:
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.get(f"{prom}/api/v1/query", params={"query": query})
    r.raise_for_status()
    result: list[JSON] = r.json()["data"]["result"]
    return result


async def test_the_template_reads_one_series_per_pod(
        rkube: Kube, namespace: str, testbed: TestBed, simulator: object,
        start_controller: Callable[..., ControllerProcess]) -> None:
    """The per-pod queries see every pod of both arms (else the per-pod path is never taken)."""
    ns, prom = namespace, testbed.prometheus_url
    start_controller()
    await release(rkube, ns, [{"setWeight": 25}, {"pause": {}}], [], prom, canary={})
    await eventually(lambda: at_step(rkube, ns, 1), 45, "paused at 25 %")
    pods = (await rkube.get_list(f"/api/v1/namespaces/{ns}/pods"))["items"]
    names = {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}
    # what the template's requestsByPod asks (both Services), before any pod was Ready too
    q = f'sum by (pod) (istio_requests_total{{reporter="destination",destination_service_namespace="{ns}"}})'

    async def all_pods_seen() -> set[str] | None:
        seen = {r["metric"].get("pod", "") for r in await _prom(prom, q)}
        return seen if names <= seen else None

    seen = await eventually(all_pods_seen, 30, f"a series per pod ({sorted(names)})")
    assert seen is not None
    assert len(names) == 5 and "" not in seen, seen  # 4 stable + 1 canary, none pod-less


async def test_a_canary_failing_every_request_is_rolled_back(
        rkube: Kube, namespace: str, testbed: TestBed, simulator: object,
        start_controller: Callable[..., ControllerProcess]) -> None:
    """During its pods' warm-up (the template's default 120 s), so through the new-pod
    catastrophe test. The harmless canaries below, same template, are promoted."""
    ns, prom = namespace, testbed.prometheus_url
    start_controller()
    await release(rkube, ns, steps(prom), [per_pod_template(count=30)], prom,
                  canary={SIM + "error-rate": "1"})
    ro = await degraded(rkube, ns)
    assert await canary_weight(rkube, ns) == 0
    msg = ro["status"]["message"]
    assert "RolloutAborted" in msg and "error rate" in msg, msg
    runs = await _runs(rkube, ns)
    assert [r["status"]["phase"] for r in runs] == ["Failed"], [r["status"] for r in runs]
    run_msg = runs[0]["status"]["message"]
    assert "error rate" in run_msg and "roll back" in run_msg, run_msg
    # the judge had per-pod counters of both arms in its snapshots
    snaps = runs[0]["status"]["metricResults"][0].get("judgeSnapshots") or []
    assert snaps, runs[0]["status"]["metricResults"][0].keys()
    last = snaps[-1]
    assert len(last["canary"]["requestsByPod"]) == 1 and len(last["baseline"]["requestsByPod"]) == 4, last


async def test_new_pods_count_once_warm(
        rkube: Kube, namespace: str, testbed: TestBed, simulator: object,
        start_controller: Callable[..., ControllerProcess]) -> None:
    """A 3 x error canary (under the new-pod catastrophe margin of 5 x, so only the main test
    can catch it) is rolled back once its pod is past the 10 s warm-up: the policy delays
    evidence, it does not hide a regression."""
    ns, prom = namespace, testbed.prometheus_url
    start_controller()
    t = per_pod_template(count=30, newPods={"policy": "exclude", "warmupSeconds": 10})
    await release(rkube, ns, steps(prom), [t], prom, canary={SIM + "error-rate": "0.03"})
    ro = await degraded(rkube, ns)
    assert "error rate" in ro["status"]["message"], ro["status"]["message"]
    run = (await _runs(rkube, ns))[0]
    res = run["status"]["metricResults"][0]
    assert run["status"]["phase"] == "Failed"
    # not before the warm-up: the first measurements (pod younger than 10 s) continued
    assert res["measurements"][0]["phase"] != "Failed", res["measurements"][0]


@pytest.mark.parametrize("policy", ["exclude", "include"])
async def test_a_harmless_canary_whose_new_pods_start_slow(
        rkube: Kube, namespace: str, testbed: TestBed, simulator: object,
        start_controller: Callable[..., ControllerProcess], policy: str) -> None:
    """With the new-pod policy (warm-up 25 s > the pods' 15 s slow start) it is promoted
    through two scale-ups; without it (`include`), the same slow start is rolled back: the
    slow start is real and the policy is what saves the canary."""
    ns, prom = namespace, testbed.prometheus_url
    start_controller()
    t = per_pod_template(count=14, newPods={"policy": policy, "warmupSeconds": 25})
    await release(rkube, ns, steps(prom), [t], prom, canary=SLOW_START)
    if policy == "include":
        ro = await degraded(rkube, ns)
        assert "slower than" in ro["status"]["message"] or "error rate" in ro["status"]["message"]
        return
    await eventually(lambda: _promoted(rkube, ns), 90, "the canary promoted")
    runs = await _runs(rkube, ns)
    assert len(runs) == 2 and all(r["status"]["phase"] == "Successful" for r in runs), \
        [r["status"].get("message") for r in runs]


async def test_a_stable_pod_restarting_mid_analysis_does_not_roll_back(
        rkube: Kube, namespace: str, testbed: TestBed, simulator: object,
        start_controller: Callable[..., ControllerProcess]) -> None:
    """One stable pod's counters reset (its sidecar restarted) while the canary is analysed:
    the judge takes per-series increments and keeps going; the canary is promoted."""
    ns, prom = namespace, testbed.prometheus_url
    start_controller()
    t = per_pod_template(count=16, newPods={"policy": "exclude", "warmupSeconds": 10})
    await release(rkube, ns, [{"setWeight": 25}, analysis_step(TEMPLATE, prom)], [t], prom, canary={})

    async def measured(n: int) -> bool:
        runs = await _runs(rkube, ns)
        return bool(runs) and int(((runs[0].get("status") or {}).get("metricResults") or [{}])[0]
                                  .get("count", 0)) >= n

    await eventually(lambda: measured(4), 45, "four measurements")
    ro = await get_rollout(rkube, ns)
    stable_hash = ro["status"]["stableRS"]
    pods = (await rkube.get_list(f"/api/v1/namespaces/{ns}/pods",
                                 labelSelector=f"rollouts-pod-template-hash={stable_hash}"))["items"]
    victim = pods[0]["metadata"]["name"]
    await rkube.merge_patch(f"/api/v1/namespaces/{ns}/pods/{victim}",
                            {"metadata": {"annotations": {SIM + "restarts": "1"}}})
    await eventually(lambda: _promoted_at_1(rkube, ns), 60, "the canary promoted")
    run = (await _runs(rkube, ns))[0]
    res = run["status"]["metricResults"][0]
    assert run["status"]["phase"] == "Successful", run["status"].get("message")
    assert res.get("error", 0) == 0, [m.get("message") for m in res["measurements"]]
    # the judge saw the reset: the victim's counter went down between two snapshots
    seq = [s["baseline"]["requestsByPod"].get(victim) for s in res.get("judgeSnapshots") or []]
    seq = [v for v in seq if v is not None]
    assert any(b < a for a, b in itertools.pairwise(seq)), seq


async def _promoted_at_1(rkube: Kube, ns: str) -> bool:
    ro = await get_rollout(rkube, ns)
    st = ro.get("status") or {}
    if st.get("phase") == "Degraded":
        raise AssertionError(f"rolled back instead: {st.get('message')}")
    ok = st.get("phase") == "Healthy" and st.get("stableRS") == st.get("currentPodHash") and \
        st.get("observedGeneration") == ro["metadata"]["generation"] and st.get("currentStepIndex") == 2
    return bool(ok)

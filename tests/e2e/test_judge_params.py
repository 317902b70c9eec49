"""The judge's parameters, end to end: a template's bad judge parameter is an Error the user
reads in the AnalysisRun and the rollout (never a silently defaulted judge), and a template
that sets them is judged with them."""

from __future__ import annotations

import copy
from collections.abc import Callable

from rollouts.kube.client import JSON, Kube
from testbed.cluster import TestBed
from tests.e2e.kit import ControllerProcess, eventually, phase_is
from tests.e2e.test_analysis import SIM, _runs, analysis_step, judge_template, release, simulator

__all__ = ["simulator"]  # the fixture, re-exported for pytest


async def test_a_bad_judge_parameter_is_an_error_with_its_name(
        rkube: Kube, namespace: str, testbed: TestBed, simulator: object,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns, prom = namespace, testbed.prometheus_url
    start_controller()
    bad = judge_template(interval="2s", count=10)
    m = bad["spec"]["metrics"][0]
    m["consecutiveErrorLimit"] = 0
    m["provider"]["judge"]["newPods"] = {"policy": "skip-them"}
    await release(rkube, ns, [{"setWeight": 20}, analysis_step("canary-judge", prom)], [bad], prom,
                  canary={SIM + "error-rate": "0.01"})
    ro = await eventually(lambda: phase_is(rkube, ns, "Degraded"), 60, "aborted on the bad parameter")
    run = (await _runs(rkube, ns))[0]
    assert run["status"]["phase"] == "Error"
    msg = run["status"]["metricResults"][0]["measurements"][-1]["message"]
    assert "newPods.policy must be one of exclude, include" in msg, msg
    assert "newPods.policy" in ro["status"]["message"], ro["status"]["message"]


async def test_template_parameters_reach_the_judge(
        rkube: Kube, namespace: str, testbed: TestBed, simulator: object,
        start_controller: Callable[..., ControllerProcess]) -> None:
    """A 3 x error canary; minRequests above what the step serves keeps the judge from
    rolling back (continue with the reason), proving the parameter is applied."""
    ns, prom = namespace, testbed.prometheus_url
    start_controller()
    t = copy.deepcopy(judge_template(interval="2s", count=8))
    t["spec"]["metrics"][0]["provider"]["judge"].update(
        minRequests=10_000_000, errorAlternatives={"min": 1.5, "max": 4, "points": 4})
    await release(rkube, ns, [{"setWeight": 20}, analysis_step("canary-judge", prom)], [t], prom,
                  canary={SIM + "error-rate": "0.03"})

    async def finished() -> JSON | None:
        runs = await _runs(rkube, ns)
        done = [r for r in runs if r.get("status", {}).get("phase") in ("Successful", "Failed", "Error")]
        return done[0] if done else None

    run = await eventually(finished, 90, "the analysis finished")
    msgs = [x.get("message", "") for x in run["status"]["metricResults"][0]["measurements"]]
    assert run["status"]["phase"] == "Successful", msgs[-1]
    assert any("fewer than 10000000 canary requests: continue" in x for x in msgs), msgs[-3:]

"""Step and AnalysisRun semantics as a user sees them on the test bed (issue 10 item 6,
issue 11 items 1, 5, 16, 18, 19).

Analyses here use Argo's web provider against a small "health by version" server of the
test's own (127.0.0.1, free port): it answers for the pod-template hash it is asked
about, so a template with ``podTemplateHashValue`` args measures exactly the revision it
names, and a test decides which revisions are bad.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rollouts.kube.apply import apply
from rollouts.kube.client import JSON, Kube
from rollouts.kube.signals import request_action
from tests.e2e.kit import (
    HASH,
    SERVICES,
    ControllerProcess,
    HealthServer,
    WeightRecorder,
    analysis_runs,
    canary_weight,
    deploy,
    eventually,
    get_rollout,
    phase_is,
    replica_sets,
    rollout,
    services,
    serving,
    set_image,
    virtual_service,
)


class VersionHealth(HealthServer):
    """GET /health?hash=H -> {"ok": answer(H)}; the first ``errors`` requests get a 500."""

    answer: Callable[[str], float]

    def __init__(self) -> None:
        super().__init__(lambda h: 1.0)

    def template(self, name: str, **metric: Any) -> JSON:
        """An AnalysisTemplate asking about the canary's hash (1 = good, 0 = bad)."""
        m = {"name": "version-health", "successCondition": "result == 1",
             "failureCondition": "result == 0",
             "provider": {"web": {"url": self.url + "?hash={{args.canary-hash}}",
                                  "jsonPath": "{$.ok}"}}, **metric}
        return {"apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisTemplate",
                "metadata": {"name": name},
                "spec": {"args": [{"name": "canary-hash"}, {"name": "stable-hash"}],
                         "metrics": [m]}}


@pytest.fixture
def health() -> Iterator[VersionHealth]:
    with serving(VersionHealth()) as h:
        yield h


def analysis(template: str, **extra: Any) -> JSON:
    return {"templates": [{"templateName": template}], **extra, "args": [
        {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
        {"name": "stable-hash", "valueFrom": {"podTemplateHashValue": "Stable"}}]}


async def _deploy(rkube: Kube, ns: str, steps: list[JSON], templates: list[JSON],
                  **canary: Any) -> str:
    ro = await deploy(rkube, ns, rollout(steps, scaleDownDelaySeconds=2, **canary), *services(),
                      virtual_service(), *templates)
    return str(ro["status"]["stableRS"])


def _args(run: JSON) -> dict[str, str]:
    return {a["name"]: a.get("value") for a in run["spec"]["args"]}


async def _never_promoted(rkube: Kube, ns: str, phase: str) -> JSON | None:
    ro = await get_rollout(rkube, ns)
    st = ro.get("status") or {}
    if st.get("phase") == "Healthy" and st.get("stableRS") == st.get("currentPodHash") \
            and st.get("observedGeneration") == ro["metadata"]["generation"] and st.get("currentStepIndex"):
        raise AssertionError(f"the bad canary was promoted: {st}")
    return await phase_is(rkube, ns, phase)


@pytest.mark.parametrize("where", ["background", "step 0"])
async def test_an_analysis_started_with_the_new_revision_measures_it_and_catches_it(
        rkube: Kube, namespace: str, health: VersionHealth, where: str,
        start_controller: Callable[..., ControllerProcess]) -> None:
    """Issue 10 item 6: the run created in the reconcile that starts a revision names that
    revision (args and label), so a canary bad from its very first request is caught."""
    ns = namespace
    start_controller()
    steps: list[JSON] = [{"setWeight": 20}, {"pause": {"duration": "2s"}}, {"setWeight": 60},
                         {"pause": {"duration": "2s"}}]
    extra: dict[str, Any] = {}
    if where == "background":
        tmpl = health.template("version-health", interval="1s")
        extra["analysis"] = analysis("version-health")
    else:
        tmpl = health.template("version-health")
        steps.insert(0, {"analysis": analysis("version-health")})
    stable = await _deploy(rkube, ns, steps, [tmpl], **extra)
    health.answer = lambda h: 1.0 if h == stable else 0.0  # every other version is broken
    await set_image(rkube, ns, "demo:2")
    ro = await eventually(lambda: _never_promoted(rkube, ns, "Degraded"), 60, "the bad canary aborted")
    new = ro["status"]["currentPodHash"]
    assert new != stable and ro["status"]["stableRS"] == stable
    assert "RolloutAborted" in ro["status"]["message"] and "version-health" in ro["status"]["message"]
    runs = await analysis_runs(rkube, ns)
    assert len(runs) == 1
    run = runs[0]
    assert _args(run) == {"canary-hash": new, "stable-hash": stable}
    assert run["metadata"]["labels"][HASH] == new
    assert run["status"]["phase"] == "Failed"
    assert health.asked and set(health.asked) == {new}  # never asked about the stable
    assert await canary_weight(rkube, ns) == 0


async def test_promote_clears_an_inconclusive_background_analysis(
        rkube: Kube, namespace: str, health: VersionHealth,
        start_controller: Callable[..., ControllerProcess]) -> None:
    """Issue 10 item 6 and issue 11 item 19: an inconclusive background run pauses the
    rollout with Argo's fields; promote starts a new background run and the rollout
    continues (it used to stay paused however often one promoted)."""
    ns = namespace
    start_controller()
    health.answer = lambda h: 0.5  # neither condition: inconclusive
    stable = await _deploy(rkube, ns, [{"setWeight": 20}, {"setWeight": 40}, {"pause": {}}],
                           [health.template("version-health", interval="1s")],
                           analysis=analysis("version-health"))
    await set_image(rkube, ns, "demo:2")

    async def inconclusive() -> JSON | None:
        ro = await phase_is(rkube, ns, "Paused")
        return ro if ro and ro["status"].get("message") == "InconclusiveAnalysisRun" else None

    ro = await eventually(inconclusive, 60, "paused on an inconclusive background analysis")
    st = ro["status"]
    # (with the pause step's own condition if the steps got there first)
    assert "InconclusiveAnalysisRun" in [p["reason"] for p in st["pauseConditions"]]
    assert st["controllerPause"] is True
    paused = next(c for c in st["conditions"] if c["type"] == "Paused")
    assert paused["reason"] == "InconclusiveAnalysisRun"
    assert "promote starts a new background analysis" in paused["message"]
    [first] = await analysis_runs(rkube, ns)
    assert first["status"]["phase"] == "Inconclusive"
    await asyncio.sleep(2)
    assert (await phase_is(rkube, ns, "Paused")) is not None  # it holds until someone decides

    step = st["currentStepIndex"]
    health.answer = lambda h: 1.0
    await request_action(rkube, ns, "demo", "promote", user="e2e-user")

    async def went_on() -> JSON | None:
        ro = await get_rollout(rkube, ns)
        st = ro.get("status") or {}
        if st.get("message") == "InconclusiveAnalysisRun":
            return None
        at_pause = st.get("phase") == "Paused" and st.get("currentStepIndex") == 2
        return ro if at_pause or st.get("phase") == "Healthy" else None

    ro = await eventually(went_on, 60, "the rollout going on with a new background run")
    if ro["status"]["phase"] == "Paused":
        # held at step 0 or 1: the promote replaced the run and skipped nothing (setWeight
        # 40 was applied); the pause step now waits for its own promote
        assert step < 2 and await canary_weight(rkube, ns) == 40
        assert [p["reason"] for p in ro["status"]["pauseConditions"]] == ["CanaryPauseStep"]
        await request_action(rkube, ns, "demo", "promote", user="e2e-user")
    ro = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "promoted")
    assert ro["status"]["stableRS"] != stable and not ro["status"].get("pauseConditions")
    runs = await analysis_runs(rkube, ns)
    assert [r["metadata"]["name"].rsplit("-", 1)[1] for r in runs] == ["bg", "bg1"]
    assert runs[0]["status"]["phase"] == "Inconclusive"
    assert runs[1]["status"]["phase"] == "Successful"  # measured, then terminated at promotion


async def test_abort_points_the_canary_service_back_at_stable_and_promote_full_recovers(
        rkube: Kube, namespace: str, health: VersionHealth,
        start_controller: Callable[..., ControllerProcess]) -> None:
    """Issue 11 items 16 and 18: after an abort the canary Service selects the stable pods
    (not an aborted revision losing its pods); ``promote --full`` lifts the abort and the
    rollout goes to 100 % and Healthy without a new analysis."""
    ns = namespace
    start_controller()
    stable = await _deploy(rkube, ns, [{"setWeight": 30}, {"pause": {}}],
                           [health.template("version-health", interval="1s")],
                           analysis=analysis("version-health"), abortScaleDownDelaySeconds=2)
    await set_image(rkube, ns, "demo:2")
    ro = await eventually(lambda: phase_is(rkube, ns, "Paused"), 60, "paused at 30 %")
    new = ro["status"]["currentPodHash"]
    svc = await rkube.get(SERVICES.path(ns, "demo-canary"))
    assert svc["spec"]["selector"][HASH] == new
    await request_action(rkube, ns, "demo", "abort", user="e2e-user")
    await eventually(lambda: phase_is(rkube, ns, "Degraded"), 30, "aborted")

    async def back_to_stable() -> bool:
        s = await rkube.get(SERVICES.path(ns, "demo-canary"))
        rss = await replica_sets(rkube, ns)
        return s["spec"]["selector"].get(HASH) == stable and rss[new]["spec"]["replicas"] == 0

    await eventually(back_to_stable, 30, "canary Service on the stable pods, canary scaled down")
    assert await canary_weight(rkube, ns) == 0
    ro = await get_rollout(rkube, ns)
    assert ro["status"]["canary"]["weights"]["canary"]["podTemplateHash"] == stable
    runs_before = len(await analysis_runs(rkube, ns))

    await request_action(rkube, ns, "demo", "promote", user="e2e-user", full=True)
    ro = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "fully promoted")
    st = ro["status"]
    assert st["stableRS"] == st["currentPodHash"] == new and not st.get("abort")
    assert st["lastAction"]["action"] == "promote" and st["lastAction"]["result"] == "Applied"
    assert await canary_weight(rkube, ns) == 0
    for name in ("demo-stable", "demo-canary"):
        assert (await rkube.get(SERVICES.path(ns, name)))["spec"]["selector"][HASH] == new
    assert (await replica_sets(rkube, ns))[new]["status"]["availableReplicas"] == 5
    assert len(await analysis_runs(rkube, ns)) == runs_before  # no new analysis


async def test_new_template_during_a_dynamic_stable_scale_canary_never_floods_the_stable(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    """Issue 11 item 1: at 80 % canary the stable runs 1 of 5 pods. A new template brings
    the stable back first; traffic returns to it only once its pods are available, and
    the old canary keeps its pods while it carries traffic."""
    ns = namespace
    start_controller()
    for obj in [*services(), virtual_service()]:
        await apply(rkube, obj, ns)
    ro = rollout([{"setWeight": 80}, {"pause": {}}], dynamicStableScale=True, scaleDownDelaySeconds=2)
    ro["spec"]["minReadySeconds"] = 3  # pods become available 3 s after they are ready
    await apply(rkube, ro, ns)
    stable = str((await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "Healthy"))
                 ["status"]["stableRS"])
    await set_image(rkube, ns, "demo:2")
    ro = await eventually(lambda: phase_is(rkube, ns, "Paused"), 90, "paused at 80 %")
    v2 = ro["status"]["currentPodHash"]
    assert await canary_weight(rkube, ns) == 80
    await eventually(lambda: _replicas_are(rkube, ns, stable, 1), 30, "stable scaled down to 1")

    rec = WeightRecorder(rkube, ns).start()
    await asyncio.sleep(1)
    await set_image(rkube, ns, "demo:3")
    await eventually(lambda: _weight_is(rkube, ns, 0), 60, "traffic back on the stable")
    mid = await get_rollout(rkube, ns)
    v3 = mid["status"]["currentPodHash"]
    await eventually(lambda: phase_is(rkube, ns, "Paused"), 90, "the new canary at 80 %")
    await rec.stop()
    seq = rec.sequence()
    # down from 80 to 0 (in one step, or in several as the stable's pods become available
    # under load: as fast as they allow), then the new canary at 80
    back = seq.index(0)
    assert seq[0] == 80 and seq[-1] == 80 and back == len(seq) - 2, seq
    assert all(a > b for a, b in itertools.pairwise(seq[:back + 1])), seq
    for (w, up), (_, old) in zip(rec.available_when(stable)[1:back + 1],
                                 rec.available_when(v2)[1:back + 1], strict=True):
        # each weight on the way back: the stable's available pods (20 % each) carry its
        # share, and the old canary keeps the pods for what it still carries
        assert 100 - w <= 20 * up, (seq, rec.available_when(stable))
        assert old == 4, (seq, rec.available_when(v2))
    assert rec.available_when(v3)[-1][1] >= 4
    svc = await rkube.get(SERVICES.path(ns, "demo-canary"))
    assert svc["spec"]["selector"][HASH] == v3


async def test_a_long_analysis_step_is_not_a_missed_progress_deadline(
        rkube: Kube, namespace: str, health: VersionHealth,
        start_controller: Callable[..., ControllerProcess]) -> None:
    """Issue 10 item 6: an analysis step longer than progressDeadlineSeconds neither marks
    the rollout Degraded nor aborts it (progressDeadlineAbort); Argo excludes it too. Its
    errors (the first three answers are 500s) do not count towards ``count`` either."""
    ns = namespace
    start_controller()
    tmpl = health.template("version-health", interval="2s", count=6)
    steps = [{"setWeight": 20}, {"analysis": analysis("version-health")}, {"setWeight": 60}]
    stable = await _deploy(rkube, ns, steps, [tmpl])
    await rkube.merge_patch(f"/apis/rollouts.dev/v1alpha1/namespaces/{ns}/rollouts/demo",
                            {"spec": {"progressDeadlineSeconds": 8, "progressDeadlineAbort": True}})
    health.errors = 3
    await set_image(rkube, ns, "demo:2")

    async def promoted() -> JSON | None:
        r = await get_rollout(rkube, ns)
        st = r.get("status") or {}
        if st.get("phase") == "Degraded" or st.get("abort"):
            raise AssertionError(f"the analysis step was taken for a missed deadline: {st}")
        ok = st.get("phase") == "Healthy" and st.get("stableRS") == st.get("currentPodHash") != stable
        return r if ok else None

    await eventually(promoted, 90, "promoted after the long analysis step")
    [run] = await analysis_runs(rkube, ns)
    res = run["status"]["metricResults"][0]
    assert run["status"]["phase"] == "Successful"
    assert (res["count"], res["successful"], res["error"]) == (6, 6, 3)
    assert len(health.asked) == 9


async def test_abort_works_while_a_later_steps_template_is_missing(
        rkube: Kube, namespace: str, health: VersionHealth,
        start_controller: Callable[..., ControllerProcess]) -> None:
    """Issue 11 item 5: the emergency brake works while the spec is invalid (a later
    step's AnalysisTemplate was deleted): the abort is applied and traffic goes back."""
    ns = namespace
    start_controller()
    steps = [{"setWeight": 40}, {"pause": {}}, {"analysis": analysis("version-health")}]
    await _deploy(rkube, ns, steps, [health.template("version-health")])
    await set_image(rkube, ns, "demo:2")
    await eventually(lambda: phase_is(rkube, ns, "Paused"), 60, "paused at 40 %")
    assert await canary_weight(rkube, ns) == 40
    await rkube.delete(f"/apis/rollouts.dev/v1alpha1/namespaces/{ns}/analysistemplates/version-health")

    async def invalid() -> JSON | None:
        ro = await phase_is(rkube, ns, "Degraded")
        return ro if ro and "InvalidSpec" in ro["status"]["message"] else None

    await eventually(invalid, 30, "InvalidSpec")
    await request_action(rkube, ns, "demo", "abort", user="e2e-user")
    await eventually(lambda: _weight_is(rkube, ns, 0), 30, "traffic back on the stable")

    async def status_says_so() -> JSON | None:
        # status is written right after the traffic change: wait for it, not race it
        r = await get_rollout(rkube, ns)
        return r if r["status"]["canary"]["weights"]["canary"]["weight"] == 0 else None

    ro = await eventually(status_says_so, 10, "status naming the traffic back on the stable")
    st = ro["status"]
    assert st["abort"] is True and st["lastAction"]["result"] == "Applied"
    assert st["message"].startswith("InvalidSpec: ") and "RolloutAborted" in st["message"]


async def test_the_background_run_of_a_superseded_revision_stops_measuring(
        rkube: Kube, namespace: str, health: VersionHealth,
        start_controller: Callable[..., ControllerProcess]) -> None:
    """Issue 10 item 6: a new template mid-canary terminates the old revision's background
    run (it used to keep querying forever); the new revision gets its own."""
    ns = namespace
    start_controller()
    await _deploy(rkube, ns, [{"setWeight": 20}, {"pause": {}}],
                  [health.template("version-health", interval="1s")],
                  analysis=analysis("version-health"))
    await set_image(rkube, ns, "demo:2")
    ro = await eventually(lambda: phase_is(rkube, ns, "Paused"), 60, "paused at 20 %")
    v2 = ro["status"]["currentPodHash"]
    await set_image(rkube, ns, "demo:3")
    ro = await eventually(lambda: phase_is(rkube, ns, "Paused"), 60, "the new canary paused at 20 %")
    v3 = ro["status"]["currentPodHash"]

    async def old_run_ended() -> list[JSON] | None:
        runs = await analysis_runs(rkube, ns)
        old = [r for r in runs if r["metadata"]["labels"][HASH] == v2]
        done = old and all((r.get("status") or {}).get("phase") == "Successful" for r in old)
        return runs if done else None

    runs = await eventually(old_run_ended, 30, "the superseded background run terminated")
    [old] = [r for r in runs if r["metadata"]["labels"][HASH] == v2]
    [new] = [r for r in runs if r["metadata"]["labels"][HASH] == v3]
    assert old["spec"]["terminate"] is True and old["status"]["message"] == "run terminated"
    assert (new.get("status") or {}).get("phase") in (None, "Pending", "Running")
    assert not new["spec"].get("terminate") and _args(new)["canary-hash"] == v3
    asked = len([h for h in health.asked if h == v2])
    await asyncio.sleep(3)
    assert len([h for h in health.asked if h == v2]) == asked  # no more queries for v2


async def _weight_is(rkube: Kube, ns: str, w: int) -> bool:
    return await canary_weight(rkube, ns) == w


async def _replicas_are(rkube: Kube, ns: str, h: str, n: int) -> bool:
    rs = (await replica_sets(rkube, ns)).get(h)
    return rs is not None and rs["spec"]["replicas"] == n and \
        int((rs.get("status") or {}).get("availableReplicas") or 0) == n

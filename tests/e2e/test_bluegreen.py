"""Blue-green rollouts on the test bed, as a user checks them with kubectl (issue 13): the
active and preview Services' selectors, the ReplicaSets' replica counts, the Rollout's
phase and ``status.blueGreen``, its Events. Argo's blue-green scenarios: the preview gets
the new revision while the active stays; promote switches the active Service; the
scale-down delay keeps the old ReplicaSet for its window; a failed pre-promotion analysis
aborts with the active Service untouched; a failed post-promotion analysis rolls the active
Service back; auto-promotion after autoPromotionSeconds.

The analyses use Argo's web provider against a small health server of the test's own
(127.0.0.1, free port) that answers 1 (good) or 0 (bad).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rollouts.kube.apply import apply
from rollouts.kube.client import JSON, SERVICES, Kube, KubeError
from rollouts.kube.signals import ActionRejected, request_action
from testbed.cluster import TestBed
from tests.e2e.judgekit import cli
from tests.e2e.kit import (
    HASH,
    RUNS,
    ControllerProcess,
    HealthServer,
    analysis_runs,
    deploy,
    events_of,
    eventually,
    get_rollout,
    health_template,
    phase_is,
    replica_sets,
    serving,
    set_image,
)


@pytest.fixture
def health() -> Iterator[HealthServer]:
    with serving(HealthServer()) as h:
        yield h


HEALTH = {"templates": [{"templateName": "health"}],
          "args": [{"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}}]}


def bg_services() -> list[JSON]:
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"demo-{role}"},
             "spec": {"selector": {"app": "demo"}, "ports": [{"port": 80, "targetPort": 8080}]}}
            for role in ("active", "preview")]


def bg_rollout(replicas: int = 2, **bg: Any) -> JSON:
    return {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "demo"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "demo"}},
            "template": {"metadata": {"labels": {"app": "demo"}},
                         "spec": {"containers": [{"name": "app", "image": "demo:1"}]}},
            "strategy": {"blueGreen": {"activeService": "demo-active",
                                       "previewService": "demo-preview", **bg}},
        },
    }


async def selectors(rkube: Kube, ns: str) -> dict[str, str | None]:
    """What `kubectl get svc -o yaml` shows: the revision each Service selects."""
    out = {}
    for role in ("active", "preview"):
        svc = await rkube.get(SERVICES.path(ns, f"demo-{role}"))
        out[role] = (svc["spec"].get("selector") or {}).get(HASH)
    return out


async def pods_of(rkube: Kube, ns: str, h: str) -> int:
    rss = await replica_sets(rkube, ns)
    return int(rss[h]["spec"]["replicas"]) if h in rss else -1


async def deploy_bg(rkube: Kube, ns: str, *objs: JSON, **bg: Any) -> str:
    ro = await deploy(rkube, ns, bg_rollout(**bg), *bg_services(), *objs)
    v1 = str(ro["status"]["stableRS"])
    assert await selectors(rkube, ns) == {"active": v1, "preview": v1}
    assert ro["status"]["blueGreen"] == {"activeSelector": v1, "previewSelector": v1}
    assert "canary" not in ro["status"]
    return v1


async def new_revision(rkube: Kube, ns: str, v1: str) -> str:
    async def moved() -> str | None:
        st = (await get_rollout(rkube, ns)).get("status") or {}
        h = st.get("currentPodHash")
        return str(h) if h and h != v1 else None
    return await eventually(moved, 30, "the new revision in status")


async def test_preview_then_promote_switches_active_and_old_waits_scale_down_delay(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    start_controller()
    v1 = await deploy_bg(rkube, ns, autoPromotionEnabled=False, scaleDownDelaySeconds=6)

    await set_image(rkube, ns, "demo:2")
    v2 = await new_revision(rkube, ns, v1)
    ro = await eventually(lambda: phase_is(rkube, ns, "Paused"), 60, "paused before the switch")
    # the preview selects the new revision, the users stay on the old one
    assert await selectors(rkube, ns) == {"active": v1, "preview": v2}
    assert ro["status"]["blueGreen"] == {"activeSelector": v1, "previewSelector": v2}
    assert ro["status"]["pauseConditions"][0]["reason"] == "BlueGreenPause"
    assert await pods_of(rkube, ns, v1) == 2 and await pods_of(rkube, ns, v2) == 2
    await asyncio.sleep(3)
    assert (await selectors(rkube, ns))["active"] == v1, "no switch without promote"

    await request_action(rkube, ns, "demo", "promote", user="e2e")
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 30, "promoted")
    switched = time.monotonic()
    ro = await get_rollout(rkube, ns)
    assert await selectors(rkube, ns) == {"active": v2, "preview": v2}
    assert ro["status"]["stableRS"] == v2
    assert ro["status"]["blueGreen"] == {"activeSelector": v2, "previewSelector": v2}
    # scaleDownDelaySeconds: the old revision keeps its pods for its window, then goes
    await asyncio.sleep(3)
    assert await pods_of(rkube, ns, v1) == 2, "the old ReplicaSet is kept for scaleDownDelaySeconds"

    async def v1_down() -> bool:
        return await pods_of(rkube, ns, v1) == 0
    await eventually(v1_down, 30, "old ReplicaSet scaled down")
    assert time.monotonic() - switched >= 4  # (deadlines are stored to the second)
    reasons = [e["reason"] for e in await events_of(rkube, ns)]
    assert "SwitchService" in reasons and "RolloutPromoted" in reasons
    switches = [e["message"] for e in await events_of(rkube, ns) if e["reason"] == "SwitchService"]
    assert any(f"active Service demo-active from {v1} to {v2}" in m for m in switches), switches


async def test_auto_promotion_after_auto_promotion_seconds(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    start_controller()
    v1 = await deploy_bg(rkube, ns, autoPromotionSeconds=6, scaleDownDelaySeconds=2)
    await set_image(rkube, ns, "demo:2")
    v2 = await new_revision(rkube, ns, v1)
    await eventually(lambda: phase_is(rkube, ns, "Paused"), 60, "paused before the switch")
    paused = time.monotonic()
    assert (await selectors(rkube, ns))["active"] == v1

    async def switched() -> bool:
        return (await selectors(rkube, ns))["active"] == v2
    await eventually(switched, 30, "auto-promotion", interval=0.2)
    assert time.monotonic() - paused >= 4.5, "not before autoPromotionSeconds"
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 30, "Healthy after auto-promotion")


async def test_failed_pre_promotion_analysis_aborts_with_active_untouched(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess],
        health: HealthServer) -> None:
    ns = namespace
    start_controller()
    v1 = await deploy_bg(rkube, ns, health_template(health.url), prePromotionAnalysis=HEALTH,
                      abortScaleDownDelaySeconds=3)
    health.answer = 0
    await set_image(rkube, ns, "demo:2")
    v2 = await new_revision(rkube, ns, v1)
    ro = await eventually(lambda: phase_is(rkube, ns, "Degraded"), 60, "aborted")
    assert ro["status"]["abort"] is True
    assert "prePromotion analysis" in ro["status"]["message"]
    run = ro["status"]["blueGreen"]["prePromotionAnalysisRunStatus"]
    assert run["status"] == "Failed"
    assert await selectors(rkube, ns) == {"active": v1, "preview": v2}
    # the run measured the new revision (podTemplateHashValue: Latest)
    ar = await rkube.get(f"{RUNS.format(ns=ns)}/{run['name']}")
    assert {a["name"]: a["value"] for a in ar["spec"]["args"]} == {"hash": v2}
    assert not [e for e in await events_of(rkube, ns) if e["reason"] == "SwitchService"
                and "active" in e["message"] and v2 in e["message"]], "active never moved"

    async def v2_down() -> bool:
        return await pods_of(rkube, ns, v2) == 0
    await eventually(v2_down, 30, "aborted revision scaled down after abortScaleDownDelaySeconds")
    assert await pods_of(rkube, ns, v1) == 2

    # retry starts again with a new run; this time the analysis passes
    health.answer = 1
    await request_action(rkube, ns, "demo", "retry", user="e2e")
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "Healthy after retry")
    assert await selectors(rkube, ns) == {"active": v2, "preview": v2}
    runs = await analysis_runs(rkube, ns)
    assert sorted(r["status"]["phase"] for r in runs) == ["Failed", "Successful"]


async def test_failed_post_promotion_analysis_rolls_active_back(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess],
        health: HealthServer) -> None:
    ns = namespace
    start_controller()
    v1 = await deploy_bg(rkube, ns, health_template(health.url), postPromotionAnalysis=HEALTH,
                      autoPromotionEnabled=False)
    health.answer = 0
    await set_image(rkube, ns, "demo:2")
    v2 = await new_revision(rkube, ns, v1)
    await eventually(lambda: phase_is(rkube, ns, "Paused"), 60, "paused before the switch")
    with pytest.raises(ActionRejected, match="aborted"):
        await request_action(rkube, ns, "demo", "retry", user="e2e")
    await request_action(rkube, ns, "demo", "promote", user="e2e")
    ro = await eventually(lambda: phase_is(rkube, ns, "Degraded"), 60, "post-promotion failed")
    assert await selectors(rkube, ns) == {"active": v1, "preview": v2}
    assert ro["status"]["stableRS"] == v1
    assert ro["status"]["blueGreen"]["activeSelector"] == v1
    assert ro["status"]["blueGreen"]["postPromotionAnalysisRunStatus"]["status"] == "Failed"
    assert await pods_of(rkube, ns, v1) == 2, "the stable kept its pods for the way back"
    switches = [e["message"] for e in await events_of(rkube, ns) if e["reason"] == "SwitchService"]
    # switched to v2, then back (Events carry 1 s timestamps: both may share one second,
    # so their listing order says nothing; the selectors above show the final state)
    assert any(f"active Service demo-active from {v1} to {v2}" in m for m in switches), switches
    assert any(f"active Service demo-active from {v2} to {v1}" in m for m in switches), switches


async def test_bad_input_switches_nothing(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    start_controller()
    v1 = await deploy_bg(rkube, ns)
    # a Service whose selector the pod template does not match
    await apply(rkube, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "demo-preview"},
                        "spec": {"selector": {"app": "other"}, "ports": [{"port": 80}]}}, ns)
    await set_image(rkube, ns, "demo:2")
    ro = await eventually(lambda: phase_is(rkube, ns, "Degraded"), 30, "InvalidSpec")
    assert "Service demo-preview selects app=other" in ro["status"]["message"]
    await asyncio.sleep(2)
    assert (await selectors(rkube, ns))["active"] == v1
    assert len(await replica_sets(rkube, ns)) == 1, "no new ReplicaSet on an invalid spec"
    # a missing Service: named in the condition, still nothing switched
    await rkube.delete(SERVICES.path(ns, "demo-preview"))

    async def missing() -> JSON | None:
        ro = await get_rollout(rkube, ns)
        return ro if "Service demo-preview not found" in (ro.get("status") or {}).get(
            "message", "") else None
    ro = await eventually(missing, 30, "InvalidSpec naming the missing Service")
    assert ro["status"]["phase"] == "Degraded"
    active = await rkube.get(SERVICES.path(ns, "demo-active"))
    assert active["spec"]["selector"][HASH] == v1
    assert len(await replica_sets(rkube, ns)) == 1
    # fixed: the update goes on
    await apply(rkube, bg_services()[1], ns)
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "Healthy once the Service exists")
    assert (await selectors(rkube, ns))["active"] != v1


async def test_cli_shows_active_and_preview_promotes_and_undo_is_a_fast_rollback(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess],
        testbed: TestBed) -> None:
    ns = namespace
    start_controller()
    v1 = await deploy_bg(rkube, ns, autoPromotionEnabled=False, scaleDownDelaySeconds=60)
    await set_image(rkube, ns, "demo:2")
    v2 = await new_revision(rkube, ns, v1)
    await eventually(lambda: phase_is(rkube, ns, "Paused"), 60, "paused before the switch")

    r = await cli("get", "rollout", "demo", kubeconfig=testbed.kubeconfig, namespace=ns)
    text = " ".join(r.out.split())
    assert r.code == 0, r.err
    assert f"Active: demo-active -> {v1}" in text and f"Preview: demo-preview -> {v2}" in text
    r = await cli("get", "rollout", "demo", "-o", "json", kubeconfig=testbed.kubeconfig, namespace=ns)
    view = json.loads(r.out)
    assert view["strategy"] == "blueGreen"
    assert (view["blueGreen"]["activeSelector"], view["blueGreen"]["previewSelector"]) == (v1, v2)

    r = await cli("promote", "demo", kubeconfig=testbed.kubeconfig, namespace=ns)
    assert r.code == 0, r.err
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 30, "promoted")
    assert await selectors(rkube, ns) == {"active": v2, "preview": v2}
    # a second promote has nothing to end: refused, saying why
    r = await cli("promote", "demo", kubeconfig=testbed.kubeconfig, namespace=ns)
    assert r.code != 0 and "nothing to promote" in (r.out + r.err)

    # undo while v1 still has its pods (scaleDownDelaySeconds): back at once, no pause
    assert await pods_of(rkube, ns, v1) == 2
    r = await cli("undo", "demo", kubeconfig=testbed.kubeconfig, namespace=ns)
    assert r.code == 0, r.err

    async def back() -> JSON | None:
        ro = await phase_is(rkube, ns, "Healthy")
        return ro if ro is not None and ro["status"]["stableRS"] == v1 else None
    await eventually(back, 30, "fast rollback to v1")
    assert await selectors(rkube, ns) == {"active": v1, "preview": v1}
    ro = await get_rollout(rkube, ns)
    assert "pauseConditions" not in ro["status"], "a fast rollback does not pause"
    r = await cli("status", "demo", kubeconfig=testbed.kubeconfig, namespace=ns)
    assert r.code == 0 and f"Healthy, active {v1}, preview {v1}" in r.out, (r.out, r.err)


async def _runs_denied(rkube: Kube, ns: str, url: str) -> bool:
    """A server-side dry run of an AnalysisRun is refused (the policy is in force)."""
    body = {"apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": "probe"},
            "spec": {"args": [], "metrics": health_template(url)["spec"]["metrics"]}}
    try:
        await rkube.create(RUNS.format(ns=ns), body, dryRun="All")
    except KubeError as e:
        return e.status == 403
    return False


async def test_a_failure_after_the_switch_leaves_status_naming_the_active_revision(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess],
        health: HealthServer) -> None:
    # The API server refuses the post-promotion AnalysisRun (an admission policy, as a
    # webhook would) right after the active Service switched: the Rollout shows the
    # failure, and status.blueGreen still names what the active Service selects.
    ns = namespace
    start_controller()
    v1 = await deploy_bg(rkube, ns, health_template(health.url), postPromotionAnalysis=HEALTH)
    adm = "/apis/admissionregistration.k8s.io/v1"
    name = f"deny-runs-{ns}"[:63]
    await rkube.create(f"{adm}/validatingadmissionpolicies", {
        "metadata": {"name": name},
        "spec": {"failurePolicy": "Fail",
                 "matchConstraints": {"resourceRules": [{
                     "apiGroups": ["rollouts.dev"], "apiVersions": ["*"],
                     "operations": ["CREATE"], "resources": ["analysisruns"]}]},
                 "validations": [{"expression": "false", "reason": "Forbidden",
                                  "message": "analysis runs are frozen in this namespace"}]}})
    try:
        await rkube.create(f"{adm}/validatingadmissionpolicybindings", {
            "metadata": {"name": name},
            "spec": {"policyName": name, "validationActions": ["Deny"],
                     "matchResources": {"namespaceSelector": {
                         "matchLabels": {"kubernetes.io/metadata.name": ns}}}}})
        await eventually(lambda: _runs_denied(rkube, ns, health.url), 30, "the policy in force")
        await set_image(rkube, ns, "demo:2")
        v2 = await new_revision(rkube, ns, v1)

        async def reported() -> JSON | None:
            ro = await get_rollout(rkube, ns)
            cond = next((c for c in (ro.get("status") or {}).get("conditions") or []
                         if c.get("type") == "Progressing"), {})
            return ro if cond.get("reason") == "ReconciliationError" else None
        ro = await eventually(reported, 60, "the refused AnalysisRun in the Progressing condition")
        cond = next(c for c in ro["status"]["conditions"] if c["type"] == "Progressing")
        assert "creating AnalysisRun" in cond["message"] and "frozen" in cond["message"], cond
        for _ in range(5):  # every status written since names what the Service selects
            ro = await get_rollout(rkube, ns)
            assert ro["status"]["blueGreen"]["activeSelector"] == (await selectors(rkube, ns))["active"]
            await asyncio.sleep(0.5)
        assert (await selectors(rkube, ns))["active"] == v2
        assert ro["status"]["stableRS"] == v1, "not stable before its post-promotion analysis"
    finally:
        for kind in ("validatingadmissionpolicybindings", "validatingadmissionpolicies"):
            with contextlib.suppress(Exception):
                await rkube.delete(f"{adm}/{kind}/{name}")

    async def stable() -> JSON | None:
        ro = await phase_is(rkube, ns, "Healthy")
        return ro if ro is not None and ro["status"]["stableRS"] == v2 else None
    await eventually(stable, 60, "Healthy once AnalysisRuns are allowed again")

"""Review of the canary strategies of issue 13 (basic canary, setCanaryScale, ephemeral pod
metadata, experiment steps): odd sequences driven through the simulated cluster of
``test_decide``, each one a defect found in review (the test failed before its fix)."""

from __future__ import annotations

from rollouts.controller.decide import SetPodMetadata, SetTraffic
from rollouts.controller.pod_metadata import canonical_metadata
from tests.unit.test_canary_strategies import (
    EXP_STEPS,
    BasicCluster,
    ExperimentCluster,
    _decide_once,
    basic,
    counts,
)
from tests.unit.test_decide import (
    ANALYSIS,
    Cluster,
    _analysis_cluster,
    _run_named,
    _set_run,
    h,
    rollout_spec,
    template,
)


def _total_pods(c: BasicCluster) -> int:
    return sum(r.replicas for r in c.rss.values())


def test_basic_canary_undo_to_the_stable_mid_step_stays_within_max_surge() -> None:
    # 60 % of 5 pods: 3 canary + 2 stable. The template goes back to the stable revision:
    # the stable grows back within replicas + maxSurge (6 pods), as the canary's pods leave
    # (it went to 5 at once: 8 pods), and no fewer than replicas - maxUnavailable stay up.
    c = BasicCluster(basic([{"setWeight": 60}, {"pause": {}}], maxSurge=1, maxUnavailable=0),
                     pod_delay=3)
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    c.run_until(lambda: c.status.get("phase") == "Paused")
    assert counts(c, v2, v1) == (3, 2)
    c.set_image("shop:1")  # what `rollouts undo` does
    most, lowest = 0, 5
    for _ in range(120):
        c.reconcile()  # the harness checks replicas + maxSurge on every decision
        most = max(most, _total_pods(c))
        lowest = min(lowest, sum(r.available(c.t) for r in c.rss.values()))
        if c.status.get("phase") == "Healthy" and c.replicas(v2) == 0:
            break
        c.advance(1)
    assert counts(c, v2, v1) == (0, 5)
    assert most <= 6 and lowest >= 5
    assert c.status["stableRS"] == v1


def test_basic_canary_with_dynamic_stable_scale_superseded_mid_step_stays_within_max_surge() -> None:
    # dynamicStableScale needs a router (Argo rejects it without one, and so does the spec
    # check now). Set mid-step together with a new template, it used to turn into the
    # router's drain, which scaled the stable to 5 at once beside 3 canary pods (8 > 5 + 1)
    # and held 60 % on the superseded canary in status: now it is an InvalidSpec that
    # changes nothing.
    c = BasicCluster(basic([{"setWeight": 60}, {"pause": {}}], maxSurge=1, maxUnavailable=0),
                     pod_delay=3)
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    c.run_until(lambda: c.status.get("phase") == "Paused")
    before = counts(c, v2, v1)
    c.edit(lambda s: (s["strategy"]["canary"].update(dynamicStableScale=True),
                      s.update(template=template("shop:3"))))
    c.run(20)
    assert "dynamicStableScale needs trafficRouting" in c.status["message"]
    assert counts(c, v2, v1) == before and h("shop:3") not in c.rss


def test_an_inconclusive_experiment_pauses_with_argos_experiment_reason() -> None:
    # Argo: pause condition InconclusiveExperiment (not the analysis run's reason), which
    # users' scripts read; promote ends it and goes to the next step.
    c = ExperimentCluster(rollout_spec(steps=EXP_STEPS))
    c.deploy_stable()
    c.set_image("shop:2")
    c.run_until(lambda: bool(c.created))
    c.set_phase(c.created[0].name, "Inconclusive", "no clear winner")
    c.run_until(lambda: c.status.get("phase") == "Paused")
    assert [p["reason"] for p in c.status["pauseConditions"]] == ["InconclusiveExperiment"]
    assert c.status["message"] == "InconclusiveExperiment"
    assert c.status["controllerPause"] is True
    paused = c.condition("Paused")
    assert paused is not None and paused["reason"] == "InconclusiveExperiment"
    assert "no clear winner" in paused["message"]
    c.record("promote")
    c.run_until(lambda: c.status["currentStepIndex"] == 2)
    assert [p["reason"] for p in c.status["pauseConditions"]] == ["CanaryPauseStep"]


def test_the_previous_stable_loses_its_role_metadata_at_promotion_not_after_its_delay() -> None:
    # Argo syncs every ReplicaSet that is neither the canary nor the stable to no metadata:
    # after promotion the old stable's pods (kept scaleDownDelaySeconds, without traffic)
    # must not go on claiming role=stable beside the new stable's pods.
    c = Cluster(rollout_spec(steps=[{"setWeight": 20}, {"pause": {}}],
                             canaryMetadata={"labels": {"role": "canary"}},
                             stableMetadata={"labels": {"role": "stable"}}))
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    c.run_until(lambda: c.status.get("phase") == "Paused")
    c.record("promote")
    c.run_until(lambda: c.status.get("phase") == "Healthy")
    assert c.replicas(v1) == 5  # within its scaleDownDelaySeconds
    carried = {v1: canonical_metadata({"role": "stable"}, {}), v2: canonical_metadata({"role": "canary"}, {})}
    md = {a.hash: a for a in _decide_once(c, carried).actions if isinstance(a, SetPodMetadata)}
    assert md[v2] == SetPodMetadata(hash=v2, labels={"role": "stable"}, annotations={})
    assert md.get(v1) == SetPodMetadata(hash=v1, labels={}, annotations={})


def test_an_experiment_that_fails_while_a_user_holds_the_rollout_aborts_at_once() -> None:
    # Argo reconciles the step's Experiment whatever the pause: a failure aborts and traffic
    # leaves the canary, rather than staying on it until the user resumes.
    c = ExperimentCluster(rollout_spec(steps=EXP_STEPS))
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    c.run_until(lambda: bool(c.created))
    c.set_phase(c.created[0].name, "Running")
    c.record("pause")
    c.run_until(lambda: c.status.get("phase") == "Paused")
    assert c.canary_weight() == 20
    c.set_phase(c.created[0].name, "Failed", "canary slower")
    c.run_until(lambda: c.status.get("abort") is True, limit=3)
    assert "canary slower" in c.status["abortReason"]
    c.run_until(lambda: c.canary_weight() == 0, limit=5)
    assert c.traffic == SetTraffic(v1, v1, 0) and c.status["phase"] == "Degraded"


def test_a_step_analysis_that_fails_while_a_user_holds_the_rollout_aborts_at_once() -> None:
    c, v1, _v2 = _analysis_cluster([{"setWeight": 20}, {"analysis": ANALYSIS}, {"pause": {}}])
    c.run_until(lambda: c.status["currentStepIndex"] == 1)
    c.record("pause")
    c.run_until(lambda: c.status.get("phase") == "Paused")
    _set_run(c, _run_named(c, "-step1"), "Failed", "error rate 9%")
    c.run_until(lambda: c.status.get("abort") is True, limit=3)
    assert "error rate 9%" in c.status["abortReason"]
    c.run_until(lambda: c.canary_weight() == 0, limit=5)
    assert c.traffic == SetTraffic(v1, v1, 0)


def test_set_canary_scale_applies_with_every_router_not_only_istio() -> None:
    # setCanaryScale is accepted with an NGINX router (any trafficRouting, as in Argo) and
    # must size the canary: it was ignored for routers other than Istio (1 pod for 10 %).
    steps = [{"setCanaryScale": {"replicas": 3}}, {"setWeight": 10}, {"pause": {}}]
    spec = rollout_spec(replicas=10, steps=steps)
    spec["strategy"]["canary"]["trafficRouting"] = {"nginx": {"stableIngress": "shop"}}
    c = Cluster(spec)
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    c.run_until(lambda: c.status.get("phase") == "Paused")
    assert c.replicas(v2) == 3 and c.canary_weight() == 10 and c.replicas(v1) == 10

"""Unit tests of the canary step logic (``decide``), driven through a simulated cluster.

A tiny in-memory cluster runs ``decide`` in a loop, the way the reconciler does.

ReplicaSets are lists of pods with the time each becomes available; actions are applied
in order; status is stored as the JSON dict the API server would hold (so every
reconcile is also a restart: nothing survives in memory). Every decision is checked
against the contract of ``decide`` (one SetTraffic matching status, safe ordering,
weights only on available pods, purity).
"""

from __future__ import annotations

import copy
import json
import math
import random
from datetime import timedelta
from typing import Any

import pytest

from rollouts.api.actions import new_action
from rollouts.api.spec import parse_spec
from rollouts.api.status import RolloutStatus
from rollouts.controller.decide import (
    AnalysisRunObs,
    ClusterAction,
    CreateAnalysisRun,
    CreateReplicaSet,
    Decision,
    DeleteReplicaSet,
    Event,
    Observations,
    ReplicaSetObs,
    RolloutInput,
    ScaleReplicaSet,
    SetTraffic,
    TerminateAnalysisRun,
    decide,
    template_hash,
)
from rollouts.controller.replicas import replicas_for_weight
from tests.unit.cluster_harness import T0, FakeRS, SimCluster, h, template

NEVER = math.inf

STEPS: list[dict[str, Any]] = [
    {"setWeight": 20},
    {"pause": {"duration": "10s"}},
    {"setWeight": 50},
    {"pause": {}},
    {"setWeight": 80},
]


def rollout_spec(image: str = "shop:1", replicas: int = 5, steps: list[Any] | None = None,
                 **canary: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "canaryService": "shop-canary",
        "stableService": "shop-stable",
        "trafficRouting": {"istio": {"virtualService": {"name": "shop", "routes": ["primary"]}}},
        "steps": copy.deepcopy(STEPS) if steps is None else steps,
    }
    c.update(canary)
    return {"replicas": replicas, "selector": {"matchLabels": {"app": "shop"}},
            "template": template(image), "strategy": {"canary": c}}


class Cluster(SimCluster):
    """The canary's simulated cluster: the traffic router is the last SetTraffic."""

    def __init__(self, spec: dict[str, Any], pod_delay: float = 0.0) -> None:
        super().__init__(spec, pod_delay)
        self.traffic: SetTraffic | None = None
        self.weights: list[tuple[float, int]] = []  # (t, canary weight) at each change

    def record(self, action: str, user: str = "alice", full: bool = False) -> None:
        """What the CLI/HTTP API do: record the intent in status.pendingAction."""
        self.status["pendingAction"] = new_action(action, user, self.now, full).to_dict()

    def rs_obs(self, k: str, r: FakeRS) -> ReplicaSetObs:
        return ReplicaSetObs(k, f"shop-{k}", r.replicas, r.available(self.t),
                             r.available(self.t), r.revision)

    def canary_weight(self) -> int:
        return self.traffic.canary_weight if self.traffic else 0

    def _apply_other(self, a: ClusterAction) -> None:
        if isinstance(a, SetTraffic):
            if self.traffic is None or self.traffic.canary_weight != a.canary_weight:
                self.weights.append((self.t, a.canary_weight))
            self.traffic = a

    def _check(self, ro: RolloutInput, obs: Observations, d: Decision) -> None:
        stored = json.loads(json.dumps(d.status.to_dict()))
        assert RolloutStatus.from_dict(stored) == d.status, "a restart must read back the same status"
        st = d.status
        traffic = [a for a in d.actions if isinstance(a, SetTraffic)]
        if ro.spec is None or obs.template is None or ro.spec_errors or obs.environment_errors:
            if not ro.status.abort:
                assert d.actions == [], "an invalid rollout must not touch the cluster"
                assert d.status.canary_weight == ro.status.canary_weight
                return
            # only the traffic part of an abort recorded earlier: stable up, traffic back
            assert len(traffic) <= 1 and all(
                isinstance(a, SetTraffic) or (isinstance(a, ScaleReplicaSet)
                                              and a.replicas > obs.replica_sets[a.hash].replicas)
                for a in d.actions), d.actions
            if not traffic:
                assert d.status.canary_weight == ro.status.canary_weight
                return
        assert len(traffic) == 1, d.actions
        assert ro.spec is not None
        t0 = traffic[0]
        assert (t0.stable_hash, t0.canary_hash, t0.canary_weight) == (
            st.stable_rs or "", st.canary_route_hash or st.current_pod_hash or "", st.canary_weight), \
            "status must claim exactly the traffic the actions set"
        assert 0 <= st.canary_weight <= 100
        i = d.actions.index(traffic[0])
        rss = obs.replica_sets
        for j, a in enumerate(d.actions):
            if isinstance(a, CreateReplicaSet):
                assert j < i
            elif isinstance(a, ScaleReplicaSet):
                up = a.replicas > rss[a.hash].replicas
                assert (j < i) == up, f"scale-ups before traffic, scale-downs after: {d.actions}"
            elif isinstance(a, DeleteReplicaSet):
                assert j > i and a.hash not in (st.stable_rs, st.current_pod_hash)
                assert rss[a.hash].replicas == 0
            elif isinstance(a, CreateAnalysisRun):
                # runs measure the revisions of this decision, never the status before it
                assert (a.canary_hash, a.stable_hash) == (st.current_pod_hash, st.stable_rs), a
            elif isinstance(a, TerminateAnalysisRun):
                assert a.name in obs.analysis_runs and not obs.analysis_runs[a.name].terminated
        prev = ro.status
        t = traffic[0]
        same_canary = t.canary_hash == (prev.canary_route_hash or prev.current_pod_hash)
        if (t.canary_weight > prev.canary_weight and same_canary and t.stable_hash != t.canary_hash) \
                or (t.canary_weight and not same_canary):
            need = replicas_for_weight(ro.spec.replicas, t.canary_weight)
            assert need == 0 or (t.canary_hash in rss and rss[t.canary_hash].available >= need), \
                "traffic may only move to canary pods that are available"
        if t.stable_hash == t.canary_hash and prev.stable_rs in rss and t.stable_hash != prev.stable_rs:
            assert rss[t.stable_hash].available >= ro.spec.replicas, "promotion needs a full canary"
        if ro.spec.canary.dynamic_stable_scale and t.canary_weight < prev.canary_weight \
                and t.stable_hash == prev.stable_rs:
            need = replicas_for_weight(ro.spec.replicas, 100 - t.canary_weight)
            carrier = prev.canary_route_hash or prev.current_pod_hash or ""
            carried = 100 * (rss[carrier].available if carrier in rss else 0) // ro.spec.replicas
            # (unless the pods it left could not carry it either)
            assert rss[t.stable_hash].available >= need or carried < prev.canary_weight, \
                f"traffic may only move back to stable pods that are available: {prev.canary_weight} " \
                f"-> {t.canary_weight} with {rss[t.stable_hash].available} stable pods"
        for a in d.actions:
            if isinstance(a, ScaleReplicaSet) and a.hash == t.canary_hash and t.canary_weight:
                assert a.replicas >= replicas_for_weight(ro.spec.replicas, t.canary_weight), \
                    "pods carrying canary traffic are never scaled away"

    def deploy_stable(self) -> str:
        """First deploy, run until Healthy; the stable hash."""
        self.run_until(lambda: self.status.get("phase") == "Healthy")
        return str(self.status["stableRS"])

    def events_with(self, reason: str) -> list[Event]:
        return [e for e in self.events if e.reason == reason]

    def condition(self, ctype: str) -> dict[str, Any] | None:
        return self.st().condition(ctype)

    def actions_since(self, t: float) -> list[ClusterAction]:
        return [a for (at, a) in self.log if at >= t]


# --- first deploy and scaling ---------------------------------------------------------


def test_first_deploy_skips_steps_and_goes_healthy() -> None:
    c = Cluster(rollout_spec(), pod_delay=3)
    d = c.reconcile()
    v1 = h("shop:1")
    assert d.actions == [CreateReplicaSet(v1, 5, 1), SetTraffic(v1, v1, 0)]
    assert c.status["phase"] == "Progressing"
    assert c.status["stableRS"] == c.status["currentPodHash"] == v1
    assert c.status["currentStepIndex"] == len(STEPS)  # no steps for the first revision
    assert [e.reason for e in d.events] == ["NewReplicaSetCreated"]
    c.run_until(lambda: c.status["phase"] == "Healthy")
    assert c.t == 3
    st = c.st()
    assert st.canary_weight == 0 and not st.pause_conditions
    assert st.condition("Completed")["status"] == "True"  # type: ignore[index]
    assert st.condition("Available")["status"] == "True"  # type: ignore[index]
    assert c.status["canary"]["weights"]["stable"] == {
        "weight": 100, "podTemplateHash": v1, "serviceName": "shop-stable"}
    assert len(c.events_with("RolloutHealthy")) == 1
    assert c.status["replicas"] == c.status["availableReplicas"] == c.status["updatedReplicas"] == 5
    assert c.status["selector"] == "app=shop"
    assert c.status["observedGeneration"] == 1
    # steady state: nothing but the idempotent traffic write, no new events
    n_events = len(c.events)
    c.run(30)
    assert len(c.events) == n_events
    assert c.last is not None and c.last.actions == [SetTraffic(v1, v1, 0)]
    assert c.last.requeue_after is None


def test_hpa_changing_replicas_rescales_the_stable_replicaset() -> None:
    c = Cluster(rollout_spec(), pod_delay=2)
    v1 = c.deploy_stable()
    c.edit(lambda s: s.update(replicas=8))
    d = c.reconcile()
    assert d.actions == [ScaleReplicaSet(v1, 8), SetTraffic(v1, v1, 0)]
    assert c.status["phase"] == "Progressing" and c.status["observedGeneration"] == 2
    assert "5/8 available" in c.status["message"]
    c.run_until(lambda: c.status["phase"] == "Healthy")
    assert c.replicas(v1) == 8
    c.edit(lambda s: s.update(replicas=3))
    d = c.reconcile()
    assert d.actions == [SetTraffic(v1, v1, 0), ScaleReplicaSet(v1, 3)]
    assert c.status["phase"] == "Healthy" and c.replicas(v1) == 3
    assert c.status["currentStepIndex"] == len(STEPS)  # a scale is not a new revision


# --- the canary steps -------------------------------------------------------------------


def test_steps_weights_replicas_pauses_promote_and_scale_down() -> None:
    c = Cluster(rollout_spec(), pod_delay=3)
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    start = c.t
    d = c.reconcile()
    # a canary ReplicaSet big enough for the first weight; no traffic before it is ready
    assert d.actions == [CreateReplicaSet(v2, 1, 2), SetTraffic(v1, v2, 0)]
    assert c.status["phase"] == "Progressing" and c.status["currentStepIndex"] == 0
    assert "waiting for canary pods (0/1 available)" in c.status["message"]
    assert "new revision" in d.events[0].message

    # 20 % as soon as the one canary pod is available, then the 10 s pause
    t20 = c.run_until(lambda: c.canary_weight() == 20)
    assert t20 == start + 3
    assert c.replicas(v2) == 1 and c.replicas(v1) == 5
    assert c.status["currentStepIndex"] == 1 and c.status["phase"] == "Paused"
    assert c.status["pauseConditions"][0]["reason"] == "CanaryPauseStep"
    assert c.last is not None and c.last.requeue_after == 10
    assert c.status["canary"]["weights"]["canary"] == {
        "weight": 20, "podTemplateHash": v2, "serviceName": "shop-canary"}

    # the pause ends after 10 s: the canary scales to ceil(5 * 50 %) = 3 before 50 % is set
    t_scale = c.run_until(lambda: c.replicas(v2) == 3)
    assert t_scale == t20 + 10
    assert c.canary_weight() == 20 and c.status["currentStepIndex"] == 2
    t50 = c.run_until(lambda: c.canary_weight() == 50)
    assert t50 == t_scale + 3

    # and it stops at the indefinite pause
    assert c.status["currentStepIndex"] == 3 and c.status["phase"] == "Paused"
    assert "waiting for promote" in c.status["message"]
    assert c.condition("Paused")["reason"] == "CanaryPauseStep"  # type: ignore[index]
    c.run(1000, dt=10)
    assert c.canary_weight() == 50 and c.status["currentStepIndex"] == 3
    assert [w for _, w in c.weights] == [0, 20, 50]

    # promote: 80 % once ceil(5 * 80 %) = 4 canary pods are available, then promotion
    c.record("promote", "bob")
    d = c.reconcile()
    assert c.status["lastAction"]["result"] == "Applied" and "pendingAction" not in c.status
    assert c.status["lastAction"]["user"] == "bob" and c.status["lastAction"]["stepIndex"] == 3
    assert any(e.reason == "RolloutPromoted" for e in d.events)
    assert ScaleReplicaSet(v2, 4) in d.actions and c.canary_weight() == 50
    c.run_until(lambda: c.canary_weight() == 80)
    assert c.rss[v2].available(c.t) == 4  # 80 % went to 4 available canary pods
    # that was the last step: the canary scales to 5 (in the same decision) before promotion
    assert c.replicas(v2) == 5 and c.status["stableRS"] == v1
    t_promoted = c.run_until(lambda: c.status["stableRS"] == v2)
    assert c.replicas(v2) == 5 and c.traffic == SetTraffic(v2, v2, 0)
    assert [w for _, w in c.weights] == [0, 20, 50, 80, 0]
    st = c.st()
    assert st.phase == "Healthy" and st.current_step_index == len(STEPS)
    assert st.condition("Completed")["status"] == "True"  # type: ignore[index]
    assert not st.pause_conditions and st.message == ""
    assert len(c.events_with("RolloutCompleted")) == 1
    # every step once: four completed by the controller, the pause {} ended by the promote
    assert len(c.events_with("RolloutStepCompleted")) == len(STEPS) - 1
    assert len(c.events_with("RolloutPromoted")) == 1

    # the old ReplicaSet keeps its pods for scaleDownDelaySeconds (30 s by default)
    t_down = c.run_until(lambda: c.replicas(v1) == 0)
    assert t_down == t_promoted + 30
    assert c.traffic == SetTraffic(v2, v2, 0)
    assert v1 in c.rss  # kept for history (revisionHistoryLimit 10)


def test_canary_replicas_always_match_the_weight_they_carry() -> None:
    c = Cluster(rollout_spec(replicas=7, steps=[{"setWeight": 10}, {"setWeight": 33},
                                               {"setWeight": 34}, {"setWeight": 100}]), pod_delay=1)
    c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    seen: list[tuple[int, int]] = []  # (weight, available canary pods when it was set)
    for _ in range(40):
        obs = c.observe()
        c.reconcile()
        assert c.traffic is not None
        if c.traffic.canary_hash == v2 and c.traffic.stable_hash != v2 and (
                not seen or seen[-1][0] != c.traffic.canary_weight):
            rs = obs.replica_sets.get(v2)
            seen.append((c.traffic.canary_weight, rs.available if rs else 0))
        c.advance(1)
    # 33 and 34 both need 3 pods, so both pass in one decision; 100 on 7 available pods
    # is the last step, so promotion follows in the same decision
    assert seen == [(0, 0), (10, 1), (34, 3)]
    targets = [a.replicas for _, a in c.log
               if isinstance(a, CreateReplicaSet | ScaleReplicaSet) and a.hash == v2]
    assert targets == [1, 3, 7]  # ceil(7 * w / 100) for 10, 33 (and 34), then all for 100
    assert c.traffic == SetTraffic(v2, v2, 0)
    assert c.status["stableRS"] == v2 and c.status["phase"] == "Healthy"


def test_a_weight_is_applied_only_once_the_canary_is_available() -> None:
    c = Cluster(rollout_spec(), pod_delay=0)
    c.deploy_stable()
    c.delay_for[h("shop:2")] = 25
    c.set_image("shop:2")
    c.run(24)
    assert c.canary_weight() == 0 and c.status["currentStepIndex"] == 0
    assert c.status["phase"] == "Progressing"
    c.run_until(lambda: c.canary_weight() == 20, limit=2)


def test_restart_in_the_middle_of_a_timed_pause_keeps_the_original_deadline() -> None:
    c = Cluster(rollout_spec(), pod_delay=1)
    c.deploy_stable()
    c.set_image("shop:2")
    t20 = c.run_until(lambda: c.canary_weight() == 20)
    started = c.status["pauseConditions"][0]["startTime"]
    c.run(4)
    # The controller is killed: only the stored status survives (as JSON), and nobody
    # reconciles for 5 s. A new controller process starts from that status.
    stored = json.dumps(c.status)
    c.advance(5)
    c.status = json.loads(stored)
    d = c.reconcile()
    assert c.status["currentStepIndex"] == 1 and c.status["phase"] == "Paused"
    assert c.status["pauseConditions"][0]["startTime"] == started
    assert d.requeue_after == pytest.approx(t20 + 10 - c.t)
    end = (T0 + timedelta(seconds=t20 + 10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert c.status["message"] == f"paused at step 1/5: pause 10s until {end}"
    t_end = c.run_until(lambda: c.status["currentStepIndex"] >= 2)
    assert t_end == t20 + 10
    # no step skipped or repeated
    done = [e.message for e in c.events_with("RolloutStepCompleted")]
    assert done == ["step 1/5 completed: setWeight 20", "step 2/5 completed: pause 10s"]
    assert len(c.events_with("RolloutPaused")) == 1


def test_a_sub_second_restart_never_repeats_or_skips_a_step() -> None:
    # Reconciling at odd times (restarts, resyncs) gives the same steps, once each.
    c = Cluster(rollout_spec(steps=[{"setWeight": 20}, {"pause": {"duration": 7}}, {"setWeight": 40},
                                    {"pause": {"duration": "3s"}}, {"setWeight": 60}]), pod_delay=0.3)
    c.deploy_stable()
    c.set_image("shop:2")
    c.run_until(lambda: c.status.get("stableRS") == h("shop:2"), dt=0.7)
    assert [w for _, w in c.weights] == [0, 20, 40, 60, 0]
    assert len(c.events_with("RolloutStepCompleted")) == 5


# --- abort, retry, promote, pause -------------------------------------------------------


def _at_step_2(pod_delay: float = 0, **canary: Any) -> tuple[Cluster, str, str]:
    c = Cluster(rollout_spec(**canary), pod_delay=pod_delay)
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    c.run_until(lambda: c.status["currentStepIndex"] == 2)
    return c, v1, h("shop:2")


def test_abort_returns_all_traffic_to_stable_in_the_same_decision() -> None:
    c, v1, v2 = _at_step_2()
    c.run_until(lambda: c.canary_weight() == 50)
    c.record("abort", "carol")
    t_abort = c.t
    d = c.reconcile()
    # the canary Service points back at the stable pods (Argo), not at an aborted revision
    assert [a for a in d.actions if isinstance(a, SetTraffic)] == [SetTraffic(v1, v1, 0)]
    assert c.status["canary"]["weights"]["canary"] == {
        "weight": 0, "podTemplateHash": v1, "serviceName": "shop-canary"}
    assert c.status["currentPodHash"] == v2
    assert not any(isinstance(a, ScaleReplicaSet) and a.hash == v2 for a in d.actions)
    st = c.st()
    assert st.phase == "Degraded" and st.abort and st.aborted_by == "carol"
    assert st.message == "RolloutAborted: aborted by carol"
    assert st.condition("Progressing")["reason"] == "RolloutAborted"  # type: ignore[index]
    assert st.condition("Progressing")["status"] == "False"  # type: ignore[index]
    assert st.last_action is not None and st.last_action["result"] == "Applied"
    assert [e.type for e in d.events if e.reason == "RolloutAborted"] == ["Warning"]
    assert c.replicas(v2) == 3
    # the canary is scaled down after abortScaleDownDelaySeconds (30 s by default)
    t_down = c.run_until(lambda: c.replicas(v2) == 0)
    assert t_down == t_abort + 30
    assert c.canary_weight() == 0 and c.status["phase"] == "Degraded"
    assert c.replicas(v1) == 5

    # promote while aborted is rejected, and changes nothing
    c.record("promote", "dave")
    d = c.reconcile()
    assert c.status["lastAction"]["result"] == "Rejected"
    assert "retry it first" in c.status["lastAction"]["message"]
    assert "pendingAction" not in c.status
    assert [(e.type, e.reason) for e in d.events] == [("Warning", "ActionRejected")]
    assert c.status["phase"] == "Degraded" and c.canary_weight() == 0

    # retry restarts the steps at 0 for the same revision
    c.record("retry", "carol")
    d = c.reconcile()
    st = c.st()
    assert not st.abort and st.current_step_index == 0 and st.phase == "Progressing"
    assert CreateReplicaSet(v2, 1, 2) not in d.actions and ScaleReplicaSet(v2, 1) in d.actions
    assert any(e.reason == "RolloutRetried" for e in d.events)
    c.run_until(lambda: c.canary_weight() == 20)
    assert c.status["currentStepIndex"] == 1 and c.status["phase"] == "Paused"


def test_abort_with_custom_delay_and_zero_delay() -> None:
    c, _, v2 = _at_step_2(abortScaleDownDelaySeconds=5)
    c.record("abort")
    t0 = c.t
    assert c.run_until(lambda: c.replicas(v2) == 0) == t0 + 5

    # abortScaleDownDelaySeconds: 0 leaves the canary running (Argo's meaning)
    c, _, v2 = _at_step_2(abortScaleDownDelaySeconds=0)
    c.run_until(lambda: c.canary_weight() == 50)
    c.record("abort")
    c.run(300)
    assert c.replicas(v2) == 3 and c.canary_weight() == 0
    assert v2 not in c.status.get("scaleDownAt", {})


def test_abort_when_healthy_is_rejected() -> None:
    c = Cluster(rollout_spec())
    c.deploy_stable()
    c.record("abort", "eve")
    d = c.reconcile()
    assert c.status["lastAction"]["result"] == "Rejected"
    assert "no canary is in progress" in c.status["lastAction"]["message"]
    assert d.events[0].type == "Warning" and d.events[0].reason == "ActionRejected"
    assert c.status["phase"] == "Healthy" and "abort" not in c.status


def test_promote_full_skips_all_remaining_steps() -> None:
    c = Cluster(rollout_spec(), pod_delay=2)
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    c.run_until(lambda: c.status["currentStepIndex"] == 1)
    c.record("promote", full=True)
    d = c.reconcile()
    assert ScaleReplicaSet(v2, 5) in d.actions
    assert c.st().promote_full and c.status["phase"] == "Progressing"
    assert any(e.reason == "RolloutPromotedFull" for e in d.events)
    c.run_until(lambda: c.status["stableRS"] == v2)
    assert [w for _, w in c.weights] == [0, 20, 0]
    assert c.traffic == SetTraffic(v2, v2, 0) and c.status["phase"] == "Healthy"
    assert not c.st().promote_full
    assert c.replicas(v1) == 5  # still within scaleDownDelaySeconds


def test_promote_on_a_set_weight_step_skips_it() -> None:
    c = Cluster(rollout_spec(), pod_delay=0)
    c.deploy_stable()
    c.delay_for[h("shop:2")] = 100  # canary pods are slow: step 0 waits
    c.set_image("shop:2")
    c.run(5)
    assert c.status["currentStepIndex"] == 0
    c.record("promote")
    c.reconcile()
    # setWeight 20 was skipped: on to the pause, still without traffic on the canary
    assert c.status["currentStepIndex"] == 1 and c.canary_weight() == 0
    assert c.status["phase"] == "Paused"
    assert c.status["lastAction"]["stepIndex"] == 0


def test_promote_ends_a_timed_pause_early() -> None:
    c2 = Cluster(rollout_spec())
    c2.deploy_stable()
    c2.set_image("shop:2")
    c2.run_until(lambda: c2.status["currentStepIndex"] == 1)
    t = c2.t
    c2.record("promote")
    c2.run_until(lambda: c2.canary_weight() == 50)
    assert c2.t == t + 1  # no wait for the rest of the pause: just the scale-up to 3 pods


def test_user_pause_and_resume() -> None:
    c = Cluster(rollout_spec())
    c.deploy_stable()
    c.set_image("shop:2")
    c.run_until(lambda: c.status["currentStepIndex"] == 1)
    c.record("pause", "frank")
    d = c.reconcile()
    assert c.status["phase"] == "Paused" and c.status["message"] == "paused by frank"
    assert c.condition("Paused")["reason"] == "RolloutPaused"  # type: ignore[index]
    assert any(e.reason == "RolloutPaused" and "frank" in e.message for e in d.events)
    c.run(60)  # the 10 s pause would have ended; the user pause holds
    assert c.status["currentStepIndex"] == 1 and c.canary_weight() == 20
    # a second pause is rejected, resume continues
    c.record("pause", "frank")
    c.reconcile()
    assert c.status["lastAction"]["result"] == "Rejected"
    c.record("resume", "frank")
    d = c.reconcile()
    assert any(e.reason == "RolloutResumed" for e in d.events)
    assert c.status["currentStepIndex"] == 2 and ScaleReplicaSet(h("shop:2"), 3) in d.actions
    c.run_until(lambda: c.canary_weight() == 50)
    assert c.status["currentStepIndex"] == 3
    assert "userPause" not in c.status


def test_resume_without_a_user_pause_is_rejected() -> None:
    c, _, _ = _at_step_2()
    c.record("resume")
    c.reconcile()
    assert c.status["lastAction"]["result"] == "Rejected"
    assert "not paused by a user" in c.status["lastAction"]["message"]


def test_spec_paused_holds_the_steps() -> None:
    c = Cluster(rollout_spec())
    c.deploy_stable()
    c.edit(lambda s: s.update(paused=True))
    c.set_image("shop:2")
    c.run(30)
    assert c.status["phase"] == "Paused" and c.status["message"] == "paused by spec.paused"
    assert c.condition("Paused")["reason"] == "PausedBySpec"  # type: ignore[index]
    assert c.canary_weight() == 0 and c.status["currentStepIndex"] == 0
    assert len(c.events_with("PausedBySpec")) == 1
    c.record("resume")
    c.reconcile()
    assert "spec.paused" in c.status["lastAction"]["message"]
    c.edit(lambda s: s.update(paused=False))
    c.run_until(lambda: c.canary_weight() == 20)
    assert c.condition("Paused")["reason"] == "CanaryPauseStep"  # type: ignore[index]


def test_spec_paused_does_not_hold_a_first_deploy() -> None:
    c = Cluster({**rollout_spec(), "paused": True})
    c.deploy_stable()
    assert c.status["phase"] == "Healthy"


def test_promote_lifts_a_user_pause() -> None:
    c = Cluster(rollout_spec())
    c.deploy_stable()
    c.set_image("shop:2")
    c.run_until(lambda: c.status["currentStepIndex"] == 3)
    c.record("pause")
    c.reconcile()
    c.record("promote")
    c.run_until(lambda: c.status["stableRS"] == h("shop:2"))


def test_action_for_an_old_revision_is_rejected() -> None:
    c = Cluster(rollout_spec())
    c.deploy_stable()
    c.set_image("shop:2")
    c.run_until(lambda: c.status["currentStepIndex"] == 3)
    stale = new_action("promote", "gina", c.now)
    c.set_image("shop:3")
    c.reconcile()
    c.status["pendingAction"] = {**stale.to_dict(), "podHash": h("shop:2")}
    c.reconcile()
    assert c.status["lastAction"]["result"] == "Rejected"
    assert "moved to revision" in c.status["lastAction"]["message"]


def test_pending_action_without_id_is_applied() -> None:
    c, _, _ = _at_step_2()
    c.status["pendingAction"] = {"action": "abort", "user": "hank"}
    c.reconcile()
    assert c.status["lastAction"]["result"] == "Applied" and c.status["abort"] is True


def test_unknown_pending_action_is_rejected() -> None:
    c, _, _ = _at_step_2()
    c.status["pendingAction"] = {"action": "explode", "user": "ivan"}
    c.reconcile()
    assert c.status["lastAction"]["result"] == "Rejected"
    assert "unknown action" in c.status["lastAction"]["message"]


# --- spec changes during a rollout ------------------------------------------------------


def test_template_change_mid_rollout_restarts_the_steps() -> None:
    c, v1, v2 = _at_step_2(pod_delay=2)
    c.run_until(lambda: c.canary_weight() == 50)
    c.set_image("shop:3")
    v3 = h("shop:3")
    d = c.reconcile()
    traffic = next(a for a in d.actions if isinstance(a, SetTraffic))
    assert traffic == SetTraffic(v1, v3, 0)  # the old canary loses its traffic at once...
    assert d.actions.index(ScaleReplicaSet(v2, 0)) > d.actions.index(traffic)  # ...then its pods
    assert d.actions[0] == CreateReplicaSet(v3, 1, 3)
    st = c.st()
    assert st.current_pod_hash == v3 and st.current_step_index == 0 and st.stable_rs == v1
    assert st.phase == "Progressing" and not st.pause_conditions
    c.run_until(lambda: c.canary_weight() == 20)
    assert c.traffic == SetTraffic(v1, v3, 20) and c.status["currentStepIndex"] == 1
    c.run_until(lambda: c.status["currentStepIndex"] == 3)
    assert [w for _, w in c.weights] == [0, 20, 50, 0, 20, 50]

    # back to the stable template: Healthy again without any step
    c.set_image("shop:1")
    d = c.reconcile()
    assert next(a for a in d.actions if isinstance(a, SetTraffic)) == SetTraffic(v1, v1, 0)
    assert c.status["phase"] == "Healthy" and c.status["currentStepIndex"] == len(STEPS)
    assert ScaleReplicaSet(v3, 0) in d.actions
    assert "back to the stable revision" in " ".join(e.message for e in d.events)
    c.run(60)
    assert c.replicas(v1) == 5 and c.replicas(v2) == c.replicas(v3) == 0


def test_changing_the_steps_mid_rollout_restarts_them() -> None:
    c, v1, v2 = _at_step_2()
    c.run_until(lambda: c.canary_weight() == 50)
    c.edit(lambda s: s["strategy"]["canary"].update(steps=[{"pause": {}}, {"setWeight": 30}]))
    d = c.reconcile()
    assert any("steps changed" in e.message for e in d.events)
    assert c.status["currentStepIndex"] == 0 and c.status["phase"] == "Paused"
    assert c.traffic == SetTraffic(v1, v2, 0)
    # an equivalent spelling of the same steps is not a change
    c.edit(lambda s: s["strategy"]["canary"].update(steps=[{"pause": None}, {"setWeight": 30}]))
    c.reconcile()
    assert c.status["phase"] == "Paused" and not any("steps changed" in e.message for e in c.last.events)  # type: ignore[union-attr]


def test_progress_deadline_exceeded_is_reported_once() -> None:
    c = Cluster(rollout_spec(), pod_delay=0)
    c.edit(lambda s: s.update(progressDeadlineSeconds=60))
    c.deploy_stable()
    c.delay_for[h("shop:2")] = NEVER
    c.set_image("shop:2")
    t0 = c.t
    d = c.reconcile()
    assert d.requeue_after == 60
    t_fail = c.run_until(lambda: c.status["phase"] == "Degraded")
    assert t_fail == t0 + 60
    st = c.st()
    cond = st.condition("Progressing")
    assert cond is not None and cond["status"] == "False" and cond["reason"] == "ProgressDeadlineExceeded"
    assert st.message.startswith("ProgressDeadlineExceeded: no progress for 60s")
    assert not st.abort and c.canary_weight() == 0
    c.run(120)
    assert len(c.events_with("ProgressDeadlineExceeded")) == 1
    assert c.condition("Progressing") == cond  # no churn: unchanged condition, unchanged status
    # the canary becomes ready after all: the rollout recovers by itself
    c.rss[h("shop:2")].pods = [c.t]
    c.run_until(lambda: c.canary_weight() == 20)
    assert c.status["phase"] == "Paused"


def test_progress_deadline_abort_sends_traffic_back() -> None:
    c, v1, v2 = _at_step_2(pod_delay=0)
    c.edit(lambda s: s.update(progressDeadlineSeconds=30, progressDeadlineAbort=True))
    c.run_until(lambda: c.canary_weight() == 50)
    c.record("promote")  # to setWeight 80, whose extra pods never become ready
    c.delay_for[v2] = NEVER
    t0 = c.t
    t_abort = c.run_until(lambda: c.status.get("abort") is True)
    assert t_abort == t0 + 30
    assert c.traffic == SetTraffic(v1, v1, 0)
    st = c.st()
    assert st.phase == "Degraded" and st.aborted_by == "controller"
    assert "ProgressDeadlineExceeded" in st.message
    assert st.condition("Progressing")["reason"] == "ProgressDeadlineExceeded"  # type: ignore[index]
    reasons = [e.reason for e in c.last.events]  # type: ignore[union-attr]
    assert reasons[:2] == ["ProgressDeadlineExceeded", "RolloutAborted"]
    assert c.run_until(lambda: c.replicas(v2) == 0) == t_abort + 30
    assert len(c.events_with("RolloutAborted")) == 1


def test_progress_deadline_on_the_first_deploy_does_not_abort() -> None:
    c = Cluster({**rollout_spec(), "progressDeadlineSeconds": 10, "progressDeadlineAbort": True})
    c.delay_for[h("shop:1")] = NEVER
    c.run(20)
    assert c.status["phase"] == "Degraded" and "abort" not in c.status
    assert c.traffic == SetTraffic(h("shop:1"), h("shop:1"), 0)


# --- invalid input ----------------------------------------------------------------------


def test_invalid_spec_changes_nothing_and_warns_once() -> None:
    c, v1, v2 = _at_step_2()
    c.run_until(lambda: c.canary_weight() == 50)
    log_len = len(c.log)
    c.edit(lambda s: s["strategy"]["canary"]["steps"].append({"setWeight": 150}))
    for _ in range(5):
        d = c.reconcile()
        assert d.actions == []
        c.advance(10)
    assert len(c.log) == log_len and c.traffic == SetTraffic(v1, v2, 50)
    st = c.st()
    cond = st.condition("InvalidSpec")
    assert cond is not None and cond["status"] == "True"
    assert "spec.strategy.canary.steps[5].setWeight must be 0..100" in cond["message"]
    assert st.phase == "Degraded" and st.message.startswith("InvalidSpec: ")
    assert st.canary_weight == 50 and st.observed_generation == c.generation
    warnings = c.events_with("InvalidSpec")
    assert len(warnings) == 1 and warnings[0].type == "Warning"
    # an action other than abort is rejected while invalid: nothing can be done safely
    c.record("promote")
    d = c.reconcile()
    assert d.actions == [] and c.status["lastAction"]["result"] == "Rejected"
    assert c.status["lastAction"]["message"] == "the spec is invalid"
    # valid again: the condition goes, the rollout continues where it was
    c.edit(lambda s: s["strategy"]["canary"]["steps"].pop())
    d = c.reconcile()
    assert c.condition("InvalidSpec") is None
    assert any(e.message == "spec is valid again" for e in d.events)
    assert c.status["phase"] == "Paused" and c.status["currentStepIndex"] == 3
    assert c.traffic == SetTraffic(v1, v2, 50)


def test_abort_is_recorded_while_the_spec_cannot_be_parsed_and_honoured_once_valid() -> None:
    c, v1, v2 = _at_step_2()
    c.run_until(lambda: c.canary_weight() == 50)
    c.edit(lambda s: s["strategy"]["canary"]["steps"].append({"setWeight": 150}))
    c.reconcile()
    c.record("abort", "carol")
    d = c.reconcile()
    # the emergency brake is never refused: recorded at once...
    st = c.st()
    assert st.abort and st.aborted_by == "carol" and st.last_action is not None
    assert st.last_action["result"] == "Applied" and "pendingAction" not in c.status
    assert [e.reason for e in d.events] == ["RolloutAborted"]
    # ...but with no parsable spec the routing is unknown: traffic stays where status says
    assert d.actions == [] and c.traffic == SetTraffic(v1, v2, 50) and st.canary_weight == 50
    assert st.message.startswith("InvalidSpec: ") and "RolloutAborted: aborted by carol" in st.message
    assert "traffic goes back to stable once the spec can be read" in st.message
    assert c.reconcile().actions == []
    # valid again: the recorded abort is honoured at once
    c.edit(lambda s: s["strategy"]["canary"]["steps"].pop())
    c.reconcile()
    assert c.traffic == SetTraffic(v1, v1, 0) and c.status["phase"] == "Degraded"
    assert c.status["message"] == "RolloutAborted: aborted by carol"


def test_abort_works_while_an_object_the_spec_names_is_missing() -> None:
    # e.g. a later step's AnalysisTemplate was deleted: the spec still says how traffic flows
    c, v1, v2 = _at_step_2()
    c.run_until(lambda: c.canary_weight() == 50)
    c.env_errors = ("spec.strategy.canary.steps[4].analysis: AnalysisTemplate gone not found",)
    c.reconcile()
    c.record("abort", "carol")
    d = c.reconcile()
    assert d.actions == [] and c.st().abort  # recorded first: nothing can stop that write
    d = c.reconcile()
    assert d.actions == [SetTraffic(v1, v1, 0)]  # traffic back, no scale-down while invalid
    st = c.st()
    assert st.canary_weight == 0 and st.phase == "Degraded"
    assert st.message.startswith("InvalidSpec: spec.strategy.canary.steps[4]")
    assert "RolloutAborted: aborted by carol" in st.message
    assert c.reconcile().actions == []  # done: nothing more to do until the spec is valid
    assert c.replicas(v2) == 3
    c.env_errors = ()
    c.run_until(lambda: c.replicas(v2) == 0)
    assert c.status["message"] == "RolloutAborted: aborted by carol"


def test_abort_while_invalid_with_dynamic_stable_scale_waits_for_stable_pods() -> None:
    c = Cluster(rollout_spec(dynamicStableScale=True, steps=[{"setWeight": 80}, {"pause": {}}]))
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    c.run_until(lambda: c.canary_weight() == 80)
    assert c.replicas(v1) == 1
    c.env_errors = ("Service shop-canary not found",)
    c.delay_for[v1] = 10
    c.record("abort")
    c.reconcile()
    t = c.t
    d = c.reconcile()
    assert d.actions == [ScaleReplicaSet(v1, 5), SetTraffic(v1, v2, 80)]  # stable first
    t0 = c.run_until(lambda: c.canary_weight() == 0)
    assert t0 == t + 10 and c.traffic == SetTraffic(v1, v1, 0)
    assert c.replicas(v2) == 4  # no scale-down while the spec is invalid


def test_environment_errors_are_invalid_spec_too() -> None:
    c = Cluster(rollout_spec())
    c.deploy_stable()
    c.env_errors = ("Service shop-canary not found",)
    d = c.reconcile()
    assert d.actions == [] and c.status["phase"] == "Degraded"
    assert c.condition("InvalidSpec")["message"] == "Service shop-canary not found"  # type: ignore[index]
    c.reconcile()
    c.env_errors = ("Service shop-canary not found", "route primary not found in VirtualService shop")
    c.reconcile()
    assert len(c.events_with("InvalidSpec")) == 2  # a new problem is a new warning
    c.env_errors = ()
    c.reconcile()
    assert c.condition("InvalidSpec") is None and c.status["phase"] == "Healthy"


def test_unresolvable_template_is_invalid() -> None:
    c = Cluster(rollout_spec())
    c.deploy_stable()
    spec, _ = parse_spec(c.spec)
    d = decide(RolloutInput("ns", "shop", 2, spec, (), c.st()), Observations(None), c.now)
    assert d.actions == [] and d.status.condition("InvalidSpec") is not None


def test_invalid_spec_on_creation_creates_nothing() -> None:
    bad = rollout_spec()
    bad["strategy"]["canary"]["trafficRouting"] = {}
    c = Cluster(bad)
    c.run(5)
    assert c.rss == {} and c.traffic is None
    assert len(c.events_with("InvalidSpec")) == 1
    assert "spec.strategy.canary.trafficRouting names no traffic router" in c.status["message"]


# --- lost or broken status --------------------------------------------------------------


def test_lost_status_adopts_the_replicaset_serving_users_as_stable() -> None:
    c, v1, v2 = _at_step_2(pod_delay=0)
    c.run_until(lambda: c.canary_weight() == 50)
    c.status = {}  # e.g. the Rollout was deleted with --cascade=orphan and re-applied
    d = c.reconcile()
    traffic = next(a for a in d.actions if isinstance(a, SetTraffic))
    assert traffic.stable_hash == v1 and traffic.canary_hash == v2
    assert c.status["stableRS"] == v1 and c.status["currentStepIndex"] >= 1
    assert c.replicas(v1) == 5
    c.run(1000, dt=10)
    assert c.status["stableRS"] == v1 and c.canary_weight() == 50  # at the pause {} again


def test_lost_status_after_promotion_keeps_the_promoted_revision() -> None:
    c = Cluster(rollout_spec(scaleDownDelaySeconds=0, steps=[]))
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    c.run_until(lambda: c.replicas(v1) == 0)
    c.status = {}
    d = c.reconcile()
    assert next(a for a in d.actions if isinstance(a, SetTraffic)) == SetTraffic(v2, v2, 0)
    assert c.status["phase"] == "Healthy"


def test_status_naming_a_deleted_stable_replicaset_recovers() -> None:
    c, v1, v2 = _at_step_2()
    c.run_until(lambda: c.canary_weight() == 50)
    c.status["stableRS"] = "deadbeef00"
    c.reconcile()
    assert c.status["stableRS"] == v1 and c.status["currentPodHash"] == v2


def test_all_replicasets_gone_redeploys_the_template_directly() -> None:
    c, _, v2 = _at_step_2()
    c.rss.clear()
    d = c.reconcile()
    assert d.actions[0] == CreateReplicaSet(v2, 5, 1)
    assert c.status["stableRS"] == v2


GARBAGE: list[Any] = [None, "x", "", -1, 0, 7, 10**12, 1.5, True, [], [1, "a"], {}, {"a": 1},
                      [{"reason": 1, "startTime": 5}], {"type": None}, "2024-99-99T00:00:00Z"]
STATUS_KEYS = ["observedGeneration", "phase", "message", "currentPodHash", "stableRS",
               "currentStepIndex", "currentStepHash", "pauseConditions", "controllerPause", "abort",
               "abortedAt", "abortedBy", "abortReason", "promoteFull", "canary", "conditions",
               "replicas", "selector", "pendingAction", "lastAction", "scaleDownAt", "progressAt",
               "userPause", "restartedAt", "unknownField"]


def test_malformed_status_never_raises() -> None:
    rng = random.Random(1234)
    base = Cluster(rollout_spec())
    base.deploy_stable()
    base.set_image("shop:2")
    base.run_until(lambda: base.status["currentStepIndex"] == 1)
    extra_values: dict[str, list[Any]] = {
        "canary": [{"weights": {"canary": {"weight": "50"}, "stable": []}}, {"weights": 3},
                   {"weights": {"canary": {"weight": 500}}}, {"weights": {"canary": {"weight": -5}}}],
        "pauseConditions": [[{"reason": "CanaryPauseStep", "startTime": "yesterday"}], ["x", None]],
        "conditions": [[{"type": "Paused", "status": "True", "lastTransitionTime": 3}], [None, 5],
                       [{"type": "InvalidSpec"}, {"type": "InvalidSpec"}]],
        "scaleDownAt": [{h("shop:1"): "soon"}, {"x": 5}],
        "pendingAction": [{"action": "promote", "full": "yes", "user": ["a"]},
                          {"action": ["abort"]}, {"action": "retry", "id": 5}],
        "currentStepIndex": [-3, 999],
    }
    for _ in range(400):
        status = copy.deepcopy(base.status)
        for key in rng.sample(STATUS_KEYS, rng.randint(1, 6)):
            status[key] = rng.choice(GARBAGE + extra_values.get(key, []))
        c = Cluster(rollout_spec(), pod_delay=0)
        c.rss, c.t, c.traffic = copy.deepcopy(base.rss), base.t, base.traffic
        c.status = status
        c.run(3)  # includes the contract checks of every decision
    # a hand-edited weight of 500 is read as 100, never 500
    assert RolloutStatus.from_dict({"canary": {"weights": {"canary": {"weight": 500}}}}).canary_weight == 100


def test_unknown_status_keys_survive_a_reconcile() -> None:
    c = Cluster(rollout_spec())
    c.deploy_stable()
    c.status["analysisRuns"] = {"current": "run-1"}
    c.status["canary"]["currentStepAnalysisRunStatus"] = {"name": "run-1"}
    c.reconcile()
    assert c.status["analysisRuns"] == {"current": "run-1"}
    assert c.status["canary"]["currentStepAnalysisRunStatus"] == {"name": "run-1"}


# --- dynamicStableScale -----------------------------------------------------------------


def test_dynamic_stable_scale_shrinks_stable_after_traffic_moved() -> None:
    c = Cluster(rollout_spec(dynamicStableScale=True,
                             steps=[{"setWeight": 20}, {"setWeight": 50}, {"pause": {}}]), pod_delay=1)
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    c.run_until(lambda: c.canary_weight() == 20)
    d = c.last
    assert d is not None
    i = d.actions.index(SetTraffic(v1, v2, 20))
    assert d.actions.index(ScaleReplicaSet(v1, 4)) > i  # stable keeps 4 = ceil(5 * 80 %)
    c.run_until(lambda: c.canary_weight() == 50)
    assert c.replicas(v1) == 3 and c.replicas(v2) == 3  # ceil(2.5) each: never under capacity
    assert c.status["phase"] == "Paused"

    # abort: stable scales back up first; traffic follows as its pods come back
    c.delay_for[v1] = 5
    c.record("abort")
    t_abort = c.t
    d = c.reconcile()
    assert d.actions[0] == ScaleReplicaSet(v1, 5)
    assert c.canary_weight() == 40  # 3 of 5 stable pods carry 60 %
    assert "still on the canary" in c.status["message"] and c.status["phase"] == "Degraded"
    assert d.requeue_after is not None and d.requeue_after <= 5
    assert c.traffic == SetTraffic(v1, v2, 40)  # the canary Service keeps the canary pods...
    t0 = c.run_until(lambda: c.canary_weight() == 0)
    assert t0 == t_abort + 5
    assert c.traffic == SetTraffic(v1, v1, 0)  # ...until no traffic is left on them (Argo)
    assert c.replicas(v2) == 3  # the canary kept its pods while it carried traffic...
    assert c.run_until(lambda: c.replicas(v2) == 0) == t0 + 30  # ...and leaves 30 s after
    assert [w for _, w in c.weights] == [0, 20, 50, 40, 0]


def test_dynamic_stable_scale_never_holds_traffic_on_canary_pods_that_are_gone() -> None:
    # A controller killed after it moved the traffic on and scaled the old canary away,
    # but before it wrote status (or the canary's pods failing): status still says 20 %
    # on a canary with no pod. A restart of the steps (or an abort) must not hold that
    # share on it while the stable scales up: 4 stable pods serve better than none.
    c = Cluster(rollout_spec(dynamicStableScale=True, steps=[{"setWeight": 20}, {"pause": {}}]))
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    c.run_until(lambda: c.canary_weight() == 20 and c.replicas(v1) == 4)
    c.rss[v2].pods = []  # scaled away by the killed controller
    c.rss[h("shop:3")] = FakeRS(h("shop:3"), 4, [0.0])  # created by it, 1 pod available
    c.set_image("shop:3")
    c.reconcile()
    assert c.traffic is not None
    assert not (c.traffic.canary_hash == v2 and c.traffic.canary_weight > 0), c.traffic
    # abort with the canary's pods gone: the stable's available pods take the share
    c2 = Cluster(rollout_spec(dynamicStableScale=True, steps=[{"setWeight": 80}, {"pause": {}}]))
    w1 = c2.deploy_stable()
    c2.set_image("shop:2")
    w2 = h("shop:2")
    c2.run_until(lambda: c2.canary_weight() == 80 and c2.replicas(w1) == 1)
    c2.delay_for[w1] = NEVER  # the stable's new pods do not come
    c2.rss[w2].pods = [NEVER] * 4  # the canary's pods crash: none available
    c2.record("abort")
    c2.reconcile()
    assert c2.traffic == SetTraffic(w1, w1, 0)
    # while both sides have some pods, they share the traffic in proportion
    c3 = Cluster(rollout_spec(dynamicStableScale=True, steps=[{"setWeight": 80}, {"pause": {}}]))
    u1 = c3.deploy_stable()
    c3.set_image("shop:2")
    u2 = h("shop:2")
    c3.run_until(lambda: c3.canary_weight() == 80 and c3.replicas(u1) == 1)
    c3.delay_for[u1] = NEVER
    c3.rss[u2].pods = [0.0, NEVER, NEVER, NEVER]  # 1 canary pod left, 1 stable pod
    c3.record("abort")
    c3.reconcile()
    assert c3.traffic == SetTraffic(u1, u2, 50)


def test_promote_full_after_an_abort_keeps_draining_the_superseded_canary() -> None:
    # DSS canary v2 at 80 %; a new template v3 restarts the steps, so v2 drains as the
    # stable's pods come back; an abort meanwhile keeps draining v2. Lifting the abort
    # with promote --full must go on draining v2: its share never jumps to v3, which has
    # no pod yet.
    c = Cluster(rollout_spec(dynamicStableScale=True, steps=[{"setWeight": 80}, {"pause": {}}]))
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    c.run_until(lambda: c.canary_weight() == 80 and c.replicas(v1) == 1)
    c.delay_for[v1] = 20  # the stable's pods come back slowly
    c.set_image("shop:3")
    c.reconcile()
    assert c.traffic == SetTraffic(v1, v2, 80) and c.status.get("draining") is True
    c.record("abort")
    c.reconcile()
    assert c.traffic == SetTraffic(v1, v2, 80)
    c.record("promote", full=True)
    c.reconcile()
    assert c.traffic == SetTraffic(v1, v2, 80), c.traffic  # still on v2's pods
    c.run_until(lambda: c.status.get("stableRS") == h("shop:3"), limit=300)


def test_dynamic_stable_scale_promotion() -> None:
    c = Cluster(rollout_spec(dynamicStableScale=True, scaleDownDelaySeconds=10,
                             steps=[{"setWeight": 80}]))
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    t = c.run_until(lambda: c.status["stableRS"] == v2)
    assert c.replicas(v2) == 5 and c.replicas(v1) == 1
    assert c.run_until(lambda: c.replicas(v1) == 0) == t + 10


def test_dynamic_stable_scale_lowering_the_weight_waits_for_stable_pods() -> None:
    c = Cluster(rollout_spec(dynamicStableScale=True, steps=[
        {"setWeight": 60}, {"pause": {"duration": 5}}, {"setWeight": 20}, {"pause": {}}]), pod_delay=0)
    v1 = c.deploy_stable()
    v2 = h("shop:2")
    c.delay_for[v1] = 4
    c.set_image("shop:2")
    c.run_until(lambda: c.canary_weight() == 60)
    assert c.replicas(v1) == 2  # ceil(5 * 40 %)
    t_pause_end = c.run_until(lambda: c.status["currentStepIndex"] == 2)
    # going back to 20 % needs 4 stable pods first
    assert c.replicas(v1) == 4 and c.canary_weight() == 60
    assert "waiting for stable pods" in c.status["message"]
    t20 = c.run_until(lambda: c.canary_weight() == 20)
    assert t20 == t_pause_end + 4
    assert c.replicas(v2) == 3  # canary shrinks only after traffic left: ceil(5 * 20 %) = 1 next
    c.reconcile()
    assert c.replicas(v2) == 1 and c.replicas(v1) == 4


# --- history ----------------------------------------------------------------------------


def test_revision_history_limit_prunes_old_idle_replicasets() -> None:
    c = Cluster(rollout_spec(steps=[], scaleDownDelaySeconds=0))
    c.edit(lambda s: s.update(revisionHistoryLimit=2))
    hashes = [c.deploy_stable()]
    for i in range(2, 7):
        c.set_image(f"shop:{i}")
        c.run_until(lambda i=i: c.status["stableRS"] == h(f"shop:{i}")  # type: ignore[misc]
                    and c.replicas(hashes[-1]) == 0)
        hashes.append(h(f"shop:{i}"))
    c.run(3)
    # the stable revision plus the two most recent idle ones
    assert set(c.rss) == set(hashes[-3:])
    deleted = [a.hash for _, a in c.log if isinstance(a, DeleteReplicaSet)]
    assert deleted == hashes[:3]  # oldest first
    assert [c.rss[k].revision for k in hashes[-3:]] == [4, 5, 6]


def test_superseded_canaries_scale_down_and_are_kept_within_history() -> None:
    c = Cluster(rollout_spec())
    v1 = c.deploy_stable()
    for i in range(2, 5):
        c.set_image(f"shop:{i}")
        c.run(3)
    c.run(5)
    assert c.replicas(v1) == 5 and c.replicas(h("shop:2")) == c.replicas(h("shop:3")) == 0
    assert c.status["currentPodHash"] == h("shop:4")
    assert len(c.rss) == 4


# --- small pieces -----------------------------------------------------------------------


@pytest.mark.parametrize(("replicas", "weight", "pods"), [
    (5, 20, 1), (5, 50, 3), (5, 80, 4), (5, 0, 0), (5, 100, 5), (3, 33, 1), (3, 34, 2),
    (10, 1, 1), (0, 50, 0), (1, 1, 1), (7, 100, 7)])
def test_replicas_for_weight_rounds_up(replicas: int, weight: int, pods: int) -> None:
    assert replicas_for_weight(replicas, weight) == pods


def test_template_hash_is_stable_and_order_independent() -> None:
    a = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"containers": []}}
    b = {"spec": {"containers": []}, "metadata": {"labels": {"b": "2", "a": "1"}}}
    assert template_hash(a) == template_hash(b)
    assert len(template_hash(a)) == 10
    assert template_hash(template("x:1")) != template_hash(template("x:2"))


def test_zero_replicas_rollout() -> None:
    c = Cluster(rollout_spec(replicas=0, steps=[{"setWeight": 50}]))
    c.run_until(lambda: c.status["phase"] == "Healthy")
    c.set_image("shop:2")
    c.run_until(lambda: c.status["stableRS"] == h("shop:2"))


def test_requeue_for_scale_down_deadline() -> None:
    c = Cluster(rollout_spec(steps=[]))
    c.deploy_stable()
    c.set_image("shop:2")
    c.run_until(lambda: c.status["stableRS"] == h("shop:2"))
    assert c.last is not None and c.last.requeue_after == 30


def _steady(c: Cluster, rounds: int = 10) -> None:
    """Reconciling again changes nothing: no event, no status write, no action but traffic."""
    c.reconcile()
    before, n_events = copy.deepcopy(c.status), len(c.events)
    for _ in range(rounds):
        c.advance(7)
        d = c.reconcile()
        assert all(isinstance(a, SetTraffic) for a in d.actions), d.actions
    assert c.events[n_events:] == []
    assert c.status == before


def test_steady_states_do_not_churn() -> None:
    c = Cluster(rollout_spec())
    c.deploy_stable()
    _steady(c)  # Healthy
    c.set_image("shop:2")
    c.run_until(lambda: c.status["currentStepIndex"] == 1)
    c.record("pause")
    _steady(c)  # paused by a user during a timed pause
    c.record("resume")
    c.run_until(lambda: c.status["currentStepIndex"] == 3)
    _steady(c)  # pause {}
    c.edit(lambda s: s.update(paused=True))
    _steady(c)  # paused by spec
    c.edit(lambda s: s.update(paused=False))
    c.record("abort")
    c.run(40)
    _steady(c)  # aborted, canary scaled down
    c.env_errors = ("VirtualService shop not found",)
    _steady(c)  # invalid
    c.env_errors = ()
    c.record("retry")
    c.delay_for[h("shop:2")] = NEVER
    c.run(700)
    assert c.status["phase"] == "Degraded"
    _steady(c)  # progress deadline exceeded


def test_timed_pause_status_does_not_change_while_waiting() -> None:
    c = Cluster(rollout_spec(steps=[{"setWeight": 10}, {"pause": {"duration": "5m"}}]))
    c.deploy_stable()
    c.set_image("shop:2")
    t_pause = c.run_until(lambda: c.status["phase"] == "Paused")
    before = copy.deepcopy(c.status)
    for _ in range(10):
        c.advance(20)
        assert c.reconcile().requeue_after == pytest.approx(t_pause + 300 - c.t)
        assert c.status == before


def test_new_template_after_abort_starts_a_fresh_canary() -> None:
    c, v1, v2 = _at_step_2()
    c.run_until(lambda: c.canary_weight() == 50)
    c.record("abort")
    c.reconcile()
    c.set_image("shop:3")
    v3 = h("shop:3")
    d = c.reconcile()
    st = c.st()
    assert not st.abort and st.current_pod_hash == v3 and st.current_step_index == 0
    assert st.phase == "Progressing" and ScaleReplicaSet(v2, 0) in d.actions
    c.run_until(lambda: c.canary_weight() == 20)
    assert c.traffic == SetTraffic(v1, v3, 20)


def test_dynamic_stable_scale_template_change_scales_stable_back_up() -> None:
    c = Cluster(rollout_spec(dynamicStableScale=True, steps=[{"setWeight": 60}, {"pause": {}}]))
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    c.run_until(lambda: c.canary_weight() == 60)
    assert c.replicas(v1) == 2
    c.delay_for[v1] = 10
    c.set_image("shop:3")
    v2, v3 = h("shop:2"), h("shop:3")
    t = c.t
    d = c.reconcile()
    # The stable (2 of 5 pods) is scaled up first; the old canary keeps its 60 % and its
    # pods until the stable can carry them (Argo issue 3020), then the new steps start.
    assert d.actions == [ScaleReplicaSet(v1, 5), SetTraffic(v1, v2, 60)]
    st = c.st()
    assert st.current_pod_hash == v3 and st.canary_route_hash == v2 and st.draining
    assert c.status["canary"]["weights"]["canary"]["podTemplateHash"] == v2
    assert "60% still on" in st.message and st.phase == "Progressing"
    t0 = c.run_until(lambda: c.traffic is not None and c.traffic.canary_hash == v3)
    assert t0 == t + 10 and c.traffic == SetTraffic(v1, v3, 0)
    assert c.replicas(v2) == 0 and CreateReplicaSet(v3, 3, 3) in c.actions_since(t0)
    assert [w for _, w in c.weights][-2:] == [60, 0]
    assert not c.st().draining and c.st().canary_route_hash is None
    c.run_until(lambda: c.canary_weight() == 60)
    assert c.traffic == SetTraffic(v1, v3, 60)


@pytest.mark.parametrize("change", ["template", "steps", "undo", "retry"])
def test_restart_during_a_dynamic_stable_scale_canary_moves_traffic_only_to_available_pods(
        change: str) -> None:
    """Issue 11 item 1: at 80 % canary the stable has 1 of 5 pods; a restart of the steps
    must not send everything to it at once, nor scale away the pods carrying traffic (the
    contract checks in Cluster._check assert both at every decision)."""
    c = Cluster(rollout_spec(dynamicStableScale=True, steps=[{"setWeight": 80}, {"pause": {}}]))
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    c.run_until(lambda: c.canary_weight() == 80)
    assert c.replicas(v1) == 1 and c.replicas(v2) == 4
    c.delay_for[v1] = 1  # one stable pod comes back per second
    if change == "retry":
        c.rss[v1].pods = [0.0]
        c.record("abort")
        c.reconcile()  # the abort drains as far as the stable allows (80 % still canary)
        c.record("retry")
    elif change == "template":
        c.set_image("shop:3")
    elif change == "steps":
        c.edit(lambda s: s["strategy"]["canary"].update(steps=[{"pause": {}}, {"setWeight": 80}]))
    else:
        c.set_image("shop:1")
    c.reconcile()
    assert c.replicas(v1) == 5 and c.canary_weight() == 80  # nothing moved before pods exist
    if change == "retry":
        # drained as the stable came back, and step 0 (setWeight 80) put it back on the
        # canary, whose pods never left: traffic never moved at all
        c.run_until(lambda: c.status["currentStepIndex"] == 1, limit=30)
        assert [w for _, w in c.weights][-1] == 80 and 0 not in [w for _, w in c.weights][1:]
        return
    c.run_until(lambda: c.canary_weight() == 0, limit=30)
    weights = [w for _, w in c.weights]
    assert weights[-2:] == [80, 0]  # back in one move, once all 5 stable pods were ready
    if change == "undo":
        c.run_until(lambda: c.status["phase"] == "Healthy", limit=60)
    else:
        assert c.status["currentStepIndex"] == 0 and not c.st().draining


def test_rollback_to_the_previous_revision_within_scale_down_delay_runs_the_steps() -> None:
    c = Cluster(rollout_spec(steps=[{"setWeight": 20}, {"pause": {}}]))
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    c.run_until(lambda: c.status["currentStepIndex"] == 1)
    c.record("promote")
    c.run_until(lambda: c.status["stableRS"] == h("shop:2"))
    c.set_image("shop:1")  # undo, while v1 still has its pods
    d = c.reconcile()
    assert not any(isinstance(a, CreateReplicaSet) for a in d.actions)
    assert c.traffic == SetTraffic(h("shop:2"), v1, 20) and c.status["phase"] == "Paused"
    assert v1 not in c.status.get("scaleDownAt", {})
    assert c.replicas(v1) == 1  # trimmed to its share, after the traffic change


def test_conditions_keep_transition_time_and_position() -> None:
    st = RolloutStatus()
    st.set_condition("Available", True, "A", "m1", T0)
    st.set_condition("Progressing", True, "P", "p", T0)
    later = T0 + timedelta(seconds=60)
    st.set_condition("Available", True, "A", "m2", later)  # same status: transition time kept
    cond = st.condition("Available")
    assert cond is not None
    assert cond["lastTransitionTime"] == "2024-05-01T12:00:00Z"
    assert cond["lastUpdateTime"] == "2024-05-01T12:01:00Z"
    assert [c["type"] for c in st.conditions] == ["Available", "Progressing"]
    st.set_condition("Available", False, "B", "m3", later)
    assert st.condition("Available")["lastTransitionTime"] == "2024-05-01T12:01:00Z"  # type: ignore[index]
    same = copy.deepcopy(st.conditions)
    st.set_condition("Available", False, "B", "m3", later + timedelta(seconds=5))
    assert st.conditions == same  # nothing changed: nothing rewritten
    st.conditions.append({"type": "Available", "status": "True"})  # a hand-made duplicate
    st.set_condition("Available", True, "A", "ok", later)
    assert [c["type"] for c in st.conditions] == ["Available", "Progressing"]


# --- analysis in the steps (issue 10 item 6, issue 11 items 18 and 19) -------------------

ANALYSIS = {"templates": [{"templateName": "t"}]}


def _analysis_cluster(steps: list[Any], background: bool = False, **canary: Any) -> tuple[Cluster, str, str]:
    if background:
        canary["analysis"] = dict(ANALYSIS)
    c = Cluster(rollout_spec(steps=steps, **canary))
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    return c, v1, h("shop:2")


def _set_run(c: Cluster, name: str, phase: str, message: str = "") -> None:
    c.runs[name] = AnalysisRunObs(name, phase, message, c.runs[name].terminated)


def _run_named(c: Cluster, suffix: str) -> str:
    return next(r.name for r in c.created_runs if r.name.endswith(suffix))


def test_runs_started_with_a_new_revision_measure_the_new_revision() -> None:
    """A background run and a step-0 analysis are created in the very decision that starts
    the revision: they name its hash, not the stable one the status named before."""
    c, v1, v2 = _analysis_cluster([{"analysis": ANALYSIS}, {"setWeight": 50}], background=True)
    d = c.reconcile()
    created = [a for a in d.actions if isinstance(a, CreateAnalysisRun)]
    assert sorted(a.kind for a in created) == ["background", "step"]
    assert all(a.canary_hash == v2 and a.stable_hash == v1 for a in created), created
    assert c.status["currentPodHash"] == v2


def test_inconclusive_step_analysis_uses_argos_fields_and_promote_skips_it() -> None:
    c, _v1, _v2 = _analysis_cluster([{"setWeight": 20}, {"analysis": ANALYSIS}, {"setWeight": 50}])
    c.run_until(lambda: c.status["currentStepIndex"] == 1)
    name = _run_named(c, "-step1")
    _set_run(c, name, "Inconclusive", "metric m inconclusive")
    c.reconcile()
    st = c.st()
    assert st.phase == "Paused" and st.message == "InconclusiveAnalysisRun"
    assert [p["reason"] for p in st.pause_conditions] == ["InconclusiveAnalysisRun"]
    assert st.controller_pause
    cond = st.condition("Paused")
    assert cond is not None and cond["reason"] == "InconclusiveAnalysisRun"
    assert name in cond["message"] and "promote skips the analysis step" in cond["message"]
    before = copy.deepcopy(c.status)
    c.advance(30)
    c.reconcile()
    assert c.status == before  # no churn while waiting
    c.record("promote")
    c.run_until(lambda: c.canary_weight() == 50)
    assert c.status["currentStepIndex"] == 3 and not c.st().pause_conditions


def test_promote_replaces_an_inconclusive_background_run_without_skipping_a_step() -> None:
    c, _v1, v2 = _analysis_cluster([{"setWeight": 20}, {"setWeight": 40}, {"pause": {}}],
                                  background=True)
    c.run_until(lambda: c.canary_weight() == 20)
    c.delay_for[v2] = NEVER  # setWeight 40 waits for pods: the step must not be skipped
    bg = _run_named(c, "-bg")
    _set_run(c, bg, "Inconclusive", "metric m inconclusive")
    c.reconcile()
    st = c.st()
    assert st.phase == "Paused" and st.message == "InconclusiveAnalysisRun"
    assert [p["reason"] for p in st.pause_conditions] == ["InconclusiveAnalysisRun"]
    assert st.controller_pause and st.current_step_index == 1
    cond = st.condition("Paused")
    assert cond is not None and cond["reason"] == "InconclusiveAnalysisRun"
    assert "promote starts a new background analysis" in cond["message"]
    c.record("promote", "bob")
    d = c.reconcile()
    new = [a for a in d.actions if isinstance(a, CreateAnalysisRun)]
    assert [a.name for a in new] == [bg + "1"] and new[0].kind == "background"
    st = c.st()
    assert st.current_step_index == 1 and st.phase == "Progressing" and not st.pause_conditions
    assert "waiting for canary pods" in st.message
    assert any("a new background analysis starts" in e.message for e in d.events)
    # the new run decides from now on; the old verdict is history
    c.rss[v2].pods = [c.t] * 2
    c.run_until(lambda: c.status["currentStepIndex"] == 2)
    _set_run(c, bg + "1", "Failed", "error rate too high")
    c.run_until(lambda: c.status.get("abort") is True)
    assert bg + "1" in c.status["abortReason"]


def test_promote_full_ends_an_inconclusive_background_pause() -> None:
    c, _v1, v2 = _analysis_cluster([{"setWeight": 20}, {"pause": {}}], background=True)
    c.run_until(lambda: c.canary_weight() == 20)
    _set_run(c, _run_named(c, "-bg"), "Inconclusive")
    c.reconcile()
    assert c.status["message"] == "InconclusiveAnalysisRun"
    c.record("promote", full=True)
    c.run_until(lambda: c.status["phase"] == "Healthy")
    assert c.status["stableRS"] == v2
    assert len(c.created_runs) == 1  # no new analysis for a full promotion


def test_promote_full_on_an_aborted_rollout_goes_to_100_percent_without_analysis() -> None:
    c, _v1, v2 = _analysis_cluster([{"setWeight": 20}, {"analysis": ANALYSIS}, {"setWeight": 60}],
                                  background=True)
    c.run_until(lambda: c.status["currentStepIndex"] == 1)
    _set_run(c, _run_named(c, "-step1"), "Failed", "error rate too high")
    c.run_until(lambda: c.replicas(v2) == 0)  # aborted, the canary scaled down
    assert c.status["phase"] == "Degraded"
    runs = len(c.created_runs)
    c.record("promote", "dave", full=True)
    d = c.reconcile()
    assert c.status["lastAction"]["result"] == "Applied" and not c.st().abort
    assert any(e.reason == "RolloutPromotedFull" for e in d.events)
    c.run_until(lambda: c.status["phase"] == "Healthy")
    assert c.status["stableRS"] == v2 and c.replicas(v2) == 5
    assert c.traffic == SetTraffic(v2, v2, 0)
    assert len(c.created_runs) == runs  # no new analysis


def test_time_in_an_analysis_step_does_not_count_towards_the_progress_deadline() -> None:
    c, _v1, v2 = _analysis_cluster([{"setWeight": 20}, {"analysis": ANALYSIS}, {"setWeight": 50},
                                   {"setWeight": 80}], progressDeadlineSeconds=60)
    c.edit(lambda s: s.update(progressDeadlineSeconds=60, progressDeadlineAbort=True))
    c.run_until(lambda: c.status["currentStepIndex"] == 1)
    c.run(600)  # a 10-minute analysis
    st = c.st()
    assert st.phase == "Progressing" and not st.abort, st.message
    assert st.condition("Progressing")["reason"] == "RolloutUpdated"  # type: ignore[index]
    assert not c.events_with("ProgressDeadlineExceeded")
    _set_run(c, _run_named(c, "-step1"), "Successful")
    c.run_until(lambda: c.canary_weight() == 50)
    # the clock runs again outside the analysis: pods that never come up still time out
    c.delay_for[v2] = NEVER
    c.rss[v2].pods = sorted(c.rss[v2].pods)[:3]
    t0 = c.t
    assert c.run_until(lambda: c.status.get("abort") is True) <= t0 + 61


def test_runs_that_are_no_longer_current_are_terminated() -> None:
    c, _v1, _v2 = _analysis_cluster([{"setWeight": 20}, {"analysis": ANALYSIS}, {"pause": {}}],
                                  background=True)
    c.run_until(lambda: c.status["currentStepIndex"] == 1)
    bg2, step2 = _run_named(c, "-bg"), _run_named(c, "-step1")
    # a user pause keeps both runs measuring (only the steps wait)
    c.record("pause")
    d = c.reconcile()
    assert not any(isinstance(a, TerminateAnalysisRun) for a in d.actions)
    c.record("resume")
    c.reconcile()
    # a new revision supersedes both: they stop measuring in the same decision
    c.set_image("shop:3")
    d = c.reconcile()
    assert {a.name for a in d.actions if isinstance(a, TerminateAnalysisRun)} == {bg2, step2}
    bg3 = next(a.name for a in d.actions if isinstance(a, CreateAnalysisRun))
    assert h("shop:3") in bg3 and c.runs[bg2].terminated
    # back to the stable template: the rollout's last run stops as well
    c.set_image("shop:1")
    d = c.reconcile()
    assert [a for a in d.actions if isinstance(a, TerminateAnalysisRun)] == [TerminateAnalysisRun(bg3)]
    assert c.status["phase"] == "Healthy"


def test_changed_steps_never_reuse_an_old_verdict() -> None:
    c, _v1, _v2 = _analysis_cluster([{"setWeight": 20}, {"analysis": ANALYSIS}, {"pause": {}}])
    c.run_until(lambda: c.status["currentStepIndex"] == 1)
    old = _run_named(c, "-step1")
    _set_run(c, old, "Successful")
    c.run_until(lambda: c.status["currentStepIndex"] == 2)
    c.edit(lambda s: s["strategy"]["canary"].update(
        steps=[{"setWeight": 10}, {"analysis": ANALYSIS}, {"pause": {}}]))
    c.run_until(lambda: c.status["currentStepIndex"] == 1)
    new = [r.name for r in c.created_runs if r.name.endswith("-step1")]
    assert len(new) == 2 and new[1] != old and c.runs[new[1]].phase == "Running"

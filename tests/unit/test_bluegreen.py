"""Unit tests of the blue-green strategy (``decide`` on ``strategy.blueGreen``), driven through
a small simulated cluster: ReplicaSets are pods with the second each becomes available, the
active and preview Services are the revision their selector names, status is stored as
JSON between reconciles (so every reconcile is also a controller restart).

Every decision is checked against the contract: the Services are pointed exactly where
``status.blueGreen`` says, the active Service never switches to a revision that is not
fully available (on abort: never to one with fewer available pods than it leaves), the
pods users are served are never scaled away, pods come before the switch and go after it,
and a blue-green status carries no canary weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from rollouts.api.actions import check_action, new_action
from rollouts.api.spec import parse_spec
from rollouts.api.status import RolloutStatus
from rollouts.controller.decide import (
    AnalysisRunObs,
    ClusterAction,
    CreateAnalysisRun,
    CreateReplicaSet,
    Decision,
    DeleteReplicaSet,
    Observations,
    PointService,
    RolloutInput,
    ScaleReplicaSet,
    SetPodMetadata,
    SetTraffic,
    decide,
)
from tests.unit.cluster_harness import SimCluster, h, template

ACTIVE, PREVIEW = "shop-active", "shop-preview"


V1, V2, V3 = h("shop:1"), h("shop:2"), h("shop:3")


def bg_spec(image: str = "shop:1", replicas: int = 3, **bg: Any) -> dict[str, Any]:
    strategy: dict[str, Any] = {"activeService": ACTIVE, "previewService": PREVIEW,
                                "scaleDownDelaySeconds": 10}
    strategy.update(bg)
    return {"replicas": replicas, "selector": {"matchLabels": {"app": "shop"}},
            "template": template(image), "strategy": {"blueGreen": strategy}}


PRE = {"templates": [{"templateName": "smoke"}]}


class Cluster(SimCluster):
    """The blue-green simulated cluster: the two Services are the revision each selects."""

    run_limit = 300.0

    def __init__(self, spec: dict[str, Any], pod_delay: float = 2.0) -> None:
        super().__init__(spec, pod_delay)
        self.services: dict[str, str | None] = {ACTIVE: None, PREVIEW: None}
        self.active_history: list[tuple[float, str | None]] = []

    def record(self, action: str, full: bool = False) -> str | None:
        """What the CLI does: check, then record the intent; the reason when refused."""
        spec, _ = parse_spec(self.spec)
        act = new_action(action, "alice", self.now, full)
        why = check_action(spec, self.st(), act)
        if why is None:
            self.status["pendingAction"] = act.to_dict()
        return why

    def _apply_other(self, a: ClusterAction) -> None:
        if isinstance(a, PointService):
            if a.service == ACTIVE and self.services[ACTIVE] != a.pod_hash:
                self.active_history.append((self.t, a.pod_hash))
            self.services[a.service] = a.pod_hash
        elif isinstance(a, SetPodMetadata):
            from rollouts.controller.pod_metadata import canonical_metadata
            if a.hash in self.rss:
                self.rss[a.hash].ephemeral = canonical_metadata(a.labels, a.annotations)

    def _check(self, ro: RolloutInput, obs: Observations, d: Decision) -> None:
        stored = json.loads(json.dumps(d.status.to_dict()))
        assert RolloutStatus.from_dict(stored) == d.status, "a restart must read back the same status"
        assert not any(isinstance(a, SetTraffic) for a in d.actions), d.actions
        if ro.status.blue_green is not None or ro.spec is not None:
            assert "weights" not in (stored.get("canary") or {}), "blue-green writes no weights"
        rss = obs.replica_sets
        st = d.status
        points = [a for a in d.actions if isinstance(a, PointService)]
        invalid = ro.spec is None or obs.template is None or ro.spec_errors or obs.environment_errors
        if invalid and not ro.status.abort:
            assert d.actions == [], "an invalid rollout must not touch the cluster"
            return
        assert ro.spec is not None
        bg = st.blue_green
        assert bg is not None
        want = {k: v for k, v in ((ACTIVE, bg.active_selector), (PREVIEW, bg.preview_selector))
                if v is not None}
        if not (ro.spec_errors or obs.environment_errors):
            assert {p.service: p.pod_hash for p in points} == want and len(points) == len(want), \
                "the Services are pointed exactly where status.blueGreen says"
        prev = ro.status.blue_green
        old_active = prev.active_selector if prev is not None else None
        if bg.active_selector is not None and bg.active_selector != old_active and old_active:
            new = bg.active_selector
            if st.abort:
                assert rss[new].available >= min(ro.spec.replicas, rss[old_active].available
                                                 if old_active in rss else 0), \
                    "an abort never moves users to fewer available pods"
            else:
                assert new in rss and rss[new].available >= ro.spec.replicas, \
                    "the active Service switches only to a fully available revision"
        if bg.active_selector is not None and bg.active_selector not in rss:
            assert old_active is None, "the active Service names a ReplicaSet that exists"
        first_point = min((i for i, a in enumerate(d.actions) if isinstance(a, PointService)),
                          default=len(d.actions))
        last_point = max((i for i, a in enumerate(d.actions) if isinstance(a, PointService)),
                         default=-1)
        for i, a in enumerate(d.actions):
            if isinstance(a, CreateReplicaSet):
                assert i < first_point
            elif isinstance(a, ScaleReplicaSet):
                up = a.replicas > rss[a.hash].replicas
                assert (i < first_point) if up else (i > last_point), d.actions
                if a.hash in (bg.active_selector, old_active, st.stable_rs):
                    assert a.replicas >= ro.spec.replicas or a.hash not in (
                        bg.active_selector, st.stable_rs), "users' pods are never scaled away"
            elif isinstance(a, DeleteReplicaSet):
                assert a.hash not in (st.stable_rs, st.current_pod_hash, bg.active_selector,
                                      bg.preview_selector)
            elif isinstance(a, CreateAnalysisRun):
                assert (a.canary_hash, a.stable_hash) == (st.current_pod_hash, st.stable_rs), a
                # a run never exists while the switch it measures could still fail
                assert i > last_point, d.actions

    # --- driving

    def deploy(self) -> None:
        self.run_until(lambda: self.status.get("phase") == "Healthy")

    def bg(self) -> dict[str, Any]:
        return dict(self.status.get("blueGreen") or {})

    def phase(self) -> str:
        return str(self.status.get("phase"))

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]

    def finish_run(self, kind: str, phase: str, message: str = "") -> str:
        name = next(r.name for r in self.created_runs[::-1] if r.kind == kind)
        self.runs[name] = AnalysisRunObs(name, phase, message)
        return name


# --- first deploy, a plain update, scale-down delay -------------------------------------


def test_first_deploy_points_both_services_once_available() -> None:
    c = Cluster(bg_spec())
    d = c.reconcile()
    assert d.actions[0] == CreateReplicaSet(V1, 3, 1)
    # the preview selects the new revision at once; the active waits for its pods
    assert c.services == {ACTIVE: None, PREVIEW: V1}
    assert c.phase() == "Progressing"
    c.deploy()
    assert c.services == {ACTIVE: V1, PREVIEW: V1}
    assert c.bg() == {"activeSelector": V1, "previewSelector": V1}
    assert c.status["stableRS"] == c.status["currentPodHash"] == V1
    assert "canary" not in c.status and "currentStepIndex" not in c.status
    assert c.status["selector"] == f"app=shop,rollouts-pod-template-hash={V1}"
    assert c.active_history == [(2.0, V1)]
    n = len(c.events)
    c.run(20)
    assert len(c.events) == n, "a steady rollout emits nothing"
    assert c.last is not None and c.last.requeue_after is None


def test_preview_gets_the_new_revision_while_active_stays_then_switches_and_old_scales_down() -> None:
    c = Cluster(bg_spec(), pod_delay=3)
    c.deploy()
    c.set_image("shop:2")
    c.reconcile()
    assert c.services == {ACTIVE: V1, PREVIEW: V2}
    assert c.replicas(V2) == 3 and c.replicas(V1) == 3
    assert c.bg() == {"activeSelector": V1, "previewSelector": V2}
    assert c.phase() == "Progressing"
    t = c.run_until(lambda: c.services[ACTIVE] == V2)
    assert c.rss[V2].available(t) == 3, "switched only once every new pod is available"
    assert c.status["stableRS"] == V2 and c.phase() == "Healthy"
    assert "SwitchService" in c.reasons()
    # the previous revision keeps its pods for scaleDownDelaySeconds (10 s), then goes
    down = c.run_until(lambda: c.replicas(V1) == 0)
    assert down - t == pytest.approx(10, abs=1)
    assert c.services == {ACTIVE: V2, PREVIEW: V2}


def test_pods_failing_never_get_users() -> None:
    c = Cluster(bg_spec(progressDeadlineSeconds=600))
    c.deploy()
    c.pod_delay = 10**9  # the new pods never become ready
    c.set_image("shop:2")
    c.run(120)
    assert c.services[ACTIVE] == V1 and c.phase() == "Progressing"
    assert "waiting for the new revision" in c.status["message"]


# --- pause, promote, auto-promotion -----------------------------------------------------


def test_auto_promotion_disabled_pauses_until_promote() -> None:
    c = Cluster(bg_spec(autoPromotionEnabled=False))
    c.deploy()
    c.set_image("shop:2")
    assert "no blue-green update is in progress" in str(c.record("promote"))
    c.reconcile()
    assert "nothing to promote yet" in str(c.record("promote"))
    c.run_until(lambda: c.phase() == "Paused")
    assert c.status["pauseConditions"][0]["reason"] == "BlueGreenPause"
    assert c.status["controllerPause"] is True
    c.run(60)
    assert c.services[ACTIVE] == V1 and c.phase() == "Paused", "no promotion without promote"
    assert c.record("promote") is None
    c.reconcile()
    assert c.services[ACTIVE] == V2 and c.status["stableRS"] == V2
    assert c.phase() == "Healthy" and "pauseConditions" not in c.status
    assert "RolloutPromoted" in c.reasons()


def test_auto_promotion_after_auto_promotion_seconds() -> None:
    c = Cluster(bg_spec(autoPromotionSeconds=20))
    c.deploy()
    c.set_image("shop:2")
    paused = c.run_until(lambda: c.phase() == "Paused")
    assert c.last is not None and c.last.requeue_after == pytest.approx(20, abs=1)
    switched = c.run_until(lambda: c.services[ACTIVE] == V2)
    assert switched - paused == pytest.approx(20, abs=1)
    assert c.status["stableRS"] == V2


def test_preview_replica_count_then_full_before_switch() -> None:
    c = Cluster(bg_spec(replicas=4, previewReplicaCount=1, autoPromotionEnabled=False))
    c.deploy()
    c.set_image("shop:2")
    c.run_until(lambda: c.phase() == "Paused")
    assert c.replicas(V2) == 1 and c.replicas(V1) == 4
    c.record("promote")
    c.reconcile()
    assert c.bg()["scaleUpPreviewCheckPoint"] is True
    assert c.replicas(V2) == 4 and c.services[ACTIVE] == V1, "scaled up first, switched after"
    t = c.run_until(lambda: c.services[ACTIVE] == V2)
    assert c.rss[V2].available(t) == 4
    assert "scaleUpPreviewCheckPoint" not in c.bg()


def test_preview_replica_count_above_replicas_is_rejected() -> None:
    c = Cluster(bg_spec(replicas=2, previewReplicaCount=3))
    d = c.reconcile()
    assert d.actions == []
    assert "previewReplicaCount (3) must not exceed spec.replicas (2)" in c.status["message"]


# --- analyses ---------------------------------------------------------------------------


def test_failed_pre_promotion_analysis_aborts_with_active_untouched() -> None:
    c = Cluster(bg_spec(prePromotionAnalysis=PRE, abortScaleDownDelaySeconds=5))
    c.deploy()
    c.set_image("shop:2")
    c.run_until(lambda: bool(c.created_runs))
    run = c.created_runs[0]
    assert run.kind == "prePromotion" and (run.stable_hash, run.canary_hash) == (V1, V2)
    c.run(5)
    assert c.services[ACTIVE] == V1 and c.bg()["prePromotionAnalysisRunStatus"]["status"] == "Running"
    c.finish_run("prePromotion", "Failed", "error rate 12%")
    t = c.t
    c.reconcile()
    assert c.phase() == "Degraded" and c.status["abort"] is True
    assert c.services == {ACTIVE: V1, PREVIEW: V2}
    assert c.active_history == [(2.0, V1)], "the active Service never moved"
    assert "pre-promotion" not in c.status["message"] and "prePromotion analysis" in c.status["message"]
    assert c.bg()["prePromotionAnalysisRunStatus"]["status"] == "Failed"
    down = c.run_until(lambda: c.replicas(V2) == 0)
    assert down - t == pytest.approx(5, abs=1)
    assert c.replicas(V1) == 3


def test_failed_post_promotion_analysis_rolls_active_back() -> None:
    c = Cluster(bg_spec(postPromotionAnalysis=PRE))
    c.deploy()
    c.set_image("shop:2")
    c.run_until(lambda: c.services[ACTIVE] == V2)
    assert c.status["stableRS"] == V1 and c.phase() == "Progressing"
    assert c.created_runs[-1].kind == "postPromotion"
    assert c.record("promote") is not None  # nothing to promote: already switched
    c.run(30)
    assert c.replicas(V1) == 3, "the stable keeps its pods while the post-promotion analysis runs"
    c.finish_run("postPromotion", "Failed", "latency")
    c.reconcile()
    assert c.services == {ACTIVE: V1, PREVIEW: V2} and c.status["stableRS"] == V1
    assert c.phase() == "Degraded" and c.bg()["postPromotionAnalysisRunStatus"]["status"] == "Failed"


def test_successful_post_promotion_analysis_makes_it_stable() -> None:
    c = Cluster(bg_spec(prePromotionAnalysis=PRE, postPromotionAnalysis=PRE))
    c.deploy()
    c.set_image("shop:2")
    c.run_until(lambda: bool(c.created_runs))
    c.finish_run("prePromotion", "Successful")
    c.run_until(lambda: c.services[ACTIVE] == V2)
    c.finish_run("postPromotion", "Successful")
    c.reconcile()
    assert c.status["stableRS"] == V2 and c.phase() == "Healthy"
    assert c.bg()["prePromotionAnalysisRunStatus"]["status"] == "Successful"
    assert c.bg()["postPromotionAnalysisRunStatus"]["status"] == "Successful"


def test_inconclusive_pre_promotion_pauses_and_promote_starts_a_new_run() -> None:
    c = Cluster(bg_spec(prePromotionAnalysis=PRE))
    c.deploy()
    c.set_image("shop:2")
    c.run_until(lambda: bool(c.created_runs))
    c.finish_run("prePromotion", "Inconclusive", "too few samples")
    c.reconcile()
    assert c.phase() == "Paused" and c.status["message"] == "InconclusiveAnalysisRun"
    assert c.services[ACTIVE] == V1
    assert c.record("promote") is None
    c.reconcile()
    assert len(c.created_runs) == 2 and c.created_runs[1].name != c.created_runs[0].name
    assert c.services[ACTIVE] == V1 and c.phase() == "Progressing"


def test_pods_lost_during_pre_promotion_analysis_never_end_it_as_a_verdict() -> None:
    c = Cluster(bg_spec(prePromotionAnalysis=PRE))
    c.deploy()
    c.set_image("shop:2")
    c.run_until(lambda: bool(c.created_runs))
    name = c.created_runs[0].name
    c.rss[V2].pods[0] = 10**9  # a new pod is lost while the run measures
    c.run(5)
    assert not c.runs[name].terminated, "a started run is never stopped by a pod lost"
    c.rss[V2].pods[0] = c.t  # back
    c.run(5)
    assert c.services[ACTIVE] == V1, "no switch until the run says so"
    c.finish_run("prePromotion", "Successful")
    c.run_until(lambda: c.services[ACTIVE] == V2)


def test_pods_lost_after_the_switch_keep_the_post_promotion_run() -> None:
    c = Cluster(bg_spec(postPromotionAnalysis=PRE))
    c.deploy()
    c.set_image("shop:2")
    c.run_until(lambda: c.services[ACTIVE] == V2)
    name = c.created_runs[-1].name
    c.rss[V2].pods[0] = 10**9
    c.run(5)
    assert not c.runs[name].terminated and c.services[ACTIVE] == V2
    assert c.status["stableRS"] == V1
    c.finish_run("postPromotion", "Failed", "pods failing")
    c.reconcile()
    assert c.services[ACTIVE] == V1


def test_promote_after_an_inconclusive_pre_promotion_still_pauses_before_the_switch() -> None:
    c = Cluster(bg_spec(prePromotionAnalysis=PRE, autoPromotionEnabled=False))
    c.deploy()
    c.set_image("shop:2")
    c.run_until(lambda: bool(c.created_runs))
    c.finish_run("prePromotion", "Inconclusive")
    c.reconcile()
    c.record("promote")
    c.run_until(lambda: len(c.created_runs) == 2)
    c.finish_run("prePromotion", "Successful")
    c.run(5)
    assert c.phase() == "Paused" and c.services[ACTIVE] == V1, \
        "autoPromotionEnabled: false still waits for its own promote"
    c.record("promote")
    c.run_until(lambda: c.services[ACTIVE] == V2)


def test_a_stopped_run_is_never_a_verdict() -> None:
    c = Cluster(bg_spec(prePromotionAnalysis=PRE))
    c.deploy()
    c.set_image("shop:2")
    c.run_until(lambda: bool(c.created_runs))
    name = c.created_runs[0].name
    # stopped by hand (or by a decision whose switch failed): Argo's run then ends Successful
    c.runs[name] = AnalysisRunObs(name, "Successful", "run terminated", True)
    c.run(3)
    assert c.services[ACTIVE] == V1
    assert len(c.created_runs) == 2 and c.created_runs[1].name != name
    c.finish_run("prePromotion", "Successful")
    c.run_until(lambda: c.services[ACTIVE] == V2)


def test_a_failure_after_the_switch_records_the_selectors_written() -> None:
    """The reconciler's rule: when an action after the switch fails, the status written is
    the one read with the selectors the Services were given (never the old active one)."""
    from rollouts.controller.bluegreen import with_written_selectors
    from rollouts.controller.failures import describe, failed_status
    c = Cluster(bg_spec(postPromotionAnalysis=PRE))
    c.deploy()
    c.set_image("shop:2")
    c.run_until(lambda: c.rss.get(V2) is not None and c.rss[V2].available(c.t + 1) == 3)
    c.t += 1
    read = c.st()
    spec, _ = parse_spec(c.spec)
    d = decide(RolloutInput("shop-ns", "shop", c.generation, spec, (), read), c.observe(), c.now)
    points = [a for a in d.actions if isinstance(a, PointService)]
    run = next(a for a in d.actions if isinstance(a, CreateAnalysisRun))
    assert PointService(service=ACTIVE, pod_hash=V2) in points
    assert d.actions.index(run) > d.actions.index(points[-1])
    # the run's creation is refused after both Services were pointed
    failure = describe(run, RuntimeError("denied"), rollout="shop", traffic_done=False)
    st, _, _ = failed_status(read=with_written_selectors(read, spec, points), decided=d.status,
                             failure=failure, generation=c.generation,
                             progress_deadline_seconds=600, now=c.now)
    assert st.blue_green is not None and st.blue_green.active_selector == V2
    assert read.blue_green is not None and read.blue_green.active_selector == V1
    assert with_written_selectors(read, spec, []) is read


def test_promote_full_skips_analysis_and_pause() -> None:
    c = Cluster(bg_spec(prePromotionAnalysis=PRE, postPromotionAnalysis=PRE,
                        autoPromotionEnabled=False))
    c.deploy()
    c.set_image("shop:2")
    c.run_until(lambda: bool(c.created_runs))
    assert c.record("promote", full=True) is None
    c.reconcile()
    assert c.services[ACTIVE] == V2 and c.status["stableRS"] == V2 and c.phase() == "Healthy"
    assert len(c.created_runs) == 1 and c.runs[c.created_runs[0].name].terminated


# --- abort, retry, undo -----------------------------------------------------------------


def test_abort_before_promotion_then_retry_starts_again() -> None:
    c = Cluster(bg_spec(autoPromotionEnabled=False, abortScaleDownDelaySeconds=5,
                        prePromotionAnalysis=PRE))
    c.deploy()
    c.set_image("shop:2")
    c.run_until(lambda: bool(c.created_runs))
    c.finish_run("prePromotion", "Successful")
    c.run_until(lambda: c.phase() == "Paused")
    assert c.record("abort") is None
    c.reconcile()
    assert c.phase() == "Degraded" and c.services == {ACTIVE: V1, PREVIEW: V2}
    assert c.record("promote") == "the rollout is aborted; retry it first, or promote --full"
    c.run_until(lambda: c.replicas(V2) == 0)
    assert c.record("retry") is None
    c.reconcile()
    assert c.replicas(V2) == 3 and "abort" not in c.status
    c.run_until(lambda: len(c.created_runs) == 2)
    assert c.created_runs[1].name != c.created_runs[0].name, "a new run, never the old verdict"
    c.finish_run("prePromotion", "Successful")
    c.run_until(lambda: c.phase() == "Paused")
    c.record("promote")
    c.run_until(lambda: c.services[ACTIVE] == V2)


def test_undo_within_the_scale_down_delay_is_a_fast_rollback() -> None:
    c = Cluster(bg_spec(prePromotionAnalysis=PRE, scaleDownDelaySeconds=30))
    c.deploy()
    c.set_image("shop:2")
    c.run_until(lambda: bool(c.created_runs))
    c.finish_run("prePromotion", "Successful")
    c.run_until(lambda: c.status.get("stableRS") == V2)
    c.run(5)
    assert c.replicas(V1) == 3
    c.set_image("shop:1")  # rollouts undo
    c.reconcile()
    assert c.services[ACTIVE] == V1 and c.status["stableRS"] == V1 and c.phase() == "Healthy"
    assert len(c.created_runs) == 1, "no analysis for a fast rollback"


def test_a_newer_revision_supersedes_the_preview() -> None:
    c = Cluster(bg_spec(autoPromotionEnabled=False))
    c.deploy()
    c.set_image("shop:2")
    c.run_until(lambda: c.phase() == "Paused")
    c.set_image("shop:3")
    c.reconcile()
    assert c.services == {ACTIVE: V1, PREVIEW: V3}
    assert c.replicas(V2) == 0, "a superseded preview never served users: it goes at once"
    assert "pauseConditions" not in c.status
    c.run_until(lambda: c.phase() == "Paused")
    c.record("promote")
    c.run_until(lambda: c.services[ACTIVE] == V3)


def test_user_pause_holds_the_switch() -> None:
    c = Cluster(bg_spec())
    c.deploy()
    c.set_image("shop:2")
    c.reconcile()
    assert c.record("pause") is None
    c.run(30)
    assert c.services[ACTIVE] == V1 and c.phase() == "Paused"
    assert c.record("resume") is None
    c.run_until(lambda: c.services[ACTIVE] == V2)


def test_scale_down_delay_revision_limit() -> None:
    c = Cluster(bg_spec(scaleDownDelaySeconds=100, scaleDownDelayRevisionLimit=1))
    c.deploy()
    c.set_image("shop:2")
    c.run_until(lambda: c.status.get("stableRS") == V2)
    assert c.replicas(V1) == 3
    c.set_image("shop:3")
    c.run_until(lambda: c.status.get("stableRS") == V3)
    c.reconcile()
    assert c.replicas(V2) == 3 and c.replicas(V1) == 0, "only the newest old revision waits"


def test_progress_deadline_abort() -> None:
    c = Cluster(bg_spec(), pod_delay=2)
    c.edit(lambda s: s.update(progressDeadlineSeconds=20, progressDeadlineAbort=True))
    c.deploy()
    c.pod_delay = 10**9
    c.set_image("shop:2")
    c.run_until(lambda: c.phase() == "Degraded", limit=60)
    assert c.status["abort"] is True and c.services[ACTIVE] == V1
    assert c.st().condition("Progressing")["reason"] == "ProgressDeadlineExceeded"  # type: ignore[index]


# --- bad input, restarts ----------------------------------------------------------------


@pytest.mark.parametrize("mutate, error", [
    (lambda s: s["strategy"]["blueGreen"].update(previewService=ACTIVE),
     "activeService and previewService must be different Services"),
    (lambda s: s["strategy"]["blueGreen"].pop("activeService"), "activeService is required"),
    (lambda s: s["strategy"].update(canary={"steps": []}), "set exactly one of canary and blueGreen"),
])
def test_bad_input_is_reported_and_switches_nothing(mutate: Callable[[dict[str, Any]], None],
                                                    error: str) -> None:
    c = Cluster(bg_spec())
    c.deploy()
    c.set_image("shop:2")
    c.edit(mutate)
    d = c.reconcile()
    assert d.actions == [] and c.phase() == "Degraded" and error in c.status["message"]
    assert c.services == {ACTIVE: V1, PREVIEW: V1}


def test_missing_service_switches_nothing_and_abort_still_brakes() -> None:
    c = Cluster(bg_spec(postPromotionAnalysis=PRE))
    c.deploy()
    c.set_image("shop:2")
    c.run_until(lambda: c.services[ACTIVE] == V2)
    c.env_errors = ("Service shop-preview not found",)
    d = c.reconcile()
    assert d.actions == [] and "InvalidSpec" in c.status["message"]
    c.record("abort")
    c.reconcile()
    c.reconcile()
    assert c.services[ACTIVE] == V1, "the emergency brake works on an invalid spec"
    assert c.bg()["activeSelector"] == V1


def test_status_lost_mid_update_keeps_users_on_the_served_revision() -> None:
    c = Cluster(bg_spec(autoPromotionEnabled=False))
    c.deploy()
    c.set_image("shop:2")
    c.run_until(lambda: c.phase() == "Paused")
    c.status = {}
    c.reconcile()
    assert c.status["stableRS"] == V1 and c.bg()["activeSelector"] == V1
    c.run(20)
    assert c.services[ACTIVE] == V1 and c.phase() == "Paused"


def test_ephemeral_metadata_follows_the_roles() -> None:
    c = Cluster(bg_spec(autoPromotionEnabled=False,
                        activeMetadata={"labels": {"role": "active"}},
                        previewMetadata={"labels": {"role": "preview"}}))
    c.deploy()
    assert json.loads(c.rss[V1].ephemeral)["labels"] == {"role": "active"}
    # born with the role it had then (only the preview selected it until its pods were
    # available); regression: it waited for a later reconcile, which may not come soon
    created = [a for _, a in c.log if isinstance(a, CreateReplicaSet)]
    assert created[0].metadata is not None and created[0].metadata.labels == {"role": "preview"}
    c.set_image("shop:2")
    c.run_until(lambda: c.phase() == "Paused")
    c.reconcile()
    assert json.loads(c.rss[V2].ephemeral)["labels"] == {"role": "preview"}
    c.record("promote")
    c.run(2)
    assert json.loads(c.rss[V2].ephemeral)["labels"] == {"role": "active"}


def test_anti_affinity_keeps_new_pods_off_the_stable_nodes() -> None:
    c = Cluster(bg_spec(antiAffinity={"requiredDuringSchedulingIgnoredDuringExecution": {}}))
    c.deploy()
    c.set_image("shop:2")
    d = c.reconcile()
    create = next(a for a in d.actions if isinstance(a, CreateReplicaSet))
    assert create.avoid_hash == V1 and create.anti_affinity is not None
    assert create.anti_affinity.required


def test_switching_strategy_to_canary_drops_the_blue_green_status() -> None:
    c = Cluster(bg_spec())
    c.deploy()
    c.edit(lambda s: s.update(strategy={"canary": {"steps": [{"setWeight": 50}]}}))
    spec, _ = parse_spec(c.spec)
    ro = RolloutInput("ns", "shop", c.generation, spec, (), c.st())
    d = decide(ro, c.observe(), c.now)
    assert "blueGreen" not in d.status.to_dict() and "weights" in d.status.to_dict()["canary"]

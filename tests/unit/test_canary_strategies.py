"""The canary without a traffic router, setCanaryScale, canary/stable pod metadata and
anti-affinity, driven through the simulated cluster of ``test_decide``."""

from __future__ import annotations

import json
from typing import Any

from rollouts.api.spec import AntiAffinity
from rollouts.controller.basic_canary import fenceposts, pod_share
from rollouts.controller.decide import (
    CreateExperiment,
    CreateReplicaSet,
    Decision,
    Observations,
    ReplicaSetObs,
    RolloutInput,
    SetPodMetadata,
    SetTraffic,
    TerminateExperiment,
)
from rollouts.controller.experiment_step import OwnedExperiment
from rollouts.controller.pod_metadata import canonical_metadata
from tests.unit.test_decide import Cluster, h, rollout_spec


class BasicCluster(Cluster):
    """Pods exist as soon as they are scaled up (status.replicas), available after the delay."""

    def observe(self) -> Observations:
        obs = super().observe()
        rss = {k: ReplicaSetObs(r.hash, r.name, r.replicas, r.ready, r.available, r.revision,
                                current=r.replicas)
               for k, r in obs.replica_sets.items()}
        return Observations(obs.template, rss, obs.environment_errors, obs.analysis_runs, obs.pods)

    def _check(self, ro: RolloutInput, obs: Observations, d: Decision) -> None:
        traffic = [a for a in d.actions if isinstance(a, SetTraffic)]
        if ro.spec is None or ro.spec_errors:
            return
        assert len(traffic) == 1
        st = d.status
        assert traffic[0] == SetTraffic(st.stable_rs or "", st.canary_route_hash or st.current_pod_hash or "",
                                        st.canary_weight)
        rss = obs.replica_sets
        if st.current_pod_hash != st.stable_rs and st.current_pod_hash in rss:
            # the weight in status is the canary's share of the available pods, as served
            total = sum(r.available for r in rss.values())
            assert st.canary_weight == pod_share(rss[st.current_pod_hash].available, total)
        c = ro.spec.canary_strategy
        surge = fenceposts(c.max_surge, c.max_unavailable, ro.spec.replicas)[0]
        sizes = {k: r.replicas for k, r in rss.items()}
        for a in d.actions:
            if hasattr(a, "replicas") and hasattr(a, "hash"):
                sizes[a.hash] = a.replicas  # type: ignore[union-attr]
        if ro.status.stable_rs is not None and self.generation_replicas == ro.spec.replicas:
            assert sum(sizes.values()) <= ro.spec.replicas + surge, (sizes, d.actions)

    generation_replicas = 5


def basic(steps: list[Any], replicas: int = 5, **canary: Any) -> dict[str, Any]:
    spec = rollout_spec(replicas=replicas, steps=steps, **canary)
    del spec["strategy"]["canary"]["trafficRouting"]
    return spec


def counts(c: Cluster, *hashes: str) -> tuple[int, ...]:
    return tuple(c.replicas(x) for x in hashes)


def test_basic_canary_pod_counts_follow_argo_at_each_step() -> None:
    steps = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}, {"setWeight": 80},
             {"pause": {}}]
    c = BasicCluster(basic(steps, maxSurge=1, maxUnavailable=0), pod_delay=2)
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    paused = lambda: c.status.get("phase") == "Paused"  # noqa: E731
    c.run_until(paused)
    # 20 % of 5 pods: 1 canary pod beside 4 stable ones (5 + 1 surge at most on the way)
    assert counts(c, v2, v1) == (1, 4)
    assert c.status["canary"]["weights"]["canary"]["weight"] == 20
    assert c.status["message"].startswith("paused at step 1/6")
    c.record("promote")
    c.run_until(lambda: paused() and c.status["currentStepIndex"] == 3)
    assert counts(c, v2, v1) == (3, 3)  # 50 % with one pod of surge: 3 of 6 (Argo rounds up on a tie)
    assert c.status["canary"]["weights"]["canary"]["weight"] == 50
    c.record("promote")
    c.run_until(lambda: paused() and c.status["currentStepIndex"] == 5)
    assert counts(c, v2, v1) == (4, 1)
    c.record("promote")
    c.run_until(lambda: c.status.get("phase") == "Healthy")
    assert counts(c, v2, v1) == (5, 0)
    assert c.status["stableRS"] == v2
    assert c.traffic == SetTraffic(v2, v2, 0)


def test_basic_canary_never_drops_below_max_unavailable_while_pods_start_slowly() -> None:
    c = BasicCluster(basic([{"setWeight": 60}, {"pause": {}}], replicas=10, maxSurge=0,
                           maxUnavailable=2), pod_delay=5)
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    lowest = 10
    for _ in range(200):
        c.reconcile()
        avail = sum(r.available(c.t) for r in c.rss.values())
        lowest = min(lowest, avail)
        assert c.replicas(v1) + c.replicas(v2) <= 10  # no surge
        if c.status.get("phase") == "Paused":
            break
        c.advance(1)
    assert counts(c, v2, v1) == (6, 4)
    assert lowest >= 8  # maxUnavailable 2 of 10


def test_basic_canary_abort_brings_the_stable_back_within_the_limits() -> None:
    c = BasicCluster(basic([{"setWeight": 40}, {"pause": {}}], maxSurge=1, maxUnavailable=0),
                     pod_delay=2)
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    c.run_until(lambda: c.status.get("phase") == "Paused")
    assert counts(c, v2, v1) == (2, 3)
    c.record("abort")
    c.run_until(lambda: c.replicas(v2) == 0 and c.replicas(v1) == 5
                and c.rss[v1].available(c.t) == 5)
    c.run(6)  # the next look sees the canary's pods gone
    assert c.status["phase"] == "Degraded" and c.status["abort"] is True
    assert c.status["canary"]["weights"]["canary"]["weight"] == 0
    assert c.traffic == SetTraffic(v1, v1, 0)  # the canary Service selects stable again


def test_basic_canary_follows_a_scale_of_the_rollout_while_paused() -> None:
    c = BasicCluster(basic([{"setWeight": 20}, {"pause": {}}], maxSurge=1, maxUnavailable=0))
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    c.run_until(lambda: c.status.get("phase") == "Paused")
    assert counts(c, v2, v1) == (1, 4)
    c.generation_replicas = 10
    c.edit(lambda s: s.update(replicas=10))
    c.run_until(lambda: counts(c, v2, v1) == (2, 8))
    c.run(10)
    assert counts(c, v2, v1) == (2, 8) and c.status["phase"] == "Paused"


def test_set_canary_scale_sizes_the_canary_apart_from_its_traffic() -> None:
    steps = [{"setCanaryScale": {"replicas": 3}}, {"setWeight": 10}, {"pause": {}},
             {"setCanaryScale": {"matchTrafficWeight": True}}, {"setWeight": 40}, {"pause": {}}]
    c = Cluster(rollout_spec(replicas=10, steps=steps))
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    c.run_until(lambda: c.status.get("phase") == "Paused")
    assert c.replicas(v2) == 3 and c.canary_weight() == 10  # 3 pods for 10 % of traffic
    assert c.replicas(v1) == 10
    c.record("promote")
    c.run_until(lambda: c.status.get("phase") == "Paused" and c.status["currentStepIndex"] == 5)
    assert c.replicas(v2) == 4 and c.canary_weight() == 40  # back to what 40 % needs


def test_set_canary_scale_weight_and_no_router_is_refused() -> None:
    steps = [{"setCanaryScale": {"weight": 50}}, {"setWeight": 10}, {"pause": {}}]
    c = Cluster(rollout_spec(replicas=4, steps=steps))
    c.deploy_stable()
    c.set_image("shop:2")
    c.run_until(lambda: c.status.get("phase") == "Paused")
    assert c.replicas(h("shop:2")) == 2
    bad = BasicCluster(basic(steps))
    bad.run(3)
    assert bad.rss == {} and "setCanaryScale needs trafficRouting" in bad.status["message"]


def _decide_once(c: Cluster, ephemeral: dict[str, str]) -> Decision:
    """One decision where each ReplicaSet carries the recorded metadata given."""
    obs = c.observe()
    rss = {k: ReplicaSetObs(r.hash, r.name, r.replicas, r.ready, r.available, r.revision,
                            ephemeral=ephemeral.get(k, "")) for k, r in obs.replica_sets.items()}
    from rollouts.api.spec import parse_spec
    from rollouts.api.status import RolloutStatus
    from rollouts.controller.decide import decide
    spec, errors = parse_spec(c.spec)
    ro = RolloutInput("ns", "shop", c.generation, spec, tuple(errors),
                      RolloutStatus.from_dict(json.loads(json.dumps(c.status))))
    return decide(ro, Observations(obs.template, rss, (), obs.analysis_runs), c.now)


def test_canary_and_stable_pods_carry_their_roles_metadata_until_promotion_swaps_it() -> None:
    meta = {"canaryMetadata": {"labels": {"role": "canary"}, "annotations": {"team": "shop"}},
            "stableMetadata": {"labels": {"role": "stable"}}}
    c = Cluster(rollout_spec(steps=[{"setWeight": 20}, {"pause": {}}], **meta))
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    v2 = h("shop:2")
    c.run_until(lambda: c.status.get("phase") == "Paused")
    d = _decide_once(c, {})
    md = {a.hash: a for a in d.actions if isinstance(a, SetPodMetadata)}
    assert md[v2] == SetPodMetadata(hash=v2, labels={"role": "canary"}, annotations={"team": "shop"})
    assert md[v1] == SetPodMetadata(hash=v1, labels={"role": "stable"}, annotations={})
    carried = {v2: canonical_metadata({"role": "canary"}, {"team": "shop"}),
               v1: canonical_metadata({"role": "stable"}, {})}
    assert not [a for a in _decide_once(c, carried).actions if isinstance(a, SetPodMetadata)], \
        "a steady rollout sends nothing"
    c.record("promote")
    c.run_until(lambda: c.status.get("phase") == "Healthy")
    d = _decide_once(c, carried)
    md = {a.hash: a for a in d.actions if isinstance(a, SetPodMetadata)}
    assert md[v2] == SetPodMetadata(hash=v2, labels={"role": "stable"}, annotations={})


def test_anti_affinity_keeps_canary_pods_off_the_stable_pods_nodes() -> None:
    aa = {"preferredDuringSchedulingIgnoredDuringExecution": {"weight": 40}}
    c = Cluster(rollout_spec(steps=[{"setWeight": 20}, {"pause": {}}], antiAffinity=aa))
    v1 = c.deploy_stable()
    first = [a for _, a in c.log if isinstance(a, CreateReplicaSet)]
    assert first[0].anti_affinity is None  # nothing to avoid on the first deploy
    c.set_image("shop:2")
    c.reconcile()
    created = [a for _, a in c.log if isinstance(a, CreateReplicaSet)][-1]
    assert created.hash == h("shop:2")
    assert created.anti_affinity == AntiAffinity(weight=40) and created.avoid_hash == v1


class ExperimentCluster(Cluster):
    """Experiments the decisions create, with the phases the tests give them."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        self.experiments: dict[str, OwnedExperiment] = {}
        self.created: list[CreateExperiment] = []
        self.terminated: list[str] = []

    def observe(self) -> Observations:
        obs = super().observe()
        return Observations(obs.template, obs.replica_sets, obs.environment_errors,
                            obs.analysis_runs, obs.pods, dict(self.experiments))

    def _apply(self, a: Any) -> None:
        if isinstance(a, CreateExperiment):
            assert a.name not in self.experiments
            self.created.append(a)
            self.experiments[a.name] = OwnedExperiment(a.name, "Pending")
        elif isinstance(a, TerminateExperiment):
            self.terminated.append(a.name)
            e = self.experiments[a.name]
            self.experiments[a.name] = OwnedExperiment(e.name, e.phase, True, e.message)
        else:
            super()._apply(a)

    def set_phase(self, name: str, phase: str, message: str = "") -> None:
        self.experiments[name] = OwnedExperiment(name, phase, False, message)


EXP_STEPS: list[dict[str, Any]] = [
    {"setWeight": 20},
    {"experiment": {"duration": "1m", "templates": [{"name": "baseline", "specRef": "stable"},
                                                     {"name": "canary", "specRef": "canary"}]}},
    {"pause": {}}]


def test_an_experiment_step_runs_its_experiment_and_goes_on_when_it_succeeds() -> None:
    c = ExperimentCluster(rollout_spec(steps=EXP_STEPS))
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    c.run_until(lambda: bool(c.created))
    v2 = h("shop:2")
    exp = c.created[0]
    assert (exp.step_index, exp.canary_hash, exp.stable_hash) == (1, v2, v1)
    c.run(30)
    assert c.status["currentStepIndex"] == 1 and c.status["phase"] == "Progressing"
    assert "Experiment" in c.status["message"] and len(c.created) == 1
    c.set_phase(exp.name, "Running")
    c.run(5)
    assert c.status["currentStepIndex"] == 1 and c.canary_weight() == 20
    c.set_phase(exp.name, "Successful")
    c.run_until(lambda: c.status.get("phase") == "Paused")
    assert c.status["currentStepIndex"] == 2 and c.terminated == []


def test_a_failed_experiment_aborts_and_a_skipped_one_is_stopped() -> None:
    c = ExperimentCluster(rollout_spec(steps=EXP_STEPS))
    v1 = c.deploy_stable()
    c.set_image("shop:2")
    c.run_until(lambda: bool(c.created))
    c.set_phase(c.created[0].name, "Failed", "analysis errors failed")
    c.run_until(lambda: c.status.get("phase") == "Degraded")
    assert c.status["abort"] is True and "analysis errors failed" in c.status["abortReason"]
    c.run_until(lambda: c.canary_weight() == 0)
    assert c.traffic == SetTraffic(v1, v1, 0)

    d = ExperimentCluster(rollout_spec(steps=EXP_STEPS))
    d.deploy_stable()
    d.set_image("shop:2")
    d.run_until(lambda: bool(d.created))
    d.set_phase(d.created[0].name, "Running")
    d.record("promote")  # skips the experiment step: its Experiment is stopped
    d.run_until(lambda: d.status.get("phase") == "Paused")
    assert d.terminated == [d.created[0].name]


def test_basic_canary_superseded_by_a_new_revision_leaves_only_as_fast_as_pods_come_up() -> None:
    # A new template while the old canary serves half the users: its pods leave only while
    # 5 - maxUnavailable (0) pods stay available.
    c = BasicCluster(basic([{"setWeight": 50}, {"pause": {}}], maxSurge=1, maxUnavailable=0),
                     pod_delay=3)
    c.deploy_stable()
    c.set_image("shop:2")
    c.run_until(lambda: c.status.get("phase") == "Paused")
    c.set_image("shop:3")
    lowest = 5
    for _ in range(120):
        c.reconcile()
        lowest = min(lowest, sum(r.available(c.t) for r in c.rss.values()))
        if c.status.get("phase") == "Paused" and c.status["currentPodHash"] == h("shop:3"):
            break
        c.advance(1)
    assert c.replicas(h("shop:2")) == 0
    assert lowest >= 5


def test_dynamic_stable_scale_without_a_router_is_refused_as_in_argo() -> None:
    from rollouts.api.spec import parse_spec
    _, errors = parse_spec(basic([{"setWeight": 20}], dynamicStableScale=True))
    assert any("dynamicStableScale needs trafficRouting" in e for e in errors), errors


def test_a_pod_template_change_alone_does_not_hide_available_pods() -> None:
    # SetPodMetadata patches the ReplicaSet's template: its generation moves ahead of
    # observedGeneration, but its pods (and counts) are unchanged. Reading them as 0
    # available made a Healthy rollout flap to Progressing and dropped header routes.
    from rollouts.controller.reconciler import rs_observation
    rs = {"metadata": {"name": "shop-abc", "labels": {"rollouts-pod-template-hash": "abc"},
                       "generation": 3},
          "spec": {"replicas": 4},
          "status": {"observedGeneration": 2, "replicas": 4, "readyReplicas": 4,
                     "availableReplicas": 4}}
    assert rs_observation(rs).available == 4
    rs["spec"]["replicas"] = 6  # a scale not seen yet: its counts are stale
    assert rs_observation(rs).available == 0


def test_a_new_revision_is_born_with_its_roles_metadata() -> None:
    # Regression: role metadata reached only ReplicaSets that existed before the decision, so
    # a first deploy's pods waited unlabelled for a reconcile that a Healthy rollout may not
    # get soon (seen in a sharded make test: stable pods never labelled within 30 s).
    from rollouts.api.spec import PodMetadata
    from rollouts.controller.reconciler import EPHEMERAL_ANNOTATION, build_replica_set, parse_spec
    meta = {"canaryMetadata": {"labels": {"role": "canary"}, "annotations": {"team": "shop"}},
            "stableMetadata": {"labels": {"role": "stable"}}}
    c = Cluster(rollout_spec(steps=[{"setWeight": 20}, {"pause": {}}], **meta))
    c.deploy_stable()
    first = [a for _, a in c.log if isinstance(a, CreateReplicaSet)]
    assert first[0].metadata == PodMetadata(labels={"role": "stable"}, annotations={})
    c.set_image("shop:2")
    c.reconcile()
    created = [a for _, a in c.log if isinstance(a, CreateReplicaSet)][-1]
    assert created.metadata == PodMetadata(labels={"role": "canary"}, annotations={"team": "shop"})

    spec, _ = parse_spec(c.spec)
    assert spec is not None
    rollout = {"metadata": {"name": "shop", "namespace": "ns", "uid": "u"}}
    tmpl = {"metadata": {"labels": {"app": "shop"}}, "spec": {"containers": []}}
    rs = build_replica_set(rollout, spec, tmpl, created)
    pod_md = rs["spec"]["template"]["metadata"]
    assert pod_md["labels"]["role"] == "canary" and pod_md["annotations"] == {"team": "shop"}
    assert "role" not in rs["metadata"]["labels"], "the ReplicaSet's own labels hold no role"
    # recorded as carried, so the next decision sends no SetPodMetadata for it
    assert rs["metadata"]["annotations"][EPHEMERAL_ANNOTATION] == canonical_metadata(
        {"role": "canary"}, {"team": "shop"})

"""The canary step logic: a pure function of (rollout, observations, now).

``decide`` reads the Rollout's spec and status plus what the reconciler observed on the
cluster (our ReplicaSets, errors in the objects the spec names) and returns the new
status, the ordered actions that bring the cluster there, the Events to emit and when
to look again. It performs no I/O, so every behaviour is unit-testable and a restarted
controller recomputes the same decision from the stored status (pause deadlines come
from stored start times, never from in-memory timers).

The reconciler runs the actions in order and writes the status only if all succeeded,
so ``status`` never claims a traffic weight that was not written. Every decision on a
valid spec carries exactly one ``SetTraffic`` equal to what the new status claims
(stable_rs, canary_route_hash or current_pod_hash, canary_weight). A decision on an
invalid spec carries no action, except the traffic part of an abort recorded earlier
(the emergency brake works even then, see ``_invalid``). Actions come in a safe order:
new and scaled-up ReplicaSets first, then the traffic change, then scale-downs (pods
leave only after traffic left them), AnalysisRuns stopped, deletions of old revisions.

Traffic only ever moves to pods that are available: towards the canary as a step finds
its pods ready, back towards a dynamically scaled stable (abort, or a restart of the
steps) only as fast as the stable's pods come back.
"""

from __future__ import annotations

from datetime import datetime

from rollouts.api.actions import Action, canary_in_progress, check_action
from rollouts.api.constants import Cond, Phase, Reason
from rollouts.api.spec import RolloutSpec
from rollouts.controller.bluegreen import blue_green_abort_while_invalid, decide_blue_green
from rollouts.controller.canary import abort_while_invalid, decide_canary
from rollouts.controller.decision import (
    AnalysisRunObs,
    ClusterAction,
    CreateAnalysisRun,
    CreateExperiment,
    CreateReplicaSet,
    Decision,
    DeletePod,
    DeleteReplicaSet,
    Event,
    Observations,
    PodObs,
    PointService,
    RemoveRouting,
    ReplicaSetObs,
    RolloutInput,
    ScaleReplicaSet,
    SetPodMetadata,
    SetTraffic,
    TerminateAnalysisRun,
    TerminateExperiment,
    template_hash,
)
from rollouts.controller.lifecycle import record_abort, reject
from rollouts.controller.pending import mark_applied

# (the reconciler's: it belongs to rollouts.controller.replicas; kept here until the
# reconciler imports it from there)
from rollouts.controller.replicas import restart_pending

# The import surface of a decision: ``decide`` and the model it reads and returns
# (rollouts.controller.decision). Strategy helpers are imported from their own modules.
__all__ = [
    "AnalysisRunObs",
    "ClusterAction",
    "CreateAnalysisRun",
    "CreateExperiment",
    "CreateReplicaSet",
    "Decision",
    "DeletePod",
    "DeleteReplicaSet",
    "Event",
    "Observations",
    "PodObs",
    "PointService",
    "RemoveRouting",
    "ReplicaSetObs",
    "RolloutInput",
    "ScaleReplicaSet",
    "SetPodMetadata",
    "SetTraffic",
    "TerminateAnalysisRun",
    "TerminateExperiment",
    "decide",
    "restart_pending",
    "template_hash",
]


def decide(ro: RolloutInput, obs: Observations, now: datetime) -> Decision:
    st = ro.status.copy()
    d = Decision(st, rollout=ro.name, analysis_runs=dict(obs.analysis_runs),
                 experiments=dict(obs.experiments))
    st.observed_generation = ro.generation
    errors = [*ro.spec_errors, *obs.environment_errors]
    if ro.spec is None or obs.template is None or errors:
        return _invalid(d, ro, obs, errors or ["the pod template could not be resolved"], now)
    if st.condition(Cond.INVALID_SPEC) is not None:
        st.remove_condition(Cond.INVALID_SPEC)
        d.normal(Reason.ROLLOUT_UPDATED, "spec is valid again")
    if ro.spec.blue_green is not None:
        decide_blue_green(d, ro.spec, obs, now)
    else:
        st.blue_green = None  # (a rollout switched from blueGreen to canary)
        decide_canary(d, ro.spec, obs, now)
    _take_back_old_routing(d, ro.spec)
    if st.phase != ro.status.phase and st.phase == Phase.HEALTHY:
        d.normal(Reason.HEALTHY, "rollout is healthy")
    return d


def _take_back_old_routing(d: Decision, spec: RolloutSpec) -> None:
    """A trafficRouting changed or removed in the spec: the old routers' writes are taken
    back before the new traffic change (so a failure leaves status naming the old one, and
    the next reconcile retries)."""
    st = d.status
    c = spec.raw.get("strategy", {}).get("canary") if isinstance(spec.raw.get("strategy"), dict) else None
    tr = c.get("trafficRouting") if isinstance(c, dict) else None
    current = tr if isinstance(tr, dict) and tr else None
    previous = st.traffic_routing
    if previous is not None and previous != current:
        act = RemoveRouting(previous=previous, current=current)
        i = next((k for k, a in enumerate(d.actions) if isinstance(a, SetTraffic)), len(d.actions))
        d.actions.insert(i, act)
        d.normal(Reason.ROLLOUT_UPDATED, "trafficRouting changed: what the previous routers "
                 "wrote is taken back")
    st.traffic_routing = current


def _invalid(d: Decision, ro: RolloutInput, obs: Observations, errors: list[str],
             now: datetime) -> Decision:
    """Report, and touch nothing on the cluster, except for an abort: the emergency brake.

    Other actions are rejected. An abort is recorded at once (a decision with no action,
    so nothing can stop it being written). From the next decision on, if the spec and the
    pod template can still be read, its traffic part runs as on a valid spec: traffic
    back to the stable (as fast as a dynamically scaled stable's pods allow), stable
    scaled up. Scale-downs wait until the spec is valid again. If the spec cannot be
    parsed at all, the routing is unknown: traffic stays where status says it is, and
    the recorded abort is honoured as soon as the spec is valid again.
    """
    st = d.status
    msg = "; ".join(errors)
    cur = st.condition(Cond.INVALID_SPEC)
    st.set_condition(Cond.INVALID_SPEC, True, Reason.INVALID_SPEC, msg, now)
    if cur is None or cur.get("message") != msg:
        d.warning(Reason.INVALID_SPEC, msg)
    raw = st.pending_action
    if raw is not None:
        act = Action.from_dict(raw)
        why = check_action(ro.spec, st, act) if act is not None and act.action == "abort" else None
        if act is not None and act.action == "abort" and why is None:
            record_abort(d, act.user, now)
            mark_applied(st, act, now, stepIndex=st.current_step_index,
                         message="applied while the spec is invalid")
            d.wake_in(0.5)  # the traffic part follows once the abort is written
        else:
            reject(d, raw, why or "the spec is invalid", now)
    done = st.canary_weight == 0 and st.canary_route_hash == st.stable_rs  # nothing left to move
    recorded = (ro.status.abort and st.abort and obs.template is not None
                and canary_in_progress(st) and st.stable_rs in obs.replica_sets)
    if recorded and ro.spec is not None and ro.spec.blue_green is not None:
        blue_green_abort_while_invalid(d, ro.spec, obs, now)
    elif recorded and not done and ro.spec is not None:
        abort_while_invalid(d, ro.spec, obs, now)
    st.phase = Phase.DEGRADED
    st.message = f"InvalidSpec: {msg}"
    if st.abort:
        st.message += f"; {Reason.ABORTED}: {st.abort_reason or 'aborted'}" + (
            "" if ro.spec is not None and obs.template is not None else
            " (traffic goes back to stable once the spec can be read)")
    return d

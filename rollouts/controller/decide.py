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

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rollouts.api.actions import Action, canary_in_progress, check_action
from rollouts.api.constants import Cond, Phase, Reason
from rollouts.api.spec import RolloutSpec, Step
from rollouts.api.status import RolloutStatus, fmt_time, parse_time

# --- inputs --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaSetObs:
    hash: str
    name: str
    replicas: int
    ready: int = 0
    available: int = 0
    revision: int = 0


@dataclass(frozen=True)
class PodObs:
    """A pod of one of our ReplicaSets (only gathered while a restartAt is pending)."""

    name: str
    created: datetime
    deleting: bool = False


@dataclass(frozen=True)
class AnalysisRunObs:
    name: str
    phase: str  # Pending | Running | Successful | Failed | Inconclusive | Error
    message: str = ""
    terminated: bool = False


@dataclass(frozen=True)
class Observations:
    template: dict[str, Any] | None
    replica_sets: dict[str, ReplicaSetObs] = field(default_factory=dict)
    # Problems with objects the spec names (missing Service, route not found, ...).
    environment_errors: tuple[str, ...] = ()
    # This rollout's AnalysisRuns by name.
    analysis_runs: dict[str, AnalysisRunObs] = field(default_factory=dict)
    pods: tuple[PodObs, ...] = ()


@dataclass(frozen=True)
class RolloutInput:
    namespace: str
    name: str
    generation: int
    spec: RolloutSpec | None
    spec_errors: tuple[str, ...]
    status: RolloutStatus


# --- outputs -------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateReplicaSet:
    hash: str
    replicas: int
    revision: int


@dataclass(frozen=True)
class ScaleReplicaSet:
    hash: str
    replicas: int


@dataclass(frozen=True)
class DeleteReplicaSet:
    hash: str


@dataclass(frozen=True)
class SetTraffic:
    """Stable Service/subset -> stable_hash, canary -> canary_hash, canary_weight % to canary."""

    stable_hash: str
    canary_hash: str
    canary_weight: int


@dataclass(frozen=True, kw_only=True)
class CreateAnalysisRun:
    """Create run ``name`` from a step's (or the background) ``analysis`` block.

    The hashes are those of this decision (``podTemplateHashValue: Stable|Latest``): a run
    created in the reconcile that starts a new revision measures that revision, not the
    one the status named before.
    """

    name: str
    analysis: dict[str, Any]
    kind: str  # "step" | "background"
    step_index: int | None = None
    stable_hash: str
    canary_hash: str


@dataclass(frozen=True)
class TerminateAnalysisRun:
    name: str


@dataclass(frozen=True)
class DeletePod:
    name: str


ClusterAction = (CreateReplicaSet | ScaleReplicaSet | DeleteReplicaSet | SetTraffic
                 | CreateAnalysisRun | TerminateAnalysisRun | DeletePod)


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Decision:
    status: RolloutStatus
    actions: list[ClusterAction] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    rollout: str = ""
    analysis_runs: dict[str, AnalysisRunObs] = field(default_factory=dict)

    def wake_in(self, seconds: float) -> None:
        s = max(0.5, seconds)
        self.requeue_after = s if self.requeue_after is None else min(self.requeue_after, s)

    def normal(self, reason: str, message: str) -> None:
        self.events.append(Event("Normal", reason, message))

    def warning(self, reason: str, message: str) -> None:
        self.events.append(Event("Warning", reason, message))


# --- helpers -------------------------------------------------------------------------


def _digest(obj: Any) -> str:
    return hashlib.sha256(
        json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def template_hash(template: dict[str, Any]) -> str:
    """Stable short hash of a pod template: the label value that names a revision."""
    return _digest(template)[:10]


def steps_hash(spec: RolloutSpec) -> str:
    """Hash of the parsed steps: ``30`` and ``"30s"`` are the same step, so no restart."""
    canon: list[Any] = []
    for s in spec.canary.steps:
        if s.set_weight is not None:
            canon.append(["setWeight", s.set_weight])
        elif s.pause_seconds is not None:
            canon.append(["pause", None if math.isinf(s.pause_seconds) else s.pause_seconds])
        else:
            canon.append(["analysis", s.analysis])
    return _digest(canon)[:10]


def replicas_for_weight(replicas: int, weight: int) -> int:
    """Pods that can carry ``weight`` % of the traffic of ``replicas`` pods (rounded up)."""
    return -(-max(replicas, 0) * max(weight, 0) // 100)


def _stable_replicas(spec: RolloutSpec, canary_weight: int) -> int:
    """With dynamicStableScale the stable keeps only what its share needs, else all."""
    if spec.canary.dynamic_stable_scale:
        return replicas_for_weight(spec.replicas, 100 - canary_weight)
    return spec.replicas


def _seconds_until(deadline: datetime, now: datetime) -> float:
    return (deadline - now).total_seconds()


def _available(rss: dict[str, ReplicaSetObs], h: str) -> int:
    r = rss.get(h)
    return r.available if r else 0


# --- the decision --------------------------------------------------------------------


def decide(ro: RolloutInput, obs: Observations, now: datetime) -> Decision:
    st = ro.status.copy()
    d = Decision(st, rollout=ro.name, analysis_runs=dict(obs.analysis_runs))
    st.observed_generation = ro.generation
    errors = [*ro.spec_errors, *obs.environment_errors]
    if ro.spec is None or obs.template is None or errors:
        return _invalid(d, ro, obs, errors or ["the pod template could not be resolved"], now)
    if st.condition(Cond.INVALID_SPEC) is not None:
        st.remove_condition(Cond.INVALID_SPEC)
        d.normal(Reason.ROLLOUT_UPDATED, "spec is valid again")

    spec = ro.spec
    h = template_hash(obs.template)
    rss = obs.replica_sets
    st.selector = ",".join(f"{k}={v}" for k, v in sorted(spec.selector.items()))
    st.canary_service = spec.canary.canary_service
    st.stable_service = spec.canary.stable_service
    n = len(spec.canary.steps)
    desired: dict[str, int] = {}

    _recover_stable(st, rss, h)
    if st.stable_rs is None:
        # First deploy: no previous version to protect, so the steps are skipped.
        if ro.status.current_pod_hash != h:
            d.normal(Reason.NEW_RS, f"first revision {h} deployed without steps")
        st.stable_rs = st.current_pod_hash = h
        st.current_step_index = n
        st.current_step_hash = steps_hash(spec)
        st.canary_weight = 0
        st.progress_at = fmt_time(now)
    elif st.current_pod_hash != h:
        _new_revision(d, spec, h, now)
    elif h != st.stable_rs and st.current_step_hash != steps_hash(spec):
        d.normal(Reason.ROLLOUT_UPDATED, "steps changed: restarting the canary at step 0")
        _restart_steps(st, spec, now)

    if st.pending_action is not None:
        _apply_pending_action(d, spec, now)
    _check_route(st, rss)

    assert st.stable_rs is not None
    stable = st.stable_rs
    if h == stable:
        _healthy(d, spec, rss, h, desired, now)
    else:
        _canary(d, spec, rss, h, stable, desired, now)

    _restart_pods(d, spec, obs, rss, desired, now)
    _scale_old(d, spec, rss, desired, now)
    _emit_replica_actions(d, rss, desired, h)
    _replica_counts(st, rss, h)
    _prune_history(d, spec, rss, desired, {stable, h, st.stable_rs, st.canary_route_hash})
    if st.phase != ro.status.phase and st.phase == Phase.HEALTHY:
        d.normal(Reason.HEALTHY, "rollout is healthy")
    return d


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
            _record_abort(d, act.user, now)
            st.last_action = {**act.to_dict(), "result": "Applied", "processedAt": fmt_time(now),
                              "stepIndex": st.current_step_index,
                              "message": "applied while the spec is invalid"}
            st.pending_action = None
            d.wake_in(0.5)  # the traffic part follows once the abort is written
        else:
            _reject(d, raw, why or "the spec is invalid", now)
    done = st.canary_weight == 0 and st.canary_route_hash == st.stable_rs  # nothing left to move
    if (ro.status.abort and st.abort and not done and ro.spec is not None
            and obs.template is not None and canary_in_progress(st)
            and st.stable_rs in obs.replica_sets):
        assert st.current_pod_hash is not None and st.stable_rs is not None
        desired: dict[str, int] = {}
        _aborted(d, ro.spec, obs.replica_sets, st.current_pod_hash, st.stable_rs, desired, now)
        ups = {k: n for k, n in desired.items()
               if k in obs.replica_sets and n > obs.replica_sets[k].replicas}
        _emit_replica_actions(d, obs.replica_sets, ups, st.current_pod_hash)
    st.phase = Phase.DEGRADED
    st.message = f"InvalidSpec: {msg}"
    if st.abort:
        st.message += f"; {Reason.ABORTED}: {st.abort_reason or 'aborted'}" + (
            "" if ro.spec is not None and obs.template is not None else
            " (traffic goes back to stable once the spec can be read)")
    return d


def _recover_stable(st: RolloutStatus, rss: dict[str, ReplicaSetObs], h: str) -> None:
    """If status was lost (or names a deleted ReplicaSet), adopt what runs on the cluster.

    The ReplicaSet with the most available pods is what serves users now, so it becomes
    the stable one (on a tie, the one that is not the current template, then the newest
    revision): traffic never moves to a revision that cannot carry it. With no
    ReplicaSet at all there is nothing to protect and the template deploys directly.
    """
    if st.stable_rs is not None and st.stable_rs in rss:
        return
    if not rss:
        st.stable_rs = None
        return
    best = max(rss.values(), key=lambda r: (r.available, r.hash != h, r.revision))
    st.stable_rs = best.hash
    if st.current_pod_hash is None or st.current_pod_hash not in rss:
        st.current_pod_hash = best.hash


def _restart_steps(st: RolloutStatus, spec: RolloutSpec, now: datetime) -> None:
    """Step 0 with fresh AnalysisRuns. Traffic on the canary does not leave at once: it
    drains back to the stable (``_drain``) before the new steps decide the weight."""
    if st.canary_weight > 0:
        st.draining = True
        st.canary_route_hash = st.canary_route_hash or st.current_pod_hash
    else:
        st.draining = False
        st.canary_route_hash = None
    st.current_step_index = 0
    st.current_step_hash = steps_hash(spec)
    st.pause_conditions = []
    st.controller_pause = False
    st.promote_full = False
    st.progress_at = fmt_time(now)
    st.remove_condition(Cond.PAUSED)
    a = _analysis_state(st)
    a["attempt"] = int(a.get("attempt") or 0) + 1  # new run names: never reuse an old verdict
    for key in ("step", "background", "backgroundRestarts"):
        a.pop(key, None)


def _clear_abort(st: RolloutStatus) -> None:
    st.abort = False
    st.aborted_at = st.aborted_by = st.abort_reason = None
    if st.canary_route_hash == st.stable_rs:
        st.canary_route_hash = None  # the canary Service follows the canary again
    elif st.canary_route_hash is not None and st.canary_weight > 0:
        # the abort was draining a superseded canary (``_aborted``): it keeps draining
        # (``_drain``), its share never jumps to the current revision's pods
        st.draining = True


def _check_route(st: RolloutStatus, rss: dict[str, ReplicaSetObs]) -> None:
    """A route naming a ReplicaSet that is gone carries nothing worth protecting."""
    route = st.canary_route_hash
    if route is not None and (route == st.current_pod_hash
                              or (route not in rss and not st.draining)):
        st.canary_route_hash = None  # (a drain notices a vanished route itself: see _drain)


def _new_revision(d: Decision, spec: RolloutSpec, h: str, now: datetime) -> None:
    st = d.status
    old = st.current_pod_hash
    _restart_steps(st, spec, now)
    if old and old != st.stable_rs and old != h and not st.draining:
        st.scale_down_at[old] = fmt_time(now)  # the superseded canary had no traffic
    st.current_pod_hash = h
    _clear_abort(st)
    st.user_pause = None
    st.scale_down_at.pop(h, None)
    if h == st.stable_rs:
        st.current_step_index = len(spec.canary.steps)
        d.normal(Reason.ROLLOUT_UPDATED, f"template is back to the stable revision {h}")
    else:
        st.remove_condition(Cond.COMPLETED)
        d.normal(Reason.ROLLOUT_UPDATED, f"new revision {h}: starting canary steps")


def _record_abort(d: Decision, who: str, now: datetime) -> None:
    st = d.status
    st.abort = True
    st.aborted_at = fmt_time(now)
    st.aborted_by = who
    st.abort_reason = f"aborted by {who}"
    d.warning(Reason.ABORTED, f"rollout aborted by {who}: traffic back to stable")


def _reject(d: Decision, raw: dict[str, Any], why: str, now: datetime) -> None:
    st = d.status
    st.last_action = {**raw, "result": "Rejected", "message": why, "processedAt": fmt_time(now)}
    st.pending_action = None
    d.warning(Reason.ACTION_REJECTED, f"{raw.get('action')} by {raw.get('user')} rejected: {why}")


def _apply_pending_action(d: Decision, spec: RolloutSpec, now: datetime) -> None:
    st = d.status
    raw = st.pending_action or {}
    act = Action.from_dict(raw)
    if act is None:
        _reject(d, raw, f"unknown action {raw.get('action')!r}", now)
        return
    why = check_action(spec, st, act)
    if why is not None:
        _reject(d, raw, why, now)
        return
    n = len(spec.canary.steps)
    idx = min(max(st.current_step_index or 0, 0), n)
    who = act.user
    bg = _background_run(d, spec, st.current_pod_hash or "")
    if act.action == "promote" and act.full:
        # Argo: a full promotion also ends an abort or an inconclusive pause; every run stops
        # and the canary goes to 100 % without new analysis.
        aborted = st.abort
        _clear_abort(st)
        st.promote_full = True
        st.user_pause = None
        st.pause_conditions = []
        st.controller_pause = False
        st.progress_at = fmt_time(now)
        d.normal(Reason.PROMOTED_FULL, f"full promotion requested by {who}: skipping all remaining "
                 f"steps{' (the abort is lifted)' if aborted else ''}")
    elif act.action == "promote" and bg is not None and bg.phase == RUN_INCONCLUSIVE:
        # Argo: promote clears the inconclusive pause and a new background run starts; the
        # step is not skipped (a reached pause step ends with it, its pause being cleared).
        a = _analysis_state(st)
        a["backgroundRestarts"] = int(a.get("backgroundRestarts") or 0) + 1
        a.pop("background", None)
        in_pause = any(p.get("reason") == Reason.CANARY_PAUSE for p in st.pause_conditions)
        st.pause_conditions = []
        st.controller_pause = False
        st.user_pause = None
        st.progress_at = fmt_time(now)
        if in_pause:
            st.current_step_index = min(idx + 1, n)
        d.normal(Reason.PROMOTED, f"promoted by {who}: background analysis {bg.name} was inconclusive; "
                 "a new background analysis starts" + (f", step {idx} ended" if in_pause else ""))
    elif act.action == "promote":
        # Ends a pause; on any other step skips it (Argo's meaning of promote). Like Argo's
        # promote, it also lifts a pause set by a user.
        st.pause_conditions = []
        st.user_pause = None
        st.current_step_index = min(idx + 1, n)
        st.progress_at = fmt_time(now)
        step = spec.canary.steps[idx].describe() if idx < n else "promotion"
        d.normal(Reason.PROMOTED, f"promoted by {who}: step {idx} ({step}) ended")
    elif act.action == "abort":
        _record_abort(d, who, now)
    elif act.action == "retry":
        _clear_abort(st)
        if st.current_pod_hash:
            st.scale_down_at.pop(st.current_pod_hash, None)
        _restart_steps(st, spec, now)
        st.remove_condition(Cond.PROGRESSING)
        d.normal(Reason.RETRIED, f"retried by {who}: restarting canary steps")
    elif act.action == "pause":
        st.user_pause = {"user": who, "at": fmt_time(now)}
        d.normal(Reason.PAUSED, f"paused by {who}")
    elif act.action == "resume":
        st.user_pause = None
        st.progress_at = fmt_time(now)  # time spent paused never counts towards the deadline
        d.normal(Reason.RESUMED, f"resumed by {who}")
    st.last_action = {**act.to_dict(), "result": "Applied", "processedAt": fmt_time(now),
                      "stepIndex": idx}
    st.pending_action = None


def _set_healthy(st: RolloutStatus, h: str, now: datetime) -> None:
    st.phase = Phase.HEALTHY
    st.message = ""
    st.progress_at = None
    st.remove_condition(Cond.PAUSED)
    st.set_condition(Cond.PROGRESSING, True, "NewReplicaSetAvailable",
                     f"revision {h} is fully rolled out", now)
    st.set_condition(Cond.AVAILABLE, True, Reason.AVAILABLE, "rollout has minimum availability", now)
    st.set_condition(Cond.COMPLETED, True, Reason.COMPLETED, "rollout completed", now)


def _healthy(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs], h: str,
             desired: dict[str, int], now: datetime) -> None:
    st = d.status
    desired[h] = spec.replicas
    st.current_step_index = len(spec.canary.steps)
    st.current_step_hash = steps_hash(spec)
    st.pause_conditions = []
    st.controller_pause = False
    st.promote_full = False
    _clear_abort(st)
    st.user_pause = None
    st.remove_condition(Cond.PAUSED)
    _sweep_runs(d, set())
    if _drain(d, spec, rss, desired, now, f"rolling back to the stable revision {h}"):
        return
    st.canary_weight = 0
    st.canary_route_hash = None
    d.actions.append(SetTraffic(h, h, 0))
    avail = _available(rss, h)
    if avail >= spec.replicas and h in rss:
        _set_healthy(st, h, now)
        return
    st.phase = Phase.PROGRESSING
    st.message = f"waiting for stable ReplicaSet {h}: {avail}/{spec.replicas} available"
    st.set_condition(Cond.AVAILABLE, False, Reason.NOT_AVAILABLE, st.message, now)
    if not _check_deadline(d, spec, now):
        st.set_condition(Cond.PROGRESSING, True, Reason.ROLLOUT_UPDATED, st.message, now)


def _weight_back_to_stable(spec: RolloutSpec, rss: dict[str, ReplicaSetObs], stable: str,
                           weight: int, *, carrier: str) -> int:
    """The canary weight once traffic went back to the stable as far as it can carry it.

    All at once, unless the stable was scaled down for the canary (dynamicStableScale):
    then it takes traffic back only as fast as its pods come back (Argo issue 3020). The
    traffic left on ``carrier`` is never more than its available pods carry (its pods
    failing, or a controller killed after it scaled them away before writing status):
    when neither side can carry its share, their available pods share it in proportion.
    """
    replicas = spec.replicas
    if not spec.canary.dynamic_stable_scale or weight <= 0 or replicas <= 0:
        return 0
    stable_avail, carrier_avail = _available(rss, stable), _available(rss, carrier)
    held = min(weight, max(0, 100 - 100 * stable_avail // replicas))
    if 100 * carrier_avail // replicas >= held or stable_avail + carrier_avail == 0:
        return held
    return min(held, 100 * carrier_avail // (stable_avail + carrier_avail))


def _drain(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs],
           desired: dict[str, int], now: datetime, what: str) -> bool:
    """After a restart of the steps, traffic leaves the canary route only as fast as the
    stable can take it; the route's pods stay until it carries nothing. True while
    traffic is still on the route (the caller then holds the steps)."""
    st = d.status
    if not st.draining:
        return False
    assert st.stable_rs is not None
    stable = st.stable_rs
    route = st.canary_route_hash or st.current_pod_hash or stable
    weight = (_weight_back_to_stable(spec, rss, stable, st.canary_weight, carrier=route)
              if route in rss and route != stable else 0)
    if weight != st.canary_weight:
        d.normal(Reason.WEIGHT_UPDATED, f"canary weight {st.canary_weight} -> {weight} ({what})")
    st.canary_weight = weight
    desired[stable] = spec.replicas
    if weight == 0:
        st.draining = False
        st.canary_route_hash = None
        if route in rss and route not in (stable, st.current_pod_hash):
            st.scale_down_at[route] = fmt_time(now)  # a superseded canary leaves at once
        return False
    rs = rss[route]
    desired[route] = max(rs.replicas, replicas_for_weight(spec.replicas, weight))
    st.canary_route_hash = route if route != st.current_pod_hash else None
    st.pause_conditions = []
    st.controller_pause = False
    st.remove_condition(Cond.PAUSED)
    st.phase = Phase.PROGRESSING
    st.message = (f"{what}: {weight}% still on {route} until the stable {stable} has scaled "
                  f"back up ({_available(rss, stable)}/{spec.replicas} available)")
    if _check_deadline(d, spec, now):
        if st.abort:
            return True  # progressDeadlineAbort: the caller switches to the abort path
    else:
        st.set_condition(Cond.PROGRESSING, True, Reason.ROLLOUT_UPDATED, st.message, now)
    d.actions.append(SetTraffic(stable, route, weight))
    d.wake_in(5)
    return True


def _canary(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs], h: str, stable: str,
            desired: dict[str, int], now: datetime) -> None:
    st = d.status
    replicas = spec.replicas
    dynamic = spec.canary.dynamic_stable_scale
    st.remove_condition(Cond.COMPLETED)
    stable_avail, canary_avail = _available(rss, stable), _available(rss, h)
    ok = stable_avail + canary_avail >= replicas
    st.set_condition(Cond.AVAILABLE, ok, Reason.AVAILABLE if ok else Reason.NOT_AVAILABLE,
                     f"{stable_avail + canary_avail}/{replicas} pods available (stable {stable}: "
                     f"{stable_avail}, canary {h}: {canary_avail})", now)

    if st.abort:
        _sweep_runs(d, set())
        _aborted(d, spec, rss, h, stable, desired, now)
        return
    if _drain(d, spec, rss, desired, now, "restarting the canary steps"):
        if st.abort:
            _aborted(d, spec, rss, h, stable, desired, now)
        _sweep_runs(d, set())  # the runs of the superseded steps; new ones start after the drain
        return
    st.canary_route_hash = None

    steps = spec.canary.steps
    n = len(steps)
    idx = n if st.promote_full else min(max(st.current_step_index or 0, 0), n)
    weight = st.canary_weight
    # the lowest canary weight traffic is heading to: a dynamically scaled stable is sized
    # for its share at that weight (scale-downs run after the traffic change)
    heading_to = 100
    paused_msg: str | None = None
    waiting_msg: str | None = None
    inconclusive = False
    in_analysis = False
    hold = st.user_pause is not None or spec.paused
    # Background analysis keeps measuring while a user holds the rollout (as in Argo); a
    # full promotion stops all analysis.
    bg = None if st.promote_full else _background_analysis(d, spec, h, idx)
    if bg is not None and bg.phase in (RUN_FAILED, RUN_ERROR):
        _abort_for_analysis(d, bg, now)
        hold = True
    elif bg is not None and bg.phase == RUN_INCONCLUSIVE:
        paused_msg = (f"background analysis {bg.name} inconclusive: {bg.message}; promote starts a "
                      "new background analysis and continues, abort rolls back")
        inconclusive = True
        hold = True

    while idx < n and not hold:
        step = steps[idx]
        if step.set_weight is not None:
            w = step.set_weight
            need = replicas_for_weight(replicas, w)
            desired[h] = max(need, replicas_for_weight(replicas, weight))
            if canary_avail < need:
                waiting_msg = (f"step {idx}/{n} setWeight {w}: waiting for canary pods "
                               f"({canary_avail}/{need} available)")
                break
            if dynamic and w < weight:
                # Traffic goes back to a stable that was scaled down: scale it up first.
                heading_to = min(heading_to, w)
                stable_need = _stable_replicas(spec, w)
                if stable_avail < stable_need:
                    waiting_msg = (f"step {idx}/{n} setWeight {w}: waiting for stable pods before "
                                   f"shifting traffic back ({stable_avail}/{stable_need} available)")
                    break
            if weight != w:
                d.normal(Reason.WEIGHT_UPDATED, f"canary weight {weight} -> {w} (step {idx})")
            weight = w
            _step_done(d, idx, n, step, now)
            idx += 1
        elif step.pause_seconds is not None:
            pc = _pause_condition(st, Reason.CANARY_PAUSE)
            start = parse_time(pc.get("startTime")) if pc else None
            if start is None:
                # Stored with 1 s precision: round up, so a restart never shortens the pause.
                start = now if not now.microsecond else \
                    (now + timedelta(seconds=1)).replace(microsecond=0)
                _set_pause_condition(st, Reason.CANARY_PAUSE, start)
                d.normal(Reason.PAUSED, f"paused at step {idx}: {step.describe()}")
            if math.isinf(step.pause_seconds):
                paused_msg = f"paused at step {idx}/{n}: waiting for promote"
                break
            end = start + timedelta(seconds=step.pause_seconds)
            if now < end:
                # a fixed message (no countdown): a resync must not rewrite the status
                paused_msg = f"paused at step {idx}/{n}: {step.describe()} until {fmt_time(end)}"
                d.wake_in(_seconds_until(end, now))
                break
            _drop_pause_condition(st, Reason.CANARY_PAUSE)
            _step_done(d, idx, n, step, now)
            idx += 1
        else:
            run = _step_analysis(d, h, idx, step)
            if run.phase in RUN_ACTIVE:
                waiting_msg = _analysis_msg(idx, n, run)
                in_analysis = True
                break
            if run.phase == RUN_SUCCESSFUL:
                _step_done(d, idx, n, step, now)
                idx += 1
                continue
            if run.phase == RUN_INCONCLUSIVE:
                paused_msg = (f"step {idx}/{n}: analysis {run.name} inconclusive: {run.message}; "
                              "promote skips the analysis step, abort rolls back")
                inconclusive = True
                break
            _abort_for_analysis(d, run, now)
            break

    # The runs that stay: this attempt's background run and the current step's run (also
    # while a user holds the rollout). Every other run still measuring is stopped.
    keep = {bg.name} if bg is not None else set()
    if idx < n and steps[idx].analysis is not None:
        keep.add(_step_run_name(d, h, idx))
    st.current_step_index = idx
    if st.abort:  # an analysis failed
        _sweep_runs(d, set())
        _aborted(d, spec, rss, h, stable, desired, now)
        return
    st.canary_weight = weight
    desired.setdefault(h, replicas_for_weight(replicas, weight))
    desired[stable] = _stable_replicas(spec, min(weight, heading_to))

    if idx >= n and not hold:
        _sweep_runs(d, set())
        _promote_if_ready(d, spec, rss, h, stable, desired, now)
        return
    _sweep_runs(d, keep)
    if not inconclusive:
        _drop_pause_condition(st, Reason.INCONCLUSIVE)
    if hold and not inconclusive:
        if st.user_pause is not None:
            paused_msg = f"paused by {st.user_pause.get('user') or 'a user'}"
        else:
            paused_msg = "paused by spec.paused"
    if paused_msg is not None:
        by_spec = hold and st.user_pause is None and not inconclusive
        reason = (Reason.INCONCLUSIVE if inconclusive else Reason.PAUSED_BY_SPEC if by_spec
                  else Reason.PAUSED if hold else Reason.CANARY_PAUSE)
        prev = st.condition(Cond.PAUSED)
        if by_spec and (prev is None or prev.get("reason") != Reason.PAUSED_BY_SPEC):
            d.normal(Reason.PAUSED_BY_SPEC, "paused by spec.paused")
        st.phase = Phase.PAUSED
        if inconclusive:
            # Argo's fields, which users' scripts read: message and pause condition
            # InconclusiveAnalysisRun, a controller pause; the details in the condition.
            if _pause_condition(st, Reason.INCONCLUSIVE) is None:
                _set_pause_condition(st, Reason.INCONCLUSIVE, now.replace(microsecond=0))
            st.message = Reason.INCONCLUSIVE
            st.controller_pause = True
        else:
            st.message = paused_msg
            st.controller_pause = not hold
        st.set_condition(Cond.PAUSED, True, reason, paused_msg, now)
        st.progress_at = None  # time spent paused never counts towards the deadline
        d.actions.append(SetTraffic(stable, h, weight))
        return
    st.remove_condition(Cond.PAUSED)
    st.controller_pause = False
    st.phase = Phase.PROGRESSING
    st.message = waiting_msg or f"at step {idx}/{n}"
    if in_analysis:
        # Argo: time spent in an analysis step never counts towards the progress deadline
        # (the analysis has its own limits); the clock starts again when the step ends.
        st.progress_at = None
        st.set_condition(Cond.PROGRESSING, True, Reason.ROLLOUT_UPDATED, st.message, now)
    elif _check_deadline(d, spec, now):
        if st.abort:
            desired.pop(h, None)
            _aborted(d, spec, rss, h, stable, desired, now)
            return
    else:
        st.set_condition(Cond.PROGRESSING, True, Reason.ROLLOUT_UPDATED, st.message, now)
    d.actions.append(SetTraffic(stable, h, weight))


def _pause_condition(st: RolloutStatus, reason: str) -> dict[str, Any] | None:
    return next((p for p in st.pause_conditions if p.get("reason") == reason), None)


def _set_pause_condition(st: RolloutStatus, reason: str, start: datetime) -> None:
    _drop_pause_condition(st, reason)
    st.pause_conditions.append({"reason": reason, "startTime": fmt_time(start)})


def _drop_pause_condition(st: RolloutStatus, reason: str) -> None:
    st.pause_conditions = [p for p in st.pause_conditions if p.get("reason") != reason]


def _step_done(d: Decision, idx: int, n: int, step: Step, now: datetime) -> None:
    d.status.progress_at = fmt_time(now)
    d.normal(Reason.STEP_COMPLETED, f"step {idx + 1}/{n} completed: {step.describe()}")


def _promote_if_ready(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs], h: str,
                      stable: str, desired: dict[str, int], now: datetime) -> None:
    st = d.status
    desired[h] = spec.replicas
    avail = _available(rss, h)
    st.remove_condition(Cond.PAUSED)
    st.controller_pause = False
    st.pause_conditions = []
    if avail < spec.replicas or h not in rss:
        st.phase = Phase.PROGRESSING
        st.message = (f"all steps done: scaling canary to {spec.replicas} before promotion "
                      f"({avail} available)")
        if _check_deadline(d, spec, now):
            if st.abort:
                desired.pop(h, None)
                _aborted(d, spec, rss, h, stable, desired, now)
                return
        else:
            st.set_condition(Cond.PROGRESSING, True, Reason.ROLLOUT_UPDATED, st.message, now)
        d.actions.append(SetTraffic(stable, h, st.canary_weight))
        return
    # Promotion: stable Service/subset to the new revision and all traffic to it; the
    # previous stable keeps its pods for scaleDownDelaySeconds (in-flight requests, and a
    # quick way back).
    d.actions.append(SetTraffic(h, h, 0))
    desired.pop(stable, None)
    st.scale_down_at[stable] = fmt_time(now + timedelta(seconds=spec.canary.scale_down_delay_seconds))
    st.stable_rs = h
    st.canary_weight = 0
    st.promote_full = False
    st.current_step_index = len(spec.canary.steps)
    _set_healthy(st, h, now)
    d.normal(Reason.COMPLETED, f"revision {h} promoted to stable; previous stable {stable} "
             f"scales down in {spec.canary.scale_down_delay_seconds}s")


def _aborted(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs], h: str, stable: str,
             desired: dict[str, int], now: datetime) -> None:
    st = d.status
    replicas = spec.replicas
    desired[stable] = replicas
    st.draining = False  # an abort drains by the same rule, below
    route = st.canary_route_hash
    # the pods carrying the canary share: the canary, or a superseded one still draining
    carrier = route if route is not None and route != stable else h
    weight = (_weight_back_to_stable(spec, rss, stable, st.canary_weight, carrier=carrier)
              if carrier in rss else 0)
    if weight != st.canary_weight:
        d.normal(Reason.WEIGHT_UPDATED, f"canary weight {st.canary_weight} -> {weight} (aborted)")
    st.canary_weight = weight
    if weight > 0:
        st.canary_route_hash = carrier if carrier != h else None
        d.actions.append(SetTraffic(stable, carrier, weight))
        desired[carrier] = max(rss[carrier].replicas, replicas_for_weight(replicas, weight))
        d.wake_in(5)
    else:
        # As in Argo: once the canary carries nothing, the canary Service (or subset)
        # selects the stable pods again rather than an aborted revision losing its pods.
        st.canary_route_hash = stable
        d.actions.append(SetTraffic(stable, stable, 0))
    rs = rss.get(h)
    delay = spec.canary.abort_scale_down_delay_seconds
    if (weight > 0 and carrier == h) or delay == 0:
        # Still carrying traffic (its scale-down delay starts once traffic has left), or
        # abortScaleDownDelaySeconds: 0, which (as in Argo) leaves the canary running.
        st.scale_down_at.pop(h, None)
        if rs is not None:
            desired[h] = max(rs.replicas, desired.get(h, 0))
    elif h not in st.scale_down_at:
        st.scale_down_at[h] = fmt_time(now + timedelta(seconds=delay))
    st.pause_conditions = []
    st.controller_pause = False
    st.progress_at = None
    st.phase = Phase.DEGRADED
    st.message = f"{Reason.ABORTED}: {st.abort_reason or 'aborted'}"
    if weight > 0:
        st.message += f" ({weight}% still on the canary until the stable has scaled back up)"
    st.remove_condition(Cond.PAUSED)
    reason = (Reason.PROGRESS_DEADLINE if (st.abort_reason or "").startswith(Reason.PROGRESS_DEADLINE)
              else Reason.ABORTED)
    st.set_condition(Cond.PROGRESSING, False, reason, st.message, now)


def _check_deadline(d: Decision, spec: RolloutSpec, now: datetime) -> bool:
    """True when no progress was made for progressDeadlineSeconds (reported once).

    With progressDeadlineAbort a canary in progress is aborted too (``status.abort``);
    the caller then switches to the abort path.
    """
    st = d.status
    since = parse_time(st.progress_at)
    if since is None:
        st.progress_at = fmt_time(now)
        since = now
    deadline = since + timedelta(seconds=spec.progress_deadline_seconds)
    if now < deadline:
        d.wake_in(_seconds_until(deadline, now))
        return False
    msg = f"no progress for {spec.progress_deadline_seconds}s: {st.message}"
    cur = st.condition(Cond.PROGRESSING)
    if cur is None or cur.get("reason") != Reason.PROGRESS_DEADLINE:
        d.warning(Reason.PROGRESS_DEADLINE, msg)
    st.set_condition(Cond.PROGRESSING, False, Reason.PROGRESS_DEADLINE, msg, now)
    st.phase = Phase.DEGRADED
    st.message = f"{Reason.PROGRESS_DEADLINE}: {msg}"
    if spec.progress_deadline_abort and st.current_pod_hash != st.stable_rs and not st.abort:
        st.abort = True
        st.aborted_at = fmt_time(now)
        st.aborted_by = "controller"
        st.abort_reason = st.message
        d.warning(Reason.ABORTED, "rollout aborted: progress deadline exceeded")
    return True


def _scale_old(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs],
               desired: dict[str, int], now: datetime) -> None:
    """Old ReplicaSets (and an aborted canary) scale to 0 at their stored deadline."""
    st = d.status
    for hsh, rs in rss.items():
        if hsh in desired:
            continue
        if rs.replicas == 0:
            st.scale_down_at.pop(hsh, None)
            continue
        deadline = parse_time(st.scale_down_at.get(hsh))
        if deadline is None:
            deadline = now + timedelta(seconds=spec.canary.scale_down_delay_seconds)
            st.scale_down_at[hsh] = fmt_time(deadline)
        if now >= deadline:
            desired[hsh] = 0
            d.normal(Reason.SCALED_DOWN, f"scaled down ReplicaSet {rs.name} to 0")
        else:
            desired[hsh] = rs.replicas
            d.wake_in(_seconds_until(deadline, now))
    for hsh in list(st.scale_down_at):
        if hsh not in rss or (hsh in (st.stable_rs, st.current_pod_hash) and not st.abort):
            st.scale_down_at.pop(hsh)


def _emit_replica_actions(d: Decision, rss: dict[str, ReplicaSetObs], desired: dict[str, int],
                          h: str) -> None:
    creates: list[ClusterAction] = []
    ups: list[ClusterAction] = []
    downs: list[ClusterAction] = []
    for hsh, count in desired.items():
        rs = rss.get(hsh)
        if rs is None:
            if hsh == h:
                rev = max((r.revision for r in rss.values()), default=0) + 1
                creates.append(CreateReplicaSet(hsh, count, rev))
        elif count > rs.replicas:
            ups.append(ScaleReplicaSet(hsh, count))
        elif count < rs.replicas:
            downs.append(ScaleReplicaSet(hsh, count))
    # Pods come up before traffic moves (the steps only shift traffic to pods they saw
    # available) and go away only after traffic has left them. Runs are stopped after the
    # traffic change (Argo reconciles analysis after traffic): a run that cannot be
    # stopped must not hold back an abort.
    stops = [a for a in d.actions if isinstance(a, TerminateAnalysisRun)]
    rest = [a for a in d.actions if not isinstance(a, TerminateAnalysisRun)]
    d.actions[:] = [*creates, *ups, *rest, *downs, *stops]


def _replica_counts(st: RolloutStatus, rss: dict[str, ReplicaSetObs], h: str) -> None:
    st.replicas = sum(r.replicas for r in rss.values())
    st.ready_replicas = sum(r.ready for r in rss.values())
    st.available_replicas = sum(r.available for r in rss.values())
    st.updated_replicas = rss[h].replicas if h in rss else 0


def _prune_history(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs],
                   desired: dict[str, int], keep: set[str | None]) -> None:
    idle = sorted((r for r in rss.values() if r.hash not in keep and r.replicas == 0
                   and desired.get(r.hash, 0) == 0), key=lambda r: (r.revision, r.hash))
    excess = len(idle) - spec.revision_history_limit
    for r in idle[:max(excess, 0)]:
        d.actions.append(DeleteReplicaSet(r.hash))


# --- analysis --------------------------------------------------------------------------

RUN_SUCCESSFUL, RUN_FAILED, RUN_INCONCLUSIVE, RUN_ERROR = "Successful", "Failed", "Inconclusive", "Error"
RUN_ACTIVE = ("", "Pending", "Running")


def _analysis_state(st: RolloutStatus) -> dict[str, Any]:
    a = st.extra.get("analysis")
    if not isinstance(a, dict):
        a = {}
        st.extra["analysis"] = a
    return a


def run_name(rollout: str, h: str, attempt: int, kind: str) -> str:
    return f"{rollout}-{h}-{attempt}-{kind}"


def _observe_run(d: Decision, name: str, analysis: dict[str, Any], kind: str,
                 idx: int | None, h: str) -> AnalysisRunObs:
    run = d.analysis_runs.get(name)
    if run is None:
        d.actions.append(CreateAnalysisRun(name=name, analysis=analysis, kind=kind, step_index=idx,
                                           stable_hash=d.status.stable_rs or "", canary_hash=h))
        run = AnalysisRunObs(name, "Pending", "starting")
        d.analysis_runs[name] = run
    a = _analysis_state(d.status)
    prev_raw = a.get(kind)
    prev: dict[str, Any] = prev_raw if isinstance(prev_raw, dict) else {}
    a[kind] = {"name": name, "phase": run.phase, "message": run.message}
    if prev.get("name") == name and prev.get("phase") != run.phase and run.phase not in RUN_ACTIVE:
        reason = {RUN_SUCCESSFUL: "AnalysisRunSuccessful", RUN_FAILED: "AnalysisRunFailed",
                  RUN_INCONCLUSIVE: "AnalysisRunInconclusive", RUN_ERROR: "AnalysisRunError"}.get(run.phase)
        if reason:
            text = f"analysis {name} {run.phase.lower()}: {run.message}"
            if run.phase == RUN_SUCCESSFUL:
                d.normal(reason, text)
            else:
                d.warning(reason, text)
    return run


def _attempt(d: Decision) -> int:
    return int(_analysis_state(d.status).get("attempt") or 0)


def _step_run_name(d: Decision, h: str, idx: int) -> str:
    return run_name(d.rollout, h, _attempt(d), f"step{idx}")


def _step_analysis(d: Decision, h: str, idx: int, step: Step) -> AnalysisRunObs:
    return _observe_run(d, _step_run_name(d, h, idx), step.analysis or {}, "step", idx, h)


def _background_run_name(d: Decision, h: str) -> str:
    """``bg``, then ``bg1``, ``bg2``... as promotes replace inconclusive runs."""
    k = int(_analysis_state(d.status).get("backgroundRestarts") or 0)
    return run_name(d.rollout, h, _attempt(d), f"bg{k}" if k else "bg")


def _background_run(d: Decision, spec: RolloutSpec, h: str) -> AnalysisRunObs | None:
    """The current background run as observed, if the spec has one."""
    if not isinstance(spec.canary.background_analysis, dict):
        return None
    return d.analysis_runs.get(_background_run_name(d, h))


def _background_analysis(d: Decision, spec: RolloutSpec, h: str, idx: int) -> AnalysisRunObs | None:
    bg = spec.canary.background_analysis
    if not isinstance(bg, dict):
        return None
    starting = bg.get("startingStep")
    if isinstance(starting, int) and idx < starting:
        return None
    name = _background_run_name(d, h)
    existing = d.analysis_runs.get(name)
    if existing is not None and existing.terminated and existing.phase not in (RUN_FAILED, RUN_ERROR):
        return None  # we stopped it (promotion under way): its end is not a verdict
    return _observe_run(d, name, bg, "background", None, h)


def _analysis_msg(idx: int, n: int, run: AnalysisRunObs | None) -> str:
    if run is None:
        return f"step {idx}/{n}: starting analysis"
    return f"step {idx}/{n}: analysis {run.name} {run.phase.lower()}" + (
        f": {run.message}" if run.message else "")


def _abort_for_analysis(d: Decision, run: AnalysisRunObs, now: datetime) -> None:
    st = d.status
    if st.abort:
        return
    st.abort = True
    st.aborted_at = fmt_time(now)
    st.aborted_by = "analysis"
    st.abort_reason = f"analysis {run.name} {run.phase.lower()}: {run.message}"
    d.warning(Reason.ABORTED, f"rollout aborted: {st.abort_reason}; traffic back to stable")


def _sweep_runs(d: Decision, keep: set[str]) -> None:
    """Stop every run of this rollout still measuring that is not current (Argo cancels all
    but the current runs): a step promoted past, a superseded revision or attempt, an
    inconclusive run replaced, an abort, a promotion."""
    started = {a.name for a in d.actions if isinstance(a, CreateAnalysisRun)}
    stopping = {a.name for a in d.actions if isinstance(a, TerminateAnalysisRun)}
    for name in sorted(d.analysis_runs):
        run = d.analysis_runs[name]
        if name in keep or name in started or name in stopping:
            continue
        if run.phase in RUN_ACTIVE and not run.terminated:
            d.actions.append(TerminateAnalysisRun(name))


def restart_pending(spec: RolloutSpec, status: RolloutStatus, now: datetime) -> bool:
    """Whether spec.restartAt asks for pods to be restarted now (the reconciler then
    gathers the pods)."""
    ra = parse_time(spec.restart_at)
    done = parse_time(status.restarted_at)
    return ra is not None and ra <= now and (done is None or done < ra)


def _restart_pods(d: Decision, spec: RolloutSpec, obs: Observations, rss: dict[str, ReplicaSetObs],
                  desired: dict[str, int], now: datetime) -> None:
    """Argo's restartAt: replace every pod created before it, one at a time, only while
    every pod is available (so capacity never drops by more than one pod)."""
    st = d.status
    ra = parse_time(spec.restart_at)
    if ra is None or st.abort:
        return
    if ra > now:
        d.wake_in(_seconds_until(ra, now))
        return
    if not restart_pending(spec, st, now):
        return
    old = sorted((p for p in obs.pods if p.created < ra and not p.deleting), key=lambda p: p.created)
    if not old:
        st.restarted_at = spec.restart_at
        d.normal("RolloutRestarted", f"all pods restarted (restartAt {spec.restart_at})")
        return
    steady = all(rss[h].available >= rss[h].replicas and desired.get(h, rss[h].replicas) == rss[h].replicas
                 for h in rss if rss[h].replicas > 0)
    if steady and not any(p.deleting for p in obs.pods):
        d.actions.append(DeletePod(old[0].name))
        d.normal("RestartingPod",
                 f"restarting pod {old[0].name} ({len(old)} left, restartAt {spec.restart_at})")
    d.wake_in(1)

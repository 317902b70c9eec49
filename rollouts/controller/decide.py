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
(stable_rs, current_pod_hash, canary_weight); a decision on an invalid spec carries no
action at all. Actions come in a safe order: new and scaled-up ReplicaSets first, then
the traffic change, then scale-downs (pods leave only after traffic left them), then
deletions of old revisions.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rollouts.api.actions import Action, check_action
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


@dataclass(frozen=True)
class CreateAnalysisRun:
    """Create run ``name`` from a step's (or the background) ``analysis`` block."""

    name: str
    analysis: dict[str, Any]
    kind: str  # "step" | "background"
    step_index: int | None = None


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
        return _invalid(d, errors or ["the pod template could not be resolved"], now)
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
    _prune_history(d, spec, rss, desired, {stable, h, st.stable_rs})
    if st.phase != ro.status.phase and st.phase == Phase.HEALTHY:
        d.normal(Reason.HEALTHY, "rollout is healthy")
    return d


def _invalid(d: Decision, errors: list[str], now: datetime) -> Decision:
    """Report, and touch nothing on the cluster: traffic stays where status says it is."""
    st = d.status
    msg = "; ".join(errors)
    cur = st.condition(Cond.INVALID_SPEC)
    st.set_condition(Cond.INVALID_SPEC, True, Reason.INVALID_SPEC, msg, now)
    st.phase = Phase.DEGRADED
    st.message = f"InvalidSpec: {msg}"
    if cur is None or cur.get("message") != msg:
        d.warning(Reason.INVALID_SPEC, msg)
    if st.pending_action is not None:
        _reject(d, st.pending_action, "the spec is invalid", now)
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
    """Step 0 with no traffic on the canary (the new steps decide the weight)."""
    st.current_step_index = 0
    st.current_step_hash = steps_hash(spec)
    st.pause_conditions = []
    st.controller_pause = False
    st.promote_full = False
    st.canary_weight = 0
    st.progress_at = fmt_time(now)
    st.remove_condition(Cond.PAUSED)


def _clear_abort(st: RolloutStatus) -> None:
    st.abort = False
    st.aborted_at = st.aborted_by = st.abort_reason = None


def _new_revision(d: Decision, spec: RolloutSpec, h: str, now: datetime) -> None:
    st = d.status
    old = st.current_pod_hash
    if old and old != st.stable_rs and old != h:
        # The superseded canary loses its traffic in this decision and leaves at once.
        st.scale_down_at[old] = fmt_time(now)
    st.current_pod_hash = h
    _clear_abort(st)
    st.user_pause = None
    st.scale_down_at.pop(h, None)
    _restart_steps(st, spec, now)
    if h == st.stable_rs:
        st.current_step_index = len(spec.canary.steps)
        d.normal(Reason.ROLLOUT_UPDATED, f"template is back to the stable revision {h}")
    else:
        st.remove_condition(Cond.COMPLETED)
        d.normal(Reason.ROLLOUT_UPDATED, f"new revision {h}: starting canary steps")


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
    if act.action == "promote" and act.full:
        st.promote_full = True
        st.user_pause = None
        d.normal(Reason.PROMOTED_FULL, f"full promotion requested by {who}: skipping all remaining steps")
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
        st.abort = True
        st.aborted_at = fmt_time(now)
        st.aborted_by = who
        st.abort_reason = f"aborted by {who}"
        d.warning(Reason.ABORTED, f"rollout aborted by {who}: traffic back to stable")
    elif act.action == "retry":
        _clear_abort(st)
        a = _analysis_state(st)
        a["attempt"] = int(a.get("attempt") or 0) + 1  # fresh AnalysisRuns for the new attempt
        a.pop("step", None)
        a.pop("background", None)
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
    st.canary_weight = 0
    st.current_step_index = len(spec.canary.steps)
    st.current_step_hash = steps_hash(spec)
    st.pause_conditions = []
    st.controller_pause = False
    st.promote_full = False
    _clear_abort(st)
    st.user_pause = None
    st.remove_condition(Cond.PAUSED)
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
        _terminate_runs(d)
        _aborted(d, spec, rss, h, stable, desired, now)
        return

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
    hold = st.user_pause is not None or spec.paused
    bg = _background_analysis(d, spec, h, idx) if not hold else None
    if bg is not None and bg.phase in (RUN_FAILED, RUN_ERROR):
        _abort_for_analysis(d, bg, now)
    elif bg is not None and bg.phase == RUN_INCONCLUSIVE:
        paused_msg = (f"background analysis {bg.name} inconclusive: {bg.message} "
                      "(promote to continue, or abort)")
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
            pc = next((p for p in st.pause_conditions if p.get("reason") == Reason.CANARY_PAUSE), None)
            start = parse_time(pc.get("startTime")) if pc else None
            if start is None:
                # Stored with 1 s precision: round up, so a restart never shortens the pause.
                start = now if not now.microsecond else \
                    (now + timedelta(seconds=1)).replace(microsecond=0)
                st.pause_conditions = [{"reason": Reason.CANARY_PAUSE, "startTime": fmt_time(start)}]
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
            st.pause_conditions = []
            _step_done(d, idx, n, step, now)
            idx += 1
        else:
            run = _step_analysis(d, h, idx, n, step)
            if run is None or run.phase in RUN_ACTIVE:
                waiting_msg = _analysis_msg(idx, n, run)
                break
            if run.phase == RUN_SUCCESSFUL:
                _step_done(d, idx, n, step, now)
                idx += 1
                continue
            if run.phase == RUN_INCONCLUSIVE:
                paused_msg = (f"step {idx}/{n}: analysis {run.name} inconclusive: {run.message} "
                              "(promote to continue, or abort)")
                inconclusive = True
                break
            _abort_for_analysis(d, run, now)
            break

    _terminate_stale_step_run(d, steps, idx, h)
    if st.abort:  # an analysis failed
        st.current_step_index = idx
        _terminate_runs(d)
        _aborted(d, spec, rss, h, stable, desired, now)
        return
    st.current_step_index = idx
    st.canary_weight = weight
    desired.setdefault(h, replicas_for_weight(replicas, weight))
    desired[stable] = _stable_replicas(spec, min(weight, heading_to))

    if idx >= n and not hold:
        _terminate_runs(d)
        _promote_if_ready(d, spec, rss, h, stable, desired, now)
        return
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
    if _check_deadline(d, spec, now):
        if st.abort:
            desired.pop(h, None)
            _aborted(d, spec, rss, h, stable, desired, now)
            return
    else:
        st.set_condition(Cond.PROGRESSING, True, Reason.ROLLOUT_UPDATED, st.message, now)
    d.actions.append(SetTraffic(stable, h, weight))


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
    weight = 0
    if spec.canary.dynamic_stable_scale and st.canary_weight > 0 and replicas > 0:
        # The stable was scaled down for the canary: it takes traffic back only as fast
        # as its pods come back, instead of being flooded at once.
        carries = 100 * _available(rss, stable) // replicas
        weight = min(st.canary_weight, max(0, 100 - carries))
    if weight != st.canary_weight:
        d.normal(Reason.WEIGHT_UPDATED, f"canary weight {st.canary_weight} -> {weight} (aborted)")
    st.canary_weight = weight
    d.actions.append(SetTraffic(stable, h, weight))
    rs = rss.get(h)
    delay = spec.canary.abort_scale_down_delay_seconds
    if weight > 0 or delay == 0:
        # Still carrying traffic (its scale-down delay starts once traffic has left), or
        # abortScaleDownDelaySeconds: 0, which (as in Argo) leaves the canary running.
        st.scale_down_at.pop(h, None)
        if rs is not None:
            desired[h] = max(rs.replicas, replicas_for_weight(replicas, weight))
        if weight > 0:
            d.wake_in(5)
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
    # available) and go away only after traffic has left them.
    d.actions[:] = [*creates, *ups, *d.actions, *downs]


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
                 idx: int | None) -> AnalysisRunObs:
    run = d.analysis_runs.get(name)
    if run is None:
        d.actions.append(CreateAnalysisRun(name, analysis, kind, idx))
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


def _step_analysis(d: Decision, h: str, idx: int, n: int, step: Step) -> AnalysisRunObs | None:
    attempt = int(_analysis_state(d.status).get("attempt") or 0)
    name = run_name(d.rollout, h, attempt, f"step{idx}")
    return _observe_run(d, name, step.analysis or {}, "step", idx)


def _background_analysis(d: Decision, spec: RolloutSpec, h: str, idx: int) -> AnalysisRunObs | None:
    bg = spec.canary.background_analysis
    if not isinstance(bg, dict):
        return None
    starting = bg.get("startingStep")
    if isinstance(starting, int) and idx < starting:
        return None
    attempt = int(_analysis_state(d.status).get("attempt") or 0)
    name = run_name(d.rollout, h, attempt, "bg")
    existing = d.analysis_runs.get(name)
    if existing is not None and existing.terminated and existing.phase not in (RUN_FAILED, RUN_ERROR):
        return None  # we stopped it (promotion under way): its end is not a verdict
    return _observe_run(d, name, bg, "background", None)


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


def _terminate_runs(d: Decision) -> None:
    """Stop runs that are still measuring (the step or the rollout is over)."""
    a = _analysis_state(d.status)
    for kind in ("step", "background"):
        info = a.get(kind)
        if not isinstance(info, dict):
            continue
        run = d.analysis_runs.get(str(info.get("name")))
        if run is not None and run.phase in RUN_ACTIVE and not run.terminated:
            d.actions.append(TerminateAnalysisRun(run.name))


def _terminate_stale_step_run(d: Decision, steps: tuple[Step, ...], idx: int, h: str) -> None:
    """A step run left behind (its step was promoted past) stops measuring."""
    info = _analysis_state(d.status).get("step")
    if not isinstance(info, dict):
        return
    attempt = int(_analysis_state(d.status).get("attempt") or 0)
    current = (run_name(d.rollout, h, attempt, f"step{idx}")
               if idx < len(steps) and steps[idx].analysis is not None else None)
    run = d.analysis_runs.get(str(info.get("name")))
    if run is not None and run.name != current and run.phase in RUN_ACTIVE and not run.terminated:
        d.actions.append(TerminateAnalysisRun(run.name))


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

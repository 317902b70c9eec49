"""The canary step logic: a pure function of (rollout, observations, now).

``decide`` reads the Rollout's spec and status plus what the reconciler observed on the
cluster (our ReplicaSets, errors in the objects the spec names) and returns the new
status, the ordered actions that bring the cluster there, the Events to emit and when
to look again. It performs no I/O, so every behaviour is unit-testable and a restarted
controller recomputes the same decision from the stored status (pause deadlines come
from stored start times, never from in-memory timers).

The reconciler runs the actions in order and writes the status only if all succeeded,
so ``status`` never claims a traffic weight that was not written.
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
class Observations:
    template: dict[str, Any] | None
    replica_sets: dict[str, ReplicaSetObs] = field(default_factory=dict)
    # Problems with objects the spec names (missing Service, route not found, ...).
    environment_errors: tuple[str, ...] = ()


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


ClusterAction = CreateReplicaSet | ScaleReplicaSet | DeleteReplicaSet | SetTraffic


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

    def wake_in(self, seconds: float) -> None:
        s = max(0.5, seconds)
        self.requeue_after = s if self.requeue_after is None else min(self.requeue_after, s)

    def normal(self, reason: str, message: str) -> None:
        self.events.append(Event("Normal", reason, message))

    def warning(self, reason: str, message: str) -> None:
        self.events.append(Event("Warning", reason, message))


# --- helpers -------------------------------------------------------------------------


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def template_hash(template: dict[str, Any]) -> str:
    """Stable short hash of a pod template: the label value that names a revision."""
    return _digest(template)[:10]


def steps_hash(spec: RolloutSpec) -> str:
    return _digest(spec.raw.get("strategy", {}).get("canary", {}).get("steps") or [])[:10]


def replicas_for_weight(replicas: int, weight: int) -> int:
    return math.ceil(replicas * weight / 100)


def _seconds_until(deadline: datetime, now: datetime) -> float:
    return (deadline - now).total_seconds()


# --- the decision --------------------------------------------------------------------


def decide(ro: RolloutInput, obs: Observations, now: datetime) -> Decision:
    st = ro.status.copy()
    d = Decision(st)
    st.observed_generation = ro.generation
    errors = [*ro.spec_errors, *obs.environment_errors]
    if ro.spec is None or obs.template is None or errors:
        return _invalid(d, errors or ["the pod template could not be resolved"], now)
    had_invalid = st.condition(Cond.INVALID_SPEC) is not None
    st.remove_condition(Cond.INVALID_SPEC)
    if had_invalid:
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
        st.stable_rs = st.current_pod_hash = h
        st.current_step_index = n
        st.current_step_hash = steps_hash(spec)
        st.canary_weight = 0
        st.progress_at = fmt_time(now)
        d.normal(Reason.NEW_RS, f"first revision {h} deployed without steps")
    elif st.current_pod_hash != h:
        _new_revision(d, spec, h, now)
    elif st.current_step_hash != steps_hash(spec) and h != st.stable_rs:
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

    _scale_old(d, spec, rss, desired, now)
    _emit_replica_actions(d, rss, desired, h)
    _replica_counts(st, rss, h)
    _prune_history(d, spec, rss, desired, {stable, h})
    if st.phase != ro.status.phase and st.phase == Phase.HEALTHY:
        d.normal(Reason.HEALTHY, "rollout is healthy")
    return d


def _invalid(d: Decision, errors: list[str], now: datetime) -> Decision:
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
    """If status was lost (or names a deleted ReplicaSet), adopt what runs on the cluster."""
    if st.stable_rs is not None and (st.stable_rs in rss or not rss):
        return
    if not rss:
        st.stable_rs = None
        return
    candidates = [r for r in rss.values() if r.hash != h] or list(rss.values())
    best = max(candidates, key=lambda r: (r.available, r.revision))
    st.stable_rs = best.hash
    if st.current_pod_hash is None:
        st.current_pod_hash = best.hash


def _restart_steps(st: RolloutStatus, spec: RolloutSpec, now: datetime) -> None:
    st.current_step_index = 0
    st.current_step_hash = steps_hash(spec)
    st.pause_conditions = []
    st.controller_pause = False
    st.promote_full = False
    st.progress_at = fmt_time(now)
    st.remove_condition(Cond.PAUSED)


def _new_revision(d: Decision, spec: RolloutSpec, h: str, now: datetime) -> None:
    st = d.status
    old = st.current_pod_hash
    if old and old != st.stable_rs:
        st.scale_down_at[old] = fmt_time(now)  # the superseded canary leaves at once
    st.current_pod_hash = h
    st.abort = False
    st.aborted_at = st.aborted_by = st.abort_reason = None
    st.user_pause = None
    st.scale_down_at.pop(h, None)
    _restart_steps(st, spec, now)
    st.canary_weight = 0
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
    idx = min(st.current_step_index or 0, n)
    who = act.user
    if act.action == "promote" and act.full:
        st.promote_full = True
        d.normal(Reason.PROMOTED_FULL, f"full promotion requested by {who}: skipping all remaining steps")
    elif act.action == "promote":
        # Ends a pause; on any other step skips it (Argo's meaning of promote).
        st.pause_conditions = []
        st.current_step_index = min(idx + 1, n)
        step = spec.canary.steps[idx].describe() if idx < n else "promotion"
        d.normal(Reason.PROMOTED, f"promoted by {who}: step {idx} ({step}) ended")
    elif act.action == "abort":
        st.abort = True
        st.aborted_at = fmt_time(now)
        st.aborted_by = who
        st.abort_reason = f"aborted by {who}"
        d.warning(Reason.ABORTED, f"rollout aborted by {who}: traffic back to stable")
        _schedule_abort_scale_down(st, spec, now)
    elif act.action == "retry":
        st.abort = False
        st.aborted_at = st.aborted_by = st.abort_reason = None
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
        d.normal(Reason.RESUMED, f"resumed by {who}")
    st.last_action = {**act.to_dict(), "result": "Applied", "processedAt": fmt_time(now),
                      "stepIndex": idx}
    st.pending_action = None


def _schedule_abort_scale_down(st: RolloutStatus, spec: RolloutSpec, now: datetime) -> None:
    if st.current_pod_hash and st.current_pod_hash != st.stable_rs:
        at = now + timedelta(seconds=spec.canary.abort_scale_down_delay_seconds)
        st.scale_down_at[st.current_pod_hash] = fmt_time(at)


def _available(rss: dict[str, ReplicaSetObs], h: str) -> int:
    r = rss.get(h)
    return r.available if r else 0


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
    st.abort = False
    st.aborted_at = st.aborted_by = st.abort_reason = None
    st.user_pause = None
    st.remove_condition(Cond.PAUSED)
    d.actions.append(SetTraffic(h, h, 0))
    avail = _available(rss, h)
    if avail >= spec.replicas and h in rss:
        st.phase = Phase.HEALTHY
        st.message = ""
        st.progress_at = fmt_time(now)
        st.set_condition(Cond.PROGRESSING, True, "NewReplicaSetAvailable",
                         f"revision {h} is fully rolled out", now)
        st.set_condition(Cond.AVAILABLE, True, Reason.AVAILABLE, "rollout has minimum availability",
                         now)
        st.set_condition(Cond.COMPLETED, True, Reason.COMPLETED, "rollout completed", now)
    else:
        st.phase = Phase.PROGRESSING
        st.message = f"waiting for stable ReplicaSet {h}: {avail}/{spec.replicas} available"
        st.set_condition(Cond.AVAILABLE, False, Reason.NOT_AVAILABLE, st.message, now)
        _check_deadline(d, spec, now)


def _canary(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs], h: str, stable: str,
            desired: dict[str, int], now: datetime) -> None:
    st = d.status
    replicas = spec.replicas
    st.remove_condition(Cond.COMPLETED)
    stable_avail = _available(rss, stable)
    st.set_condition(Cond.AVAILABLE, stable_avail >= replicas,
                     Reason.AVAILABLE if stable_avail >= replicas else Reason.NOT_AVAILABLE,
                     f"stable ReplicaSet {stable}: {stable_avail}/{replicas} available", now)

    if st.abort:
        _aborted(d, spec, rss, h, stable, desired, now)
        return

    steps = spec.canary.steps
    n = len(steps)
    idx = n if st.promote_full else min(max(st.current_step_index or 0, 0), n)
    weight = st.canary_weight
    paused_msg: str | None = None
    waiting_msg: str | None = None
    hold = st.user_pause is not None or spec.paused

    while idx < n and not hold:
        step = steps[idx]
        if step.set_weight is not None:
            need = replicas_for_weight(replicas, step.set_weight)
            desired[h] = max(need, replicas_for_weight(replicas, weight))
            if _available(rss, h) < need:
                waiting_msg = (f"step {idx}/{n} setWeight {step.set_weight}: waiting for canary "
                               f"pods ({_available(rss, h)}/{need} available)")
                break
            if weight != step.set_weight:
                d.normal(Reason.WEIGHT_UPDATED,
                         f"canary weight {weight} -> {step.set_weight} (step {idx})")
            weight = step.set_weight
            _step_done(d, idx, n, step, now)
            idx += 1
        elif step.is_pause:
            pc = next((p for p in st.pause_conditions if p.get("reason") == Reason.CANARY_PAUSE), None)
            start = parse_time(pc.get("startTime")) if pc else None
            if start is None:
                start = now
                st.pause_conditions = [{"reason": Reason.CANARY_PAUSE, "startTime": fmt_time(now)}]
                d.normal(Reason.PAUSED, f"paused at step {idx}: {step.describe()}")
            assert step.pause_seconds is not None
            if math.isinf(step.pause_seconds):
                paused_msg = f"paused at step {idx}/{n}: waiting for promote"
                break
            end = start + timedelta(seconds=step.pause_seconds)
            if now < end:
                paused_msg = (f"paused at step {idx}/{n}: {math.ceil(_seconds_until(end, now))}s "
                              "left")
                d.wake_in(_seconds_until(end, now))
                break
            st.pause_conditions = []
            _step_done(d, idx, n, step, now)
            idx += 1
        else:
            # Analysis steps are run by the analysis layer; without it, they hold here.
            waiting_msg = f"step {idx}/{n}: analysis steps are not supported by this controller yet"
            break

    st.current_step_index = idx
    st.canary_weight = weight
    desired.setdefault(h, replicas_for_weight(replicas, weight))
    stable_target = (replicas - replicas_for_weight(replicas, weight)
                     if spec.canary.dynamic_stable_scale else replicas)
    # Never shrink stable below what the traffic it carries needs.
    desired[stable] = max(stable_target, 0)

    if idx >= n and not hold:
        _promote_if_ready(d, spec, rss, h, stable, desired, weight, now)
        return
    d.actions.append(SetTraffic(stable, h, weight))
    if hold:
        who = st.user_pause.get("user") if st.user_pause else None
        paused_msg = f"paused by {who}" if who else "paused by spec.paused"
    if paused_msg is not None:
        st.phase = Phase.PAUSED
        st.message = paused_msg
        st.controller_pause = not hold
        st.set_condition(Cond.PAUSED, True, Reason.PAUSED_BY_SPEC if hold and not st.user_pause
                         else Reason.CANARY_PAUSE, paused_msg, now)
        st.progress_at = fmt_time(now)  # time spent paused never counts towards the deadline
        return
    st.remove_condition(Cond.PAUSED)
    st.controller_pause = False
    st.phase = Phase.PROGRESSING
    st.message = waiting_msg or f"at step {idx}/{n}"
    st.set_condition(Cond.PROGRESSING, True, Reason.ROLLOUT_UPDATED, st.message, now)
    if waiting_msg is not None:
        _check_deadline(d, spec, now)


def _step_done(d: Decision, idx: int, n: int, step: Step, now: datetime) -> None:
    d.status.progress_at = fmt_time(now)
    d.normal(Reason.STEP_COMPLETED, f"step {idx + 1}/{n} completed: {step.describe()}")


def _promote_if_ready(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs], h: str,
                      stable: str, desired: dict[str, int], weight: int, now: datetime) -> None:
    st = d.status
    desired[h] = spec.replicas
    avail = _available(rss, h)
    if avail < spec.replicas or h not in rss:
        d.actions.append(SetTraffic(stable, h, weight))
        st.phase = Phase.PROGRESSING
        st.message = f"all steps done: scaling canary to {spec.replicas} before promotion ({avail} available)"
        st.remove_condition(Cond.PAUSED)
        _check_deadline(d, spec, now)
        return
    # Promotion: stable Service/subset to the new revision and all traffic to it.
    d.actions.append(SetTraffic(h, h, 0))
    st.scale_down_at[stable] = fmt_time(now + timedelta(seconds=spec.canary.scale_down_delay_seconds))
    st.stable_rs = h
    st.canary_weight = 0
    st.pause_conditions = []
    st.promote_full = False
    st.controller_pause = False
    st.current_step_index = len(spec.canary.steps)
    st.progress_at = fmt_time(now)
    st.phase = Phase.HEALTHY
    st.message = ""
    st.remove_condition(Cond.PAUSED)
    st.set_condition(Cond.PROGRESSING, True, "NewReplicaSetAvailable",
                     f"revision {h} is fully rolled out", now)
    st.set_condition(Cond.COMPLETED, True, Reason.COMPLETED, "rollout completed", now)
    st.set_condition(Cond.AVAILABLE, True, Reason.AVAILABLE, "rollout has minimum availability", now)
    d.normal(Reason.COMPLETED, f"revision {h} promoted to stable; previous stable {stable} "
             f"scales down in {spec.canary.scale_down_delay_seconds}s")


def _aborted(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs], h: str, stable: str,
             desired: dict[str, int], now: datetime) -> None:
    st = d.status
    desired[stable] = spec.replicas
    if spec.canary.dynamic_stable_scale and _available(rss, stable) < spec.replicas \
            and st.canary_weight > 0:
        # Stable was shrunk for the canary: it must be able to carry the traffic first.
        d.actions.append(SetTraffic(stable, h, st.canary_weight))
        d.wake_in(2)
    else:
        st.canary_weight = 0
        d.actions.append(SetTraffic(stable, h, 0))
    if h not in st.scale_down_at:
        _schedule_abort_scale_down(st, spec, now)
    st.pause_conditions = []
    st.controller_pause = False
    st.phase = Phase.DEGRADED
    st.message = f"RolloutAborted: {st.abort_reason or 'aborted'}"
    st.remove_condition(Cond.PAUSED)
    st.set_condition(Cond.PROGRESSING, False, Reason.ABORTED, st.message, now)


def _check_deadline(d: Decision, spec: RolloutSpec, now: datetime) -> None:
    st = d.status
    since = parse_time(st.progress_at)
    if since is None:
        st.progress_at = fmt_time(now)
        since = now
    deadline = since + timedelta(seconds=spec.progress_deadline_seconds)
    if now < deadline:
        d.wake_in(_seconds_until(deadline, now))
        return
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
        st.abort_reason = "progress deadline exceeded"
        st.canary_weight = 0
        _schedule_abort_scale_down(st, spec, now)
        d.warning(Reason.ABORTED, "rollout aborted: progress deadline exceeded")
        d.actions[:] = [a for a in d.actions if not isinstance(a, SetTraffic)]
        assert st.stable_rs is not None and st.current_pod_hash is not None
        d.actions.append(SetTraffic(st.stable_rs, st.current_pod_hash, 0))


def _scale_old(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs],
               desired: dict[str, int], now: datetime) -> None:
    """Old ReplicaSets (and an aborted canary) scale to 0 at their stored deadline."""
    st = d.status
    for hsh, rs in rss.items():
        if hsh in desired:
            continue
        deadline = parse_time(st.scale_down_at.get(hsh))
        if rs.replicas == 0:
            st.scale_down_at.pop(hsh, None)
            desired.pop(hsh, None)
            continue
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
        if hsh not in rss:
            st.scale_down_at.pop(hsh)


def _emit_replica_actions(d: Decision, rss: dict[str, ReplicaSetObs], desired: dict[str, int],
                          h: str) -> None:
    creates: list[CreateReplicaSet] = []
    scales: list[ScaleReplicaSet] = []
    for hsh, count in desired.items():
        rs = rss.get(hsh)
        if rs is None:
            if hsh == h:
                rev = max((r.revision for r in rss.values()), default=0) + 1
                creates.append(CreateReplicaSet(hsh, count, rev))
        elif rs.replicas != count:
            scales.append(ScaleReplicaSet(hsh, count))
    # Replica changes go first: traffic only moves to pods that the steps saw ready.
    d.actions[:0] = [*creates, *scales]


def _replica_counts(st: RolloutStatus, rss: dict[str, ReplicaSetObs], h: str) -> None:
    st.replicas = sum(r.replicas for r in rss.values())
    st.ready_replicas = sum(r.ready for r in rss.values())
    st.available_replicas = sum(r.available for r in rss.values())
    st.updated_replicas = rss[h].replicas if h in rss else 0


def _prune_history(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs],
                   desired: dict[str, int], keep: set[str]) -> None:
    idle = sorted((r for r in rss.values() if r.hash not in keep and r.replicas == 0
                   and desired.get(r.hash, 0) == 0), key=lambda r: r.revision)
    excess = len(idle) - spec.revision_history_limit
    for r in idle[:max(excess, 0)]:
        d.actions.append(DeleteReplicaSet(r.hash))

"""Status transitions shared by the strategies: abort, rejected actions, healthy, the
progress deadline, pause conditions.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rollouts.api.constants import Cond, Phase, Reason
from rollouts.api.spec import RolloutSpec
from rollouts.api.status import RolloutStatus, fmt_time, parse_time
from rollouts.controller.decision import Decision
from rollouts.controller.replicas import seconds_until


def mark_aborted(d: Decision, now: datetime, *, by: str, reason: str, event: str) -> None:
    """status.abort with who (a user, ``analysis``, ``experiment``, ``controller``) and why,
    and the Warning Event that says so."""
    st = d.status
    st.abort = True
    st.aborted_at = fmt_time(now)
    st.aborted_by = by
    st.abort_reason = reason
    d.warning(Reason.ABORTED, event)

def record_abort(d: Decision, who: str, now: datetime) -> None:
    mark_aborted(d, now, by=who, reason=f"aborted by {who}",
                 event=f"rollout aborted by {who}: traffic back to stable")

def clear_abort(st: RolloutStatus) -> None:
    st.abort = False
    st.aborted_at = st.aborted_by = st.abort_reason = None

def set_aborted(st: RolloutStatus, now: datetime, note: str = "") -> None:
    """Phase Degraded with the abort's reason (``note``: what is still under way); no pause
    and no deadline clock: an aborted update waits for retry or promote --full."""
    st.pause_conditions = []
    st.controller_pause = False
    st.progress_at = None
    st.phase = Phase.DEGRADED
    st.message = f"{Reason.ABORTED}: {st.abort_reason or 'aborted'}{note}"
    st.remove_condition(Cond.PAUSED)
    reason = (Reason.PROGRESS_DEADLINE if (st.abort_reason or "").startswith(Reason.PROGRESS_DEADLINE)
              else Reason.ABORTED)
    st.set_condition(Cond.PROGRESSING, False, reason, st.message, now)

def fresh_attempt(st: RolloutStatus, now: datetime) -> None:
    """An update starting (again): no pause, no full promotion, the deadline clock from now,
    new AnalysisRun names (never an old verdict)."""
    st.pause_conditions = []
    st.controller_pause = False
    st.promote_full = False
    st.progress_at = fmt_time(now)
    st.remove_condition(Cond.PAUSED)
    st.analysis.new_attempt()

def settle(st: RolloutStatus) -> None:
    """The template is the stable revision: nothing pauses, promotes or aborts any more."""
    st.pause_conditions = []
    st.controller_pause = False
    st.promote_full = False
    clear_abort(st)
    st.user_pause = None
    st.remove_condition(Cond.PAUSED)

def held_by(d: Decision) -> tuple[str, str]:
    """A user's pause or spec.paused holds the update: the Paused condition's reason and the
    message; a PausedBySpec Event when spec.paused starts holding it."""
    st = d.status
    if st.user_pause is not None:
        return Reason.PAUSED, f"paused by {st.user_pause.get('user') or 'a user'}"
    prev = st.condition(Cond.PAUSED)
    if prev is None or prev.get("reason") != Reason.PAUSED_BY_SPEC:
        d.normal(Reason.PAUSED_BY_SPEC, "paused by spec.paused")
    return Reason.PAUSED_BY_SPEC, "paused by spec.paused"

def hold_inconclusive(st: RolloutStatus, reason: str, now: datetime) -> None:
    """Argo's fields for an inconclusive verdict, which users' scripts read: a controller
    pause, the pause condition ``reason`` (kept from its first decision) as the message."""
    if pause_condition(st, reason) is None:
        set_pause_condition(st, reason, now.replace(microsecond=0))
    st.controller_pause = True
    st.message = reason

def pause_start(now: datetime) -> datetime:
    """A pause's start as stored (1 s precision): rounded up, so a restart never shortens it."""
    return now if not now.microsecond else (now + timedelta(seconds=1)).replace(microsecond=0)

def reject(d: Decision, raw: dict[str, Any], why: str, now: datetime) -> None:
    st = d.status
    st.last_action = {**raw, "result": "Rejected", "message": why, "processedAt": fmt_time(now)}
    st.pending_action = None
    d.warning(Reason.ACTION_REJECTED, f"{raw.get('action')} by {raw.get('user')} rejected: {why}")

def set_healthy(st: RolloutStatus, h: str, now: datetime) -> None:
    st.phase = Phase.HEALTHY
    st.message = ""
    st.progress_at = None
    st.remove_condition(Cond.PAUSED)
    st.set_condition(Cond.PROGRESSING, True, "NewReplicaSetAvailable",
                     f"revision {h} is fully rolled out", now)
    st.set_condition(Cond.AVAILABLE, True, Reason.AVAILABLE, "rollout has minimum availability", now)
    st.set_condition(Cond.COMPLETED, True, Reason.COMPLETED, "rollout completed", now)

def check_deadline(d: Decision, spec: RolloutSpec, now: datetime) -> bool:
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
        d.wake_in(seconds_until(deadline, now))
        return False
    msg = f"no progress for {spec.progress_deadline_seconds}s: {st.message}"
    cur = st.condition(Cond.PROGRESSING)
    if cur is None or cur.get("reason") != Reason.PROGRESS_DEADLINE:
        d.warning(Reason.PROGRESS_DEADLINE, msg)
    st.set_condition(Cond.PROGRESSING, False, Reason.PROGRESS_DEADLINE, msg, now)
    st.phase = Phase.DEGRADED
    st.message = f"{Reason.PROGRESS_DEADLINE}: {msg}"
    if spec.progress_deadline_abort and st.current_pod_hash != st.stable_rs and not st.abort:
        mark_aborted(d, now, by="controller", reason=st.message,
                     event="rollout aborted: progress deadline exceeded")
    return True

def keep_progressing(d: Decision, spec: RolloutSpec, now: datetime) -> bool:
    """Progressing=True with the current message, unless progressDeadlineSeconds passed
    (``check_deadline``). True when that aborted the update (progressDeadlineAbort): the
    caller then takes the abort path."""
    st = d.status
    if check_deadline(d, spec, now):
        return st.abort
    st.set_condition(Cond.PROGRESSING, True, Reason.ROLLOUT_UPDATED, st.message, now)
    return False

def pause_condition(st: RolloutStatus, reason: str) -> dict[str, Any] | None:
    return next((p for p in st.pause_conditions if p.get("reason") == reason), None)

def set_pause_condition(st: RolloutStatus, reason: str, start: datetime) -> None:
    drop_pause_condition(st, reason)
    st.pause_conditions.append({"reason": reason, "startTime": fmt_time(start)})

def drop_pause_condition(st: RolloutStatus, reason: str) -> None:
    st.pause_conditions = [p for p in st.pause_conditions if p.get("reason") != reason]

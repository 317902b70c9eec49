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


def record_abort(d: Decision, who: str, now: datetime) -> None:
    st = d.status
    st.abort = True
    st.aborted_at = fmt_time(now)
    st.aborted_by = who
    st.abort_reason = f"aborted by {who}"
    d.warning(Reason.ABORTED, f"rollout aborted by {who}: traffic back to stable")

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
        st.abort = True
        st.aborted_at = fmt_time(now)
        st.aborted_by = "controller"
        st.abort_reason = st.message
        d.warning(Reason.ABORTED, "rollout aborted: progress deadline exceeded")
    return True

def pause_condition(st: RolloutStatus, reason: str) -> dict[str, Any] | None:
    return next((p for p in st.pause_conditions if p.get("reason") == reason), None)

def set_pause_condition(st: RolloutStatus, reason: str, start: datetime) -> None:
    drop_pause_condition(st, reason)
    st.pause_conditions.append({"reason": reason, "startTime": fmt_time(start)})

def drop_pause_condition(st: RolloutStatus, reason: str) -> None:
    st.pause_conditions = [p for p in st.pause_conditions if p.get("reason") != reason]

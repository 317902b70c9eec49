"""A user's pending action (``status.pendingAction``) as every strategy takes it: checked
first (rejected with a reason, changing nothing else), then applied, then recorded in
``status.lastAction``. abort, pause and resume mean the same on every strategy; promote
and retry are the strategy's own (``rollouts.controller.canary``, ``.bluegreen``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rollouts.api.actions import Action, check_action
from rollouts.api.constants import Reason
from rollouts.api.spec import RolloutSpec
from rollouts.api.status import RolloutStatus, fmt_time
from rollouts.controller.decision import Decision
from rollouts.controller.lifecycle import record_abort, reject


def checked_action(d: Decision, spec: RolloutSpec | None, now: datetime) -> Action | None:
    """The pending action when it applies now; otherwise it is recorded as Rejected (with
    a Warning Event) and None is returned."""
    st = d.status
    raw = st.pending_action or {}
    act = Action.from_dict(raw)
    if act is None:
        reject(d, raw, f"unknown action {raw.get('action')!r}", now)
        return None
    why = check_action(spec, st, act)
    if why is not None:
        reject(d, raw, why, now)
        return None
    return act


def apply_common(d: Decision, act: Action, now: datetime) -> bool:
    """abort, pause or resume (the same on every strategy); False for another action."""
    st = d.status
    who = act.user
    if act.action == "abort":
        record_abort(d, who, now)
    elif act.action == "pause":
        st.user_pause = {"user": who, "at": fmt_time(now)}
        d.normal(Reason.PAUSED, f"paused by {who}")
    elif act.action == "resume":
        st.user_pause = None
        st.progress_at = fmt_time(now)  # time spent paused never counts towards the deadline
        d.normal(Reason.RESUMED, f"resumed by {who}")
    else:
        return False
    return True


def start_full_promotion(st: RolloutStatus, now: datetime) -> None:
    """Argo's promote --full: every pause ends (a user's too) and no analysis runs again;
    the caller lifts the abort, if any, its own way."""
    st.promote_full = True
    st.user_pause = None
    st.pause_conditions = []
    st.controller_pause = False
    st.progress_at = fmt_time(now)


def mark_applied(st: RolloutStatus, act: Action, now: datetime, **extra: Any) -> None:
    """``status.lastAction`` says the action was applied; the pending one is consumed."""
    st.last_action = {**act.to_dict(), "result": "Applied", "processedAt": fmt_time(now), **extra}
    st.pending_action = None

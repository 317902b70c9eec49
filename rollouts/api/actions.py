"""Human signals (promote, abort, retry, pause, resume): what each one means, in one place.

Clients (CLI, HTTP API) only *record intent* in ``status.pendingAction`` after
``check_action`` says it applies; the controller applies it with ``apply_action`` (the
same rules) and records the outcome in ``status.lastAction``. Signals live in status,
never in spec, so GitOps self-heal cannot revert them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from rollouts.api.constants import Reason
from rollouts.api.spec import RolloutSpec
from rollouts.api.status import RolloutStatus, fmt_time

ACTIONS: Final = ("promote", "abort", "retry", "pause", "resume")


@dataclass(frozen=True)
class Action:
    action: str
    user: str
    requested_at: str
    full: bool = False
    id: str = ""
    # The revision (status.currentPodHash) the user looked at; when set, the action is
    # rejected if the rollout has moved to another revision since (a promote meant for
    # the previous canary must not skip a step of the next one).
    pod_hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"action": self.action, "full": self.full, "user": self.user,
                             "requestedAt": self.requested_at, "id": self.id}
        if self.pod_hash:
            d["podHash"] = self.pod_hash
        return d

    @staticmethod
    def from_dict(d: Any) -> Action | None:
        if not isinstance(d, dict):
            return None
        a = d.get("action")
        if not isinstance(a, str) or a not in ACTIONS:
            return None
        return Action(action=a, user=str(d.get("user") or "unknown"),
                      requested_at=str(d.get("requestedAt") or ""), full=d.get("full") is True,
                      id=str(d.get("id") or ""), pod_hash=str(d.get("podHash") or ""))


def new_action(action: str, user: str, now: datetime, full: bool = False,
               pod_hash: str = "") -> Action:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    return Action(action, user, fmt_time(now), full, uuid.uuid4().hex[:12], pod_hash)


def canary_in_progress(status: RolloutStatus) -> bool:
    return bool(status.stable_rs and status.current_pod_hash
                and status.current_pod_hash != status.stable_rs)


def check_action(spec: RolloutSpec | None, status: RolloutStatus, action: Action) -> str | None:
    """None when ``action`` applies to this rollout now, else why not (HTTP 409)."""
    a = action.action
    pending = status.pending_action
    if pending is not None and str(pending.get("id") or "") != action.id:
        return (f"another action ({pending.get('action')}) is pending; "
                "wait for the controller to apply it")
    if action.pod_hash and action.pod_hash != status.current_pod_hash:
        return (f"the rollout has moved to revision {status.current_pod_hash or 'unknown'} since "
                f"the {a} was requested for {action.pod_hash}")
    if a == "retry":
        return None if status.abort else "retry applies only to an aborted rollout"
    if not canary_in_progress(status):
        what = "blue-green update" if spec is not None and spec.blue_green is not None else "canary"
        return f"nothing to {a}: no {what} is in progress (phase {status.phase or 'unknown'})"
    if a == "promote":
        # Argo: a full promotion also lifts an abort (to 100 %, without new analysis)
        if status.abort and not action.full:
            return "the rollout is aborted; retry it first, or promote --full"
        if spec is not None and spec.blue_green is not None and not action.full:
            return _blue_green_promote(status)
        return None
    if a == "abort":
        return "the rollout is already aborted" if status.abort else None
    if a == "pause":
        if status.abort:
            return "the rollout is aborted"
        return "the rollout is already paused by a user" if status.user_pause else None
    if a == "resume":
        if status.user_pause:
            return None
        if spec is not None and spec.paused:
            return "paused by spec.paused: set it to false in the manifest"
        return "the rollout is not paused by a user (use promote to end a pause step)"
    return f"unknown action {a!r}"


def _blue_green_promote(status: RolloutStatus) -> str | None:
    """Argo's promote on a blue-green rollout ends its pause (before the switch, or after an
    inconclusive analysis) and nothing else: rejected when there is no pause to end, so a
    user is never told a promote happened when the rollout would go on exactly as before."""
    reasons = {p.get("reason") for p in status.pause_conditions}
    if reasons & {Reason.BLUE_GREEN_PAUSE, Reason.INCONCLUSIVE} or status.user_pause:
        return None
    bg = status.blue_green
    if bg is not None and bg.active_selector == status.current_pod_hash:
        return ("the active Service already selects the new revision (post-promotion: "
                f"{status.message or 'in progress'}); promote --full skips the analysis")
    return (f"nothing to promote yet: {status.message or 'the new revision is not ready'}; "
            "promote applies once the rollout pauses before the switch, promote --full "
            "switches as soon as the new revision is fully available, without analysis")

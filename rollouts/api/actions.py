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

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "full": self.full, "user": self.user,
                "requestedAt": self.requested_at, "id": self.id}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Action | None:
        a = d.get("action")
        if a not in ACTIONS:
            return None
        return Action(action=str(a), user=str(d.get("user") or "unknown"),
                      requested_at=str(d.get("requestedAt") or ""), full=d.get("full") is True,
                      id=str(d.get("id") or ""))


def new_action(action: str, user: str, now: datetime, full: bool = False) -> Action:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    return Action(action, user, fmt_time(now), full, uuid.uuid4().hex[:12])


def canary_in_progress(status: RolloutStatus) -> bool:
    return bool(status.stable_rs and status.current_pod_hash
                and status.current_pod_hash != status.stable_rs)


def check_action(spec: RolloutSpec | None, status: RolloutStatus, action: Action) -> str | None:
    """None when ``action`` applies to this rollout now, else why not (HTTP 409)."""
    a = action.action
    if status.pending_action is not None and status.pending_action.get("id") != action.id:
        return (f"another action ({status.pending_action.get('action')}) is pending; "
                "wait for the controller to apply it")
    if a == "retry":
        return None if status.abort else "retry applies only to an aborted rollout"
    if not canary_in_progress(status):
        return f"nothing to {a}: no canary is in progress (phase {status.phase or 'unknown'})"
    if a == "promote":
        return "the rollout is aborted; retry it first" if status.abort else None
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

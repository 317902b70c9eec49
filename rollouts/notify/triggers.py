"""Which triggers a decision fires: Event reasons (and phase changes) -> trigger names.

Trigger names follow Argo Rollouts' notification triggers (``on-rollout-aborted``, ...).
A reason not in the table still maps to a trigger by kebab-casing it, so reasons added
later (e.g. by the analysis layer) are notifiable without a change here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol


class EventLike(Protocol):
    """What a decision's Event carries (``rollouts.controller.decide.Event``)."""

    @property
    def type(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def message(self) -> str: ...


TRIGGERS: Final[dict[str, str]] = {
    "RolloutStepCompleted": "on-rollout-step-completed",
    "RolloutPaused": "on-rollout-paused",
    "PausedBySpec": "on-rollout-paused",
    "RolloutResumed": "on-rollout-resumed",
    "RolloutAborted": "on-rollout-aborted",
    "RolloutCompleted": "on-rollout-completed",
    "RolloutHealthy": "on-rollout-healthy",
    "RolloutUpdated": "on-rollout-updated",
    "NewReplicaSetCreated": "on-rollout-updated",
    "RolloutPromoted": "on-rollout-promoted",
    "RolloutPromotedFull": "on-rollout-promoted",
    "RolloutRetried": "on-rollout-retried",
    "ProgressDeadlineExceeded": "on-rollout-progress-deadline-exceeded",
    "InvalidSpec": "on-rollout-invalid-spec",
    "ActionRejected": "on-rollout-action-rejected",
    "TrafficWeightUpdated": "on-traffic-weight-updated",
    "ScaledDownReplicaSet": "on-scaling-replica-set",
    "AnalysisRunFailed": "on-analysis-run-failed",
    "AnalysisRunError": "on-analysis-run-error",
    "AnalysisRunInconclusive": "on-analysis-run-inconclusive",
    "AnalysisRunSuccessful": "on-analysis-run-successful",
    "AnalysisRunRunning": "on-analysis-run-running",
}
# Not from an Event: the phase changed to Degraded (aborted, deadline, invalid spec, ...).
ON_DEGRADED: Final = "on-rollout-degraded"
ALL: Final = "*"


def kebab(reason: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", reason).lower()


def trigger_for(reason: str) -> str:
    known = TRIGGERS.get(reason)
    if known is not None:
        return known
    name = kebab(reason)
    if not name.startswith(("rollout-", "analysis-run-")):
        name = f"rollout-{name}"
    return f"on-{name}"


@dataclass(frozen=True)
class Notification:
    """One thing that happened to one rollout, as every receiver sees it."""

    trigger: str
    reason: str
    type: str  # Normal | Warning
    message: str
    namespace: str
    rollout: str
    uid: str
    phase: str
    status_message: str
    revision: str
    stable_revision: str
    step: int | None
    steps: int | None
    canary_weight: int
    time: str
    # "canary" or "blueGreen": a blue-green rollout has no weight, its Services select
    # whole revisions (status.blueGreen), and its payloads say which
    strategy: str = "canary"
    active_revision: str = ""
    preview_revision: str = ""


def _steps_count(obj: dict[str, Any]) -> int | None:
    steps = (((obj.get("spec") or {}).get("strategy") or {}).get("canary") or {}).get("steps")
    return len(steps) if isinstance(steps, list) else None


def _strategy(obj: dict[str, Any]) -> str:
    strategy = (obj.get("spec") or {}).get("strategy") or {}
    return "blueGreen" if isinstance(strategy, dict) and "blueGreen" in strategy else "canary"


def notifications_for(obj: dict[str, Any], status: Any, events: Sequence[Any],
                      now: str) -> list[Notification]:
    """The decision's Events in order, then ``on-rollout-degraded`` if the phase became Degraded.

    ``obj`` is the Rollout as read (its status is the previous one); ``status`` the new
    ``RolloutStatus``.
    """
    md = obj.get("metadata") or {}
    old_phase = (obj.get("status") or {}).get("phase")
    strategy = _strategy(obj)
    bg = getattr(status, "blue_green", None)

    def note(trigger: str, etype: str, reason: str, message: str) -> Notification:
        return Notification(
            trigger=trigger, reason=reason, type=etype, message=message,
            namespace=str(md.get("namespace", "")), rollout=str(md.get("name", "")),
            uid=str(md.get("uid", "")), phase=status.phase or "", status_message=status.message,
            revision=status.current_pod_hash or "", stable_revision=status.stable_rs or "",
            step=status.current_step_index, steps=_steps_count(obj),
            canary_weight=status.canary_weight, time=now, strategy=strategy,
            active_revision=(bg.active_selector or "") if bg is not None else "",
            preview_revision=(bg.preview_selector or "") if bg is not None else "")

    out = [note(trigger_for(e.reason), e.type, e.reason, e.message) for e in events]
    if status.phase == "Degraded" and old_phase != "Degraded":
        out.append(note(ON_DEGRADED, "Warning", "RolloutDegraded", status.message))
    return out

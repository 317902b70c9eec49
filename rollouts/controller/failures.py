"""What a reconcile writes when an action (or reading the cluster) fails. Pure.

A failure is never silent: the Progressing condition turns False with Argo's reason
(``ReplicaSetCreateError`` when the API server refuses the new ReplicaSet,
``ReconciliationError`` for anything else) and the API server's own message, a Warning
Event says the same, and once progressDeadlineSeconds pass without progress the rollout
turns Degraded with reason ``ProgressDeadlineExceeded`` (the message keeps the failure).

The status never claims traffic that was not written: until the decision's traffic change
has succeeded, the base is the status as read (it still describes the traffic on the
cluster); once it has, the base is the decision's status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rollouts.api.constants import Cond, Phase, Reason
from rollouts.api.status import RolloutStatus, fmt_time, parse_time
from rollouts.controller.decide import (
    ClusterAction,
    CreateAnalysisRun,
    CreateReplicaSet,
    DeletePod,
    DeleteReplicaSet,
    Event,
    PointService,
    RemoveRouting,
    ScaleReplicaSet,
    SetPodMetadata,
    SetTraffic,
    TerminateAnalysisRun,
)
from rollouts.kube.client import KubeError

REPLICA_SET_CREATE_ERROR = "ReplicaSetCreateError"  # Argo's reason: the new ReplicaSet was refused
RECONCILIATION_ERROR = "ReconciliationError"  # Argo's reason: any other failed step
FAILURE_REASONS = (REPLICA_SET_CREATE_ERROR, RECONCILIATION_ERROR)
MAX_MESSAGE = 2000  # conditions and Events stay readable (and small in etcd)
# Decision Events about actions that run after the traffic change: when one of those fails,
# its Event would claim what did not happen (the retry's decision emits it again).
_ACTION_EVENTS = (Reason.SCALED_DOWN, "RestartingPod")


@dataclass(frozen=True)
class Failure:
    reason: str
    message: str
    traffic_done: bool = False  # the decision's SetTraffic succeeded before the failure


class ActionFailed(Exception):
    """Raised by the reconciler after the failure is recorded: the manager retries with
    backoff, and no later than ``requeue_after`` (when the progress deadline falls due)."""

    def __init__(self, failure: Failure, requeue_after: float | None) -> None:
        super().__init__(f"{failure.reason}: {failure.message}")
        self.failure = failure
        self.requeue_after = requeue_after


def error_text(error: BaseException) -> str:
    """The API server's message as it sent it; other errors with their type."""
    if isinstance(error, KubeError):
        text = f"{error.message} (HTTP {error.status})" if error.message else f"HTTP {error.status}"
    else:
        text = f"{type(error).__name__}: {error}"
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."


def describe(action: ClusterAction | None, error: BaseException, *, rollout: str,
             traffic_done: bool) -> Failure:
    """The failure of ``action`` (None: reading the cluster failed) in a user's words."""
    why = error_text(error)
    if isinstance(action, CreateReplicaSet):
        return Failure(REPLICA_SET_CREATE_ERROR,
                       f"creating ReplicaSet {rollout}-{action.hash} failed: {why}", traffic_done)
    if isinstance(action, ScaleReplicaSet):
        what = f"scaling ReplicaSet {rollout}-{action.hash} to {action.replicas}"
    elif isinstance(action, DeleteReplicaSet):
        what = f"deleting ReplicaSet {rollout}-{action.hash}"
    elif isinstance(action, SetTraffic):
        what = (f"setting traffic (canary {action.canary_weight}% to {action.canary_hash}, "
                f"stable to {action.stable_hash})")
    elif isinstance(action, CreateAnalysisRun):
        what = f"creating AnalysisRun {action.name}"
    elif isinstance(action, TerminateAnalysisRun):
        what = f"terminating AnalysisRun {action.name}"
    elif isinstance(action, DeletePod):
        what = f"deleting pod {action.name}"
    elif isinstance(action, PointService):
        what = f"pointing Service {action.service} at revision {action.pod_hash}"
    elif isinstance(action, RemoveRouting):
        what = "taking back what the previous trafficRouting wrote"
    elif isinstance(action, SetPodMetadata):
        what = f"setting the role metadata of revision {action.hash}'s pods"
    else:
        what = "reading the cluster"
    return Failure(RECONCILIATION_ERROR, f"{what} failed: {why}", traffic_done)


def failed_status(*, read: RolloutStatus, decided: RolloutStatus | None, failure: Failure,
                  generation: int, progress_deadline_seconds: int,
                  now: datetime) -> tuple[RolloutStatus, list[Event], float | None]:
    """The status to write after ``failure``, its Events, and the seconds until the progress
    deadline (None once it has passed).

    ``read`` is the status as read, ``decided`` the decision's (None when reading the
    cluster failed). The deadline counts from the last progress stored in status, or from
    the failure's first attempt when no progress clock ran (healthy, paused); that start is
    stored in ``progressAt``, so a restarted controller keeps counting.
    """
    prev = read.condition(Cond.PROGRESSING)
    failing = is_failure_condition(prev)  # an earlier attempt failed: its record stands
    if failure.traffic_done and decided is not None:
        st = decided.copy()
        if failing and prev is not None:
            # decide set Progressing anew; over the failure already stored, so that a repeat
            # keeps its times (and writes nothing)
            st.conditions = [prev if c.get("type") == Cond.PROGRESSING else c for c in st.conditions]
    else:
        st = read.copy()
        if decided is not None:
            # what the decision observed, not what its actions would have made true
            st.replicas, st.ready_replicas = decided.replicas, decided.ready_replicas
            st.available_replicas, st.updated_replicas = decided.available_replicas, decided.updated_replicas
            st.selector = decided.selector
            for ctype in (Cond.INVALID_SPEC, Cond.COMPLETED):  # a valid spec, a new revision
                if decided.condition(ctype) is None:
                    st.remove_condition(ctype)
    # This generation was looked at: a Healthy from the previous one must not stand for it.
    st.observed_generation = generation
    # The decision's clock; where it runs none (paused, in an analysis step, healthy), the
    # one an earlier failed attempt stored, else this failure's start: never the clock of a
    # wait that this decision's progress ended.
    since = (parse_time(st.progress_at) or (parse_time(read.progress_at) if failing else None)
             or now)
    st.progress_at = fmt_time(since)
    deadline = since + timedelta(seconds=progress_deadline_seconds)
    events = [Event("Warning", failure.reason, failure.message)]
    text = f"{failure.reason}: {failure.message}"
    if now >= deadline:
        # Argo's reason once the deadline passed (what tools and our gauge look for); the
        # message keeps the failure and the API server's words.
        msg = f"{_NO_PROGRESS.format(progress_deadline_seconds)}{text}"
        if prev is None or prev.get("reason") != Reason.PROGRESS_DEADLINE:
            events.append(Event("Warning", Reason.PROGRESS_DEADLINE, msg))
        st.set_condition(Cond.PROGRESSING, False, Reason.PROGRESS_DEADLINE, msg, now)
        st.phase = Phase.DEGRADED
        st.message = f"{Reason.PROGRESS_DEADLINE}: {msg}"
        return _steady(read, st, now), events, None
    st.set_condition(Cond.PROGRESSING, False, failure.reason, failure.message, now)
    st.phase = Phase.DEGRADED if st.abort else Phase.PROGRESSING
    st.message = text
    return _steady(read, st, now), events, (deadline - now).total_seconds()


MIN_REWRITE_SECONDS = 10.0


def _steady(read: RolloutStatus, st: RolloutStatus, now: datetime) -> RolloutStatus:
    """The status as read when the new one differs only in the failure's wording and that
    was written less than MIN_REWRITE_SECONDS ago: every status write wakes this rollout up
    again at once (past the retry backoff), so a message that changes on each attempt (a
    webhook naming a request) must not turn the retries into a loop. The Warning Event
    still carries each new message."""
    prev, cur = read.condition(Cond.PROGRESSING), st.condition(Cond.PROGRESSING)
    if prev is None or cur is None or prev.get("reason") != cur.get("reason"):
        return st
    written = parse_time(prev.get("lastUpdateTime"))
    if written is None or (now - written).total_seconds() >= MIN_REWRITE_SECONDS:
        return st
    same = st.copy()
    same.message = read.message
    same.conditions = [prev if c.get("type") == Cond.PROGRESSING else c for c in same.conditions]
    return read.copy() if same.to_dict() == read.to_dict() else st


_NO_PROGRESS = "no progress for {}s: "


def is_failure_condition(cond: dict[str, Any] | None) -> bool:
    """Whether a Progressing condition was written by ``failed_status``."""
    if cond is None:
        return False
    reason, msg = cond.get("reason"), str(cond.get("message") or "")
    if reason in FAILURE_REASONS:
        return True
    return reason == Reason.PROGRESS_DEADLINE and msg.startswith("no progress for ") and any(
        f"s: {r}: " in msg for r in FAILURE_REASONS)


def decision_events(events: list[Event], failure: Failure) -> list[Event]:
    """The decision's Events worth emitting after ``failure``: none before its traffic change
    succeeded (the status written does not record that decision), else those not about the
    actions that may not have run."""
    if not failure.traffic_done:
        return []
    return [e for e in events if e.reason not in _ACTION_EVENTS]


def recovered(read: RolloutStatus, decided: RolloutStatus, now: datetime) -> None:
    """A reconcile whose actions all succeeded clears a failure recorded before: decide sets
    the Progressing condition on most paths, but not on all (a pause leaves it), and a
    failure's condition must not outlive the failure."""
    prev = read.condition(Cond.PROGRESSING)
    if not is_failure_condition(prev):
        return
    if decided.condition(Cond.PROGRESSING) == prev:
        decided.set_condition(Cond.PROGRESSING, True, Reason.ROLLOUT_UPDATED,
                              decided.message or "all actions succeeded", now)


REPLICA_FAILURE = "ReplicaFailure"  # Argo's condition type, copied from a ReplicaSet


def replica_failure(st: RolloutStatus, rs_conditions: dict[str, list[dict[str, Any]]],
                    current_hash: str | None) -> None:
    """Argo's ReplicaFailure: a ReplicaSet whose pods cannot be created (a quota, a webhook
    denying pods) says why in its own ReplicaFailure condition; the Rollout shows it, the
    current revision's first. Gone from every ReplicaSet, gone from the Rollout."""
    ordered = sorted(rs_conditions.items(), key=lambda kv: (kv[0] != current_hash, kv[0]))
    found = next((c for _, conds in ordered for c in conds
                  if isinstance(c, dict) and c.get("type") == REPLICA_FAILURE
                  and c.get("status") == "True"), None)
    if found is None:
        st.remove_condition(REPLICA_FAILURE)
        return
    cur = st.condition(REPLICA_FAILURE)
    new = {"type": REPLICA_FAILURE, "status": "True", "reason": str(found.get("reason") or ""),
           "message": str(found.get("message") or "")[:MAX_MESSAGE]}
    if cur is not None and all(cur.get(k) == v for k, v in new.items()):
        return
    ts = found.get("lastTransitionTime")
    if isinstance(ts, str):
        new.update(lastTransitionTime=ts, lastUpdateTime=ts)
    st.conditions = [c for c in st.conditions if c.get("type") != REPLICA_FAILURE] + [new]

"""The failure rules (``failures.failed_status``) meeting decisions that moved on.

A failure after the decision's traffic change writes the decision's status; these tests
check what that status says about the progress clock and that a repeat writes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rollouts.api.status import RolloutStatus, fmt_time
from rollouts.controller.decide import ScaleReplicaSet
from rollouts.controller.failures import describe, failed_status
from rollouts.kube.client import KubeError

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
DEADLINE = 600


def canary_waiting() -> RolloutStatus:
    """Step 0 (setWeight 20) of revision bbb, waiting for canary pods since T0."""
    st = RolloutStatus(observed_generation=2, phase="Progressing", current_pod_hash="bbb",
                       stable_rs="aaa", current_step_index=0, canary_weight=0,
                       progress_at=fmt_time(T0), message="step 0/2 setWeight 20: waiting")
    st.set_condition("Progressing", True, "RolloutUpdated", st.message, T0)
    return st


def paused_at_step_1(read: RolloutStatus, now: datetime) -> RolloutStatus:
    """What decide says once the canary pods came: 20 %, paused at step 1 (no clock runs)."""
    st = read.copy()
    st.canary_weight, st.current_step_index, st.phase = 20, 1, "Paused"
    st.message = "paused at step 1/2: waiting for promote"
    st.progress_at = None
    if not st.pause_conditions:  # kept from the status read, as decide does
        st.pause_conditions = [{"reason": "CanaryPauseStep", "startTime": fmt_time(now)}]
    st.set_condition("Paused", True, "CanaryPauseStep", st.message, now)
    st.set_condition("Progressing", True, "RolloutUpdated", "at step 1/2", now)
    return st


def scale_down_refused() -> KubeError:
    return KubeError(403, 'admission webhook "policy" denied the request: replicas')


def test_a_failed_scale_down_after_progress_does_not_inherit_the_old_progress_clock() -> None:
    # 590 s into waiting for canary pods, they come: traffic moves to 20 % and the
    # rollout pauses. The stable's scale-down (after the traffic change) is refused.
    # The deadline must count from this failure, not from the wait that just ended.
    read = canary_waiting()
    now = T0 + timedelta(seconds=590)
    failure = describe(ScaleReplicaSet("aaa", 4), scale_down_refused(), rollout="shop",
                       traffic_done=True)
    st1, _, due = failed_status(read=read, decided=paused_at_step_1(read, now), failure=failure,
                                generation=2, progress_deadline_seconds=DEADLINE, now=now)
    assert st1.canary_weight == 20  # the traffic written
    assert due == DEADLINE
    # the retry 11 s later (past the old clock's deadline) is not "no progress for 600s"
    later = now + timedelta(seconds=11)
    st2, events, due2 = failed_status(read=st1, decided=paused_at_step_1(st1, later),
                                      failure=failure, generation=2,
                                      progress_deadline_seconds=DEADLINE, now=later)
    assert st2.phase != "Degraded", st2.message
    assert "ProgressDeadlineExceeded" not in [e.reason for e in events]
    assert due2 == DEADLINE - 11
    # and the failure's own clock still runs out: Degraded 600 s after it began
    end = now + timedelta(seconds=DEADLINE)
    st3, _, due3 = failed_status(read=st2, decided=paused_at_step_1(st2, end), failure=failure,
                                 generation=2, progress_deadline_seconds=DEADLINE, now=end)
    assert st3.phase == "Degraded" and due3 is None


def test_a_repeated_failure_after_the_traffic_change_writes_nothing_new() -> None:
    # decide turns Progressing back to True on each attempt; the failure written over it
    # must keep the times already stored, or every retry rewrites the status.
    read = canary_waiting()
    now = T0 + timedelta(seconds=30)
    failure = describe(ScaleReplicaSet("aaa", 4), scale_down_refused(), rollout="shop",
                       traffic_done=True)
    st1, _, _ = failed_status(read=read, decided=paused_at_step_1(read, now), failure=failure,
                              generation=2, progress_deadline_seconds=DEADLINE, now=now)
    for later in (now + timedelta(seconds=s) for s in (1, 15, 45)):
        st2, _, _ = failed_status(read=st1, decided=paused_at_step_1(st1, later), failure=failure,
                                  generation=2, progress_deadline_seconds=DEADLINE, now=later)
        assert st2.to_dict() == st1.to_dict()

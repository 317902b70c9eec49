"""What is written when an action fails (rollouts.controller.failures): pure rules.

The status as read is the base until the decision's traffic change succeeded, so status
never claims traffic that was not written; the failure is a condition with the API
server's message and a Warning Event; Degraded once the progress deadline passed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rollouts.api.status import RolloutStatus, fmt_time
from rollouts.controller.decide import CreateReplicaSet, Event, ScaleReplicaSet, SetTraffic
from rollouts.controller.failures import (
    RECONCILIATION_ERROR,
    REPLICA_SET_CREATE_ERROR,
    Failure,
    decision_events,
    describe,
    failed_status,
    recovered,
    replica_failure,
)
from rollouts.kube.client import KubeError

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
API_MESSAGE = ('ReplicaSet.apps "shop-abc" is invalid: spec.template.spec.containers[0].name: '
               'Invalid value: "Bad_Name!": a lowercase RFC 1123 label must consist of ...')


def healthy(gen: int = 1) -> RolloutStatus:
    st = RolloutStatus(observed_generation=gen, phase="Healthy", current_pod_hash="aaa",
                       stable_rs="aaa", current_step_index=3, canary_weight=0, replicas=5,
                       available_replicas=5, updated_replicas=5)
    st.set_condition("Progressing", True, "NewReplicaSetAvailable", "revision aaa", T0)
    st.set_condition("Completed", True, "RolloutCompleted", "rollout completed", T0)
    return st


def decided_new_revision() -> RolloutStatus:
    """What decide says for a new template bbb: canary at step 0, RS bbb to be created."""
    st = healthy(gen=2)
    st.current_pod_hash, st.current_step_index, st.phase = "bbb", 0, "Progressing"
    st.progress_at = fmt_time(T0)
    st.remove_condition("Completed")
    st.set_condition("Progressing", True, "RolloutUpdated", "at step 0/3", T0)
    return st


def rs_rejected() -> KubeError:
    return KubeError(422, API_MESSAGE)


def test_a_rejected_replica_set_on_a_healthy_rollout_is_no_longer_healthy_for_the_new_generation() -> None:
    read = healthy(gen=1)
    failure = describe(CreateReplicaSet("bbb", 1, 2), rs_rejected(), rollout="shop", traffic_done=False)
    st, events, due = failed_status(read=read, decided=decided_new_revision(), failure=failure,
                                    generation=2, progress_deadline_seconds=60, now=T0)
    assert st.observed_generation == 2 and st.phase == "Progressing"
    cond = st.condition("Progressing")
    assert cond is not None and cond["status"] == "False"
    assert cond["reason"] == REPLICA_SET_CREATE_ERROR == "ReplicaSetCreateError"
    assert API_MESSAGE in cond["message"] and "shop-bbb" in cond["message"]
    assert st.condition("Completed") is None  # the new revision is not completed
    assert API_MESSAGE in st.message
    assert [(e.type, e.reason) for e in events] == [("Warning", "ReplicaSetCreateError")]
    assert API_MESSAGE in events[0].message
    assert due == 60
    # traffic claims are the ones read: nothing moved
    assert (st.stable_rs, st.current_pod_hash, st.canary_weight) == ("aaa", "aaa", 0)
    assert st.current_step_index == 3


def test_degraded_once_the_progress_deadline_passed_and_reported_once() -> None:
    read = healthy(gen=1)
    failure = describe(CreateReplicaSet("bbb", 1, 2), rs_rejected(), rollout="shop", traffic_done=False)
    st1, _, due = failed_status(read=read, decided=decided_new_revision(), failure=failure,
                                generation=2, progress_deadline_seconds=10, now=T0)
    assert st1.phase == "Progressing" and due == 10 and st1.progress_at == fmt_time(T0)
    # the clock is in status: a later attempt (or a restarted controller) keeps counting
    st2, events, due = failed_status(read=st1, decided=decided_new_revision(), failure=failure,
                                     generation=2, progress_deadline_seconds=10,
                                     now=T0 + timedelta(seconds=11))
    assert st2.phase == "Degraded" and due is None
    assert st2.message.startswith("ProgressDeadlineExceeded: no progress for 10s: ReplicaSetCreateError")
    assert [e.reason for e in events] == ["ReplicaSetCreateError", "ProgressDeadlineExceeded"]
    cond = st2.condition("Progressing")
    # Argo's reason once the deadline passed; the message keeps the API server's words
    assert cond is not None and cond["reason"] == "ProgressDeadlineExceeded"
    assert API_MESSAGE in cond["message"]
    assert cond["lastTransitionTime"] == fmt_time(T0)  # False since the first attempt
    st3, events, _ = failed_status(read=st2, decided=decided_new_revision(), failure=failure,
                                   generation=2, progress_deadline_seconds=10,
                                   now=T0 + timedelta(seconds=30))
    assert st3.phase == "Degraded"
    assert [e.reason for e in events] == ["ReplicaSetCreateError"]  # the deadline once
    assert st3.to_dict() == st2.to_dict()  # a repeat writes nothing new


def test_a_failure_after_the_traffic_change_keeps_the_decisions_traffic() -> None:
    read = healthy(gen=2)
    read.current_pod_hash, read.canary_weight, read.current_step_index = "bbb", 20, 1
    decided = read.copy()
    decided.canary_weight, decided.current_step_index = 50, 3  # traffic moved to 50 %
    decided.progress_at = fmt_time(T0)
    failure = describe(ScaleReplicaSet("aaa", 3), KubeError(403, "forbidden: scale"), rollout="shop",
                       traffic_done=True)
    assert failure.reason == RECONCILIATION_ERROR
    assert failure.message == "scaling ReplicaSet shop-aaa to 3 failed: forbidden: scale (HTTP 403)"
    st, _, _ = failed_status(read=read, decided=decided, failure=failure, generation=2,
                             progress_deadline_seconds=60, now=T0)
    assert (st.canary_weight, st.current_step_index) == (50, 3)  # what is on the cluster
    events = [Event("Normal", "TrafficWeightUpdated", "20 -> 50"),
              Event("Normal", "ScaledDownReplicaSet", "scaled down shop-aaa")]
    assert [e.reason for e in decision_events(events, failure)] == ["TrafficWeightUpdated"]


def test_a_failed_traffic_change_keeps_the_traffic_read() -> None:
    read = healthy(gen=2)
    read.current_pod_hash, read.canary_weight, read.current_step_index = "bbb", 20, 1
    read.progress_at = fmt_time(T0)
    decided = read.copy()
    decided.canary_weight, decided.current_step_index = 50, 3
    failure = describe(SetTraffic("aaa", "bbb", 50), KubeError(409, "conflict"), rollout="shop",
                       traffic_done=False)
    st, _, due = failed_status(read=read, decided=decided, failure=failure, generation=2,
                               progress_deadline_seconds=60, now=T0 + timedelta(seconds=20))
    assert (st.canary_weight, st.current_step_index) == (20, 1)
    assert due == 40  # the deadline counts from the last progress, not from the failure
    assert decision_events([Event("Normal", "TrafficWeightUpdated", "20 -> 50")], failure) == []


def test_an_aborted_rollout_stays_degraded_and_reading_failures_are_reported() -> None:
    read = healthy(gen=2)
    read.abort, read.phase = True, "Degraded"
    failure = describe(None, OSError("connection refused"), rollout="shop", traffic_done=False)
    assert failure.message == "reading the cluster failed: OSError: connection refused"
    st, _, _ = failed_status(read=read, decided=None, failure=failure, generation=2,
                             progress_deadline_seconds=600, now=T0)
    assert st.phase == "Degraded" and st.abort


def test_the_first_fully_successful_reconcile_clears_the_failure() -> None:
    failure = describe(CreateReplicaSet("bbb", 1, 2), rs_rejected(), rollout="shop", traffic_done=False)
    read, _, _ = failed_status(read=healthy(), decided=decided_new_revision(), failure=failure,
                               generation=2, progress_deadline_seconds=60, now=T0)
    # a decision that leaves Progressing alone (a pause) gets it back to True
    decided = read.copy()
    decided.phase, decided.message = "Paused", "paused at step 1/3"
    recovered(read, decided, T0 + timedelta(seconds=5))
    cond = decided.condition("Progressing")
    assert cond is not None and (cond["status"], cond["reason"]) == ("True", "RolloutUpdated")
    # also after the deadline
    late, _, _ = failed_status(read=read, decided=decided_new_revision(), failure=failure,
                               generation=2, progress_deadline_seconds=60,
                               now=T0 + timedelta(seconds=61))
    assert (late.condition("Progressing") or {}).get("reason") == "ProgressDeadlineExceeded"
    decided = late.copy()
    decided.phase = "Paused"
    recovered(late, decided, T0 + timedelta(seconds=70))
    assert (decided.condition("Progressing") or {}).get("status") == "True"
    # decide's own deadline (no failure in its message) is decide's business
    stuck = healthy()
    stuck.set_condition("Progressing", False, "ProgressDeadlineExceeded",
                        "no progress for 60s: step 1/3 waiting for canary pods", T0)
    same = stuck.copy()
    recovered(stuck, same, T0)
    assert same.to_dict() == stuck.to_dict()
    # one that set its own condition is left alone
    other = read.copy()
    other.set_condition("Progressing", True, "NewReplicaSetAvailable", "revision bbb", T0)
    recovered(read, other, T0)
    assert other.condition("Progressing") == {**(other.condition("Progressing") or {}),
                                              "reason": "NewReplicaSetAvailable"}


def test_long_messages_are_cut() -> None:
    failure = describe(CreateReplicaSet("bbb", 1, 2), KubeError(422, "x" * 100_000), rollout="shop",
                       traffic_done=False)
    assert len(failure.message) < 2100 and failure.message.endswith("...")


def test_a_replica_sets_replica_failure_is_shown_on_the_rollout_current_revision_first() -> None:
    st = healthy()
    st.current_pod_hash = "bbb"
    quota = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
             "message": 'pods "shop-bbb-x" is forbidden: exceeded quota: pods',
             "lastTransitionTime": fmt_time(T0)}
    old = {**quota, "message": "old revision's problem"}
    replica_failure(st, {"aaa": [old], "bbb": [quota]}, "bbb")
    cond = st.condition("ReplicaFailure")
    assert cond is not None and cond["reason"] == "FailedCreate"
    assert "exceeded quota" in cond["message"] and cond["lastTransitionTime"] == fmt_time(T0)
    before = st.to_dict()
    replica_failure(st, {"aaa": [old], "bbb": [quota]}, "bbb")
    assert st.to_dict() == before  # no churn
    replica_failure(st, {"aaa": [], "bbb": [{**quota, "status": "False"}]}, "bbb")
    assert st.condition("ReplicaFailure") is None


def test_a_message_that_changes_on_every_attempt_is_not_rewritten_within_seconds() -> None:
    # Each status write wakes the rollout again at once; a webhook message naming its
    # request would otherwise loop past the retry backoff.
    def denied(n: int) -> Failure:
        return describe(CreateReplicaSet("bbb", 1, 2),
                        KubeError(403, f"admission webhook denied request {n}"), rollout="shop",
                        traffic_done=False)

    st1, _, _ = failed_status(read=healthy(), decided=decided_new_revision(), failure=denied(1),
                              generation=2, progress_deadline_seconds=600, now=T0)
    st2, events, _ = failed_status(read=st1, decided=decided_new_revision(), failure=denied(2),
                                   generation=2, progress_deadline_seconds=600,
                                   now=T0 + timedelta(seconds=2))
    assert st2.to_dict() == st1.to_dict()  # nothing to write
    assert "request 2" in events[0].message  # the Event says what happened now
    st3, _, _ = failed_status(read=st1, decided=decided_new_revision(), failure=denied(3),
                              generation=2, progress_deadline_seconds=600,
                              now=T0 + timedelta(seconds=11))
    assert "request 3" in (st3.condition("Progressing") or {})["message"]
    # a different reason, or a new generation, is written at once
    st4, _, _ = failed_status(read=st1, decided=decided_new_revision(), failure=denied(4),
                              generation=3, progress_deadline_seconds=600,
                              now=T0 + timedelta(seconds=1))
    assert st4.observed_generation == 3

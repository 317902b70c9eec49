"""Human signals: when each applies (the 409 answers of the CLI and HTTP API)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rollouts.api.actions import ACTIONS, Action, canary_in_progress, check_action, new_action
from rollouts.api.spec import RolloutSpec, parse_spec
from rollouts.api.status import RolloutStatus

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def spec(paused: bool = False) -> RolloutSpec:
    s, errors = parse_spec({
        "replicas": 3, "paused": paused, "selector": {"matchLabels": {"app": "a"}},
        "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "a"}]}},
        "strategy": {"canary": {"canaryService": "c", "stableService": "s", "steps": [{"setWeight": 10}],
                                "trafficRouting": {"istio": {"virtualService": {"name": "vs"}}}}}})
    assert s is not None, errors
    return s


def status(**kw: Any) -> RolloutStatus:
    base: dict[str, Any] = {"stableRS": "aaa", "currentPodHash": "bbb", "phase": "Paused"}
    base.update(kw)
    return RolloutStatus.from_dict({k: v for k, v in base.items() if v is not None})


HEALTHY = {"currentPodHash": "aaa", "phase": "Healthy"}


def check(action: str, st: RolloutStatus, full: bool = False, sp: RolloutSpec | None = None) -> str | None:
    return check_action(sp or spec(), st, new_action(action, "alice", NOW, full))


def test_canary_in_progress() -> None:
    assert canary_in_progress(status())
    assert not canary_in_progress(status(**HEALTHY))
    assert not canary_in_progress(RolloutStatus())


@pytest.mark.parametrize("action", ["promote", "abort", "pause"])
def test_nothing_to_do_without_a_canary(action: str) -> None:
    why = check(action, status(**HEALTHY))
    assert why == f"nothing to {action}: no canary is in progress (phase Healthy)"
    assert check(action, RolloutStatus()) is not None


def test_promote() -> None:
    assert check("promote", status()) is None
    assert check("promote", status(), full=True) is None
    assert check("promote", status(abort=True)) == \
        "the rollout is aborted; retry it first, or promote --full"
    # Argo: a full promotion lifts an abort (issue 11 item 18)
    assert check("promote", status(abort=True), full=True) is None


def test_abort() -> None:
    assert check("abort", status()) is None
    assert check("abort", status(abort=True)) == "the rollout is already aborted"


def test_retry_only_when_aborted() -> None:
    assert check("retry", status(abort=True)) is None
    assert check("retry", status()) == "retry applies only to an aborted rollout"


def test_pause_and_resume() -> None:
    assert check("pause", status()) is None
    assert check("pause", status(userPause={"user": "bob"})) == "the rollout is already paused by a user"
    assert check("pause", status(abort=True)) == "the rollout is aborted"
    assert check("resume", status(userPause={"user": "bob"})) is None
    assert "not paused by a user" in (check("resume", status()) or "")
    assert "spec.paused" in (check("resume", status(), sp=spec(paused=True)) or "")


def test_another_pending_action_blocks_new_ones_but_not_itself() -> None:
    pending = new_action("abort", "bob", NOW)
    st = status(pendingAction=pending.to_dict())
    why = check("promote", st)
    assert why is not None and "another action (abort) is pending" in why
    assert check_action(spec(), st, pending) is None
    # a pending action recorded without an id (by hand) is still the controller's to apply
    raw = {"action": "abort", "user": "bob"}
    st = status(pendingAction=raw)
    act = Action.from_dict(raw)
    assert act is not None and check_action(spec(), st, act) is None


def test_action_for_another_revision_is_rejected() -> None:
    a = new_action("promote", "alice", NOW, pod_hash="old")
    why = check_action(spec(), status(), a)
    assert why is not None and "moved to revision bbb" in why
    assert check_action(spec(), status(), new_action("promote", "alice", NOW, pod_hash="bbb")) is None


def test_new_action_and_round_trip() -> None:
    a = new_action("promote", "alice", NOW, full=True)
    assert a.requested_at == "2024-05-01T12:00:00Z" and a.full and len(a.id) == 12
    assert new_action("promote", "alice", NOW).id != a.id
    assert Action.from_dict(a.to_dict()) == a
    b = new_action("abort", "bob", NOW, pod_hash="bbb")
    assert b.to_dict()["podHash"] == "bbb" and Action.from_dict(b.to_dict()) == b
    assert "podHash" not in a.to_dict()
    with pytest.raises(ValueError, match="unknown action 'skip'"):
        new_action("skip", "alice", NOW)
    assert set(ACTIONS) == {"promote", "abort", "retry", "pause", "resume"}


@pytest.mark.parametrize("raw", [{}, {"action": "skip"}, {"action": None}, {"action": ["abort"]},
                                 {"action": {"x": 1}}, "abort", None, 5])
def test_from_dict_rejects_nonsense(raw: Any) -> None:
    assert Action.from_dict(raw) is None


def test_from_dict_is_tolerant_of_odd_fields() -> None:
    a = Action.from_dict({"action": "promote", "full": "yes", "user": None, "id": 7})
    assert a == Action("promote", "unknown", "", False, "7")

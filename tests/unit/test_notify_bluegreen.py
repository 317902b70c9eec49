"""Notification payloads of a blue-green rollout: what its Services select, never a canary
weight or step it does not have (what a user reads in Slack or a webhook receiver)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollouts.api.status import RolloutStatus
from rollouts.notify.payloads import slack_payload, webhook_payload
from rollouts.notify.triggers import Notification, notifications_for


@dataclass(frozen=True)
class Ev:
    type: str
    reason: str
    message: str


def _bg_obj() -> dict[str, Any]:
    return {"metadata": {"namespace": "shop", "name": "web", "uid": "u1"},
            "spec": {"strategy": {"blueGreen": {"activeService": "web-active",
                                                "previewService": "web-preview"}}},
            "status": {"phase": "Paused"}}


def _bg_note() -> Notification:
    st = RolloutStatus.from_dict({"phase": "Paused", "currentPodHash": "new1", "stableRS": "old1",
                                  "blueGreen": {"activeSelector": "old1",
                                                "previewSelector": "new1"}})
    return notifications_for(_bg_obj(), st, [Ev("Normal", "RolloutPaused", "paused")],
                             "2026-05-01T12:00:00Z")[0]


def test_slack_fields_of_a_blue_green_rollout_name_active_and_preview() -> None:
    att = slack_payload(_bg_note())["attachments"][0]
    fields = {f["title"]: f["value"] for f in att["fields"]}
    assert fields == {"Phase": "Paused", "Active": "old1", "Preview": "new1", "Revision": "new1"}


def test_webhook_of_a_blue_green_rollout_names_its_services_revisions() -> None:
    ro = webhook_payload(_bg_note())["rollout"]
    assert ro["strategy"] == "blueGreen"
    assert ro["activeRevision"] == "old1" and ro["previewRevision"] == "new1"
    assert ro["canaryWeight"] == 0  # kept: the payload's fields are only ever added


def test_canary_payloads_keep_step_and_weight() -> None:
    obj = {"metadata": {"namespace": "shop", "name": "web", "uid": "u1"},
           "spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}]}}}, "status": {}}
    st = RolloutStatus.from_dict({"phase": "Progressing", "currentPodHash": "abc",
                                  "stableRS": "old", "currentStepIndex": 1,
                                  "canary": {"weights": {"canary": {"weight": 20}}}})
    n = notifications_for(obj, st, [Ev("Normal", "RolloutStepCompleted", "s")],
                         "2026-05-01T12:00:00Z")[0]
    fields = {f["title"]: f["value"] for f in slack_payload(n)["attachments"][0]["fields"]}
    assert fields["Step"] == "1/1" and fields["Canary weight"] == "20%"
    ro = webhook_payload(n)["rollout"]
    assert ro["strategy"] == "canary" and "activeRevision" not in ro

"""Receivers of every type from the ConfigMap and its Secrets: a missing Secret or key is a
clear, logged error that leaves that receiver out, counts its sends as failures and
changes nothing else (never an exception in a reconcile)."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest

from rollouts.kube.client import SECRETS
from rollouts.notify.config import parse_config
from rollouts.notify.delivery import Deliveries
from rollouts.notify.notifier import Notifier
from rollouts.notify.services import ALERT_TRIGGERS, RECEIVER_TYPES
from rollouts.notify.source import CONFIGMAPS, ConfigSource
from tests.unit.notify_fakes import ABORT_EVENT, ABORTED, Observer, rollout_obj, status

NS = "rollouts-system"
CM = {
    "receiver.pd": "type: pagerdutyv2\nroutingKey: {secretKeyRef: {name: notif, key: pd}}\n",
    "receiver.og": "type: opsgenie\napiKey: {secretKeyRef: {name: notif, key: og}}\n",
    "receiver.mail": "type: email\nhost: smtp.x.io\nfrom: a@x.io\nto: [b@x.io]\nusername: bot\n"
                     "password: {secretKeyRef: {name: mail, key: password}}\n",
    "receiver.ch": "type: teams\nurl: {secretKeyRef: {name: notif, key: teams}}\n",
    "receiver.hook": "type: webhook\nurl: {secretKeyRef: {name: notif, key: hook}}\n",
    "subscriptions": "- triggers: ['*']\n  receivers: [pd, og, mail, ch, hook]\n",
}


def _b64(v: str) -> str:
    return base64.b64encode(v.encode()).decode()


class FakeKube:
    def __init__(self, objects: dict[str, dict[str, Any]]) -> None:
        self.objects = objects

    async def get_or_none(self, path: str) -> dict[str, Any] | None:
        return self.objects.get(path)


def _kube(secrets: dict[str, dict[str, str]]) -> FakeKube:
    objs = {CONFIGMAPS.path(NS, "rollouts-notifications"): {"data": CM}}
    for name, data in secrets.items():
        objs[SECRETS.path(NS, name)] = {"data": {k: _b64(v) for k, v in data.items()}}
    return FakeKube(objs)


def test_every_type_is_known() -> None:
    assert set(RECEIVER_TYPES) == {"webhook", "slack", "teams", "teams-workflows", "email",
                                   "pagerdutyv2", "opsgenie"}
    cfg = parse_config({"receiver.x": "type: sms\n"})
    assert "type must be one of webhook, slack, teams, teams-workflows, email, pagerdutyv2, opsgenie" \
        in cfg.errors[0]


def test_alert_triggers_are_the_argo_trigger_names() -> None:
    assert ALERT_TRIGGERS == {
        "RolloutAnalysisFailed": "on-analysis-run-failed",
        "RolloutAnalysisError": "on-analysis-run-error",
        "RolloutAnalysisInconclusive": "on-analysis-run-inconclusive",
        "RolloutAborted": "on-rollout-aborted",
        "RolloutProgressDeadlineExceeded": "on-rollout-progress-deadline-exceeded",
    }


async def test_all_secrets_found() -> None:
    kube = _kube({"notif": {"pd": "k" * 32, "og": "og-key", "teams": "https://t.example/webhookb2/x",
                            "hook": "https://h.example/"},
                  "mail": {"password": "pw"}})
    loaded = await ConfigSource(kube, NS, "rollouts-notifications").load()  # type: ignore[arg-type]
    assert loaded.errors == ()
    assert loaded.secrets == {"pd": {"routingKey": "k" * 32}, "og": {"apiKey": "og-key"},
                              "mail": {"password": "pw"}, "ch": {"url": "https://t.example/webhookb2/x"},
                              "hook": {"url": "https://h.example/"}}
    assert loaded.urls == {"ch": "https://t.example/webhookb2/x", "hook": "https://h.example/"}


async def test_missing_secret_and_key_are_clear_errors_and_counted_never_raised(
        caplog: pytest.LogCaptureFixture) -> None:
    # Secret "mail" missing; "notif" lacks the Opsgenie key and has an empty PagerDuty key
    kube = _kube({"notif": {"pd": "", "teams": "https://t.example/webhookb2/x", "hook": "https://h/"}})
    with caplog.at_level(logging.WARNING, logger="rollouts.notify.source"):
        loaded = await ConfigSource(kube, NS, "rollouts-notifications").load()  # type: ignore[arg-type]
    assert sorted(loaded.errors) == sorted([
        "receiver.mail: Secret rollouts-system/mail not found",
        "receiver.og: Secret notif has no key og",
        "receiver.pd: Secret notif key pd is empty",
    ])
    assert all(e in caplog.text for e in loaded.errors)  # logged, once each
    assert set(loaded.secrets) == {"ch", "hook"}

    obs = Observer()
    d = Deliveries(obs)
    n = Notifier(d)
    n.loaded = loaded
    n(rollout_obj("Paused"), status(**ABORTED), [ABORT_EVENT])  # must not raise
    failed = {e for e in obs.log if e[0] == "failed"}
    assert failed == {("failed", "email", "mail", "no_secret"), ("failed", "pagerdutyv2", "pd", "no_secret"),
                      ("failed", "opsgenie", "og", "no_secret")}
    assert {k for k, _ in d.senders} == {"teams", "webhook"}  # the good receivers still get it
    await d.close()

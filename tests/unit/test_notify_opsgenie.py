"""Opsgenie receivers: Alert API bodies, GenieKey auth, US/EU endpoints, and a rollout's
alert created when it fails and closed (by alias) when it is Healthy again, against an
in-test Alert API (notify_fakes)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import pytest

from rollouts.notify.alerts import Alert
from rollouts.notify.config import parse_config
from rollouts.notify.delivery import Deliveries, Policy
from rollouts.notify.notifier import Notifier
from rollouts.notify.opsgenie import (
    DEFAULT_API_URL,
    EU_API_URL,
    OpsgenieSettings,
    alias,
    create_body,
    incident_job,
)
from rollouts.notify.source import Loaded
from tests.unit.notify_fakes import (
    ABORT_EVENT,
    ABORTED,
    Ev,
    FakeOpsgenie,
    Observer,
    rollout_obj,
    serve,
    status,
)

KEY = "eb243592-faa2-4ba2-a551q-1afdf565c889"
NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
REF = "apiKey: {secretKeyRef: {name: notif, key: og}}\n"


def _alert(**kw: str) -> Alert:
    base = {"namespace": "shop", "rollout": "web", "alertname": "RolloutAborted", "metric": "",
            "severity": "critical", "description": "rollout aborted by alice", "revision": "abc"}
    base.update(kw)
    return Alert(**base, starts_at=NOW)  # type: ignore[arg-type]


# --- settings and bodies ----------------------------------------------------------------

def test_settings_us_eu_and_full_urls() -> None:
    cfg = parse_config({
        "receiver.us": "type: opsgenie\n" + REF,
        "receiver.eu": "type: opsgenie\napiUrl: api.eu.opsgenie.com\n" + REF,
        "receiver.full": "type: opsgenie\napiUrl: https://api.eu.opsgenie.com/\npriority: P2\n"
                         "responders: [{type: team, name: payments}, {type: user, username: a@x.io}]\n"
                         "tags: [prod]\n" + REF,
    })
    assert cfg.errors == ()
    assert cfg.receivers["us"].settings == OpsgenieSettings(DEFAULT_API_URL)
    assert cfg.receivers["eu"].settings.api_url == EU_API_URL
    full = cfg.receivers["full"].settings
    assert full.api_url == EU_API_URL and full.priority == "P2" and full.tags == ("prod",)
    assert [dict(r) for r in full.responders] == [{"type": "team", "name": "payments"},
                                                  {"type": "user", "username": "a@x.io"}]
    assert cfg.receivers["us"].refs()["apiKey"].key == "og"


@pytest.mark.parametrize(("entry", "problem"), [
    ("type: opsgenie\napiKey: abc\n", "apiKey must come from a Secret"),
    ("type: opsgenie\napiUrl: api.opsgenie.com/v2\n" + REF, "apiUrl must be"),
    ("type: opsgenie\npriority: urgent\n" + REF, "priority must be one of P1"),
    ("type: opsgenie\nresponders: [{type: team}]\n" + REF, "responders must be"),
    ("type: opsgenie\nresponders: [{type: pager, name: x}]\n" + REF, "responders must be"),
    ("type: opsgenie\ntags: prod\n" + REF, "tags must be a list"),
])
def test_bad_settings(entry: str, problem: str) -> None:
    cfg = parse_config({"receiver.og": entry})
    assert cfg.receivers == {} and len(cfg.errors) == 1 and problem in cfg.errors[0]


def test_create_body_and_limits() -> None:
    s = OpsgenieSettings(responders=((("type", "team"), ("name", "payments")),), tags=("prod",))
    b = create_body(s, _alert())
    assert b["message"] == "Rollout shop/web: RolloutAborted (rollout)"
    assert b["alias"] == "rollouts.dev:shop:web:RolloutAborted"
    assert b["description"] == "rollout aborted by alice"
    assert b["priority"] == "P1" and b["entity"] == "shop/web" and b["source"] == "rollouts-controller"
    assert b["tags"] == ["rollouts", "shop", "RolloutAborted", "prod"]
    assert b["responders"] == [{"type": "team", "name": "payments"}]
    assert b["details"] == {"namespace": "shop", "rollout": "web", "alertname": "RolloutAborted",
                            "severity": "critical", "revision": "abc"}
    assert create_body(OpsgenieSettings(), _alert(severity="warning"))["priority"] == "P3"
    assert create_body(OpsgenieSettings(priority="P5"), _alert())["priority"] == "P5"
    long = create_body(OpsgenieSettings(), _alert(rollout="r" * 300, description="d" * 20000))
    assert len(long["message"]) == 130 and len(long["description"]) == 15000
    assert "responders" not in create_body(OpsgenieSettings(), _alert())


def test_requests_carry_the_genie_key_and_close_by_alias() -> None:
    s = OpsgenieSettings(EU_API_URL)
    create = incident_job(s, {"apiKey": KEY}, _alert(), resolve=False)
    assert create.url == "https://api.eu.opsgenie.com/v2/alerts"
    assert create.headers == {"Authorization": f"GenieKey {KEY}"}
    close = incident_job(s, {"apiKey": KEY}, _alert(metric="p99 latency"), resolve=True)
    assert close.url == ("https://api.eu.opsgenie.com/v2/alerts/"
                         "rollouts.dev%3Ashop%3Aweb%3ARolloutAborted%3Ap99%20latency/close?identifierType=alias")
    assert close.body == {"source": "rollouts-controller", "note": "Rollout shop/web is healthy again"}
    assert alias(_alert(metric="p99 latency")) == "rollouts.dev:shop:web:RolloutAborted:p99 latency"


# --- against the Alert API --------------------------------------------------------------

def _notifier(api: str, key: str = KEY,
              policy: Policy | None = None) -> tuple[Notifier, Deliveries, Observer]:
    cfg = parse_config({"receiver.ops": f"type: opsgenie\napiUrl: {api}\n" + REF,
                        "subscriptions": "- triggers: [on-rollout-aborted]\n  receivers: [ops]\n"})
    obs = Observer()
    d = Deliveries(obs, policy or Policy(base_delay=0.01, max_delay=2))
    n = Notifier(d)
    n.loaded = Loaded(cfg, {}, (), {"ops": {"apiKey": key}})
    return n, d, obs


async def test_abort_creates_an_alert_closed_when_healthy() -> None:
    og = FakeOpsgenie(frozenset({KEY}))
    async with serve(og.app()) as api:
        n, d, obs = _notifier(api)
        n(rollout_obj("Paused"), status(**ABORTED), [ABORT_EVENT])
        n(rollout_obj("Degraded"), status(phase="Progressing"), [Ev("Normal", "RolloutRetried", "r")])
        await d.drain(5)
        (a,) = og.alerts.values()
        assert a["status"] == "open" and a["priority"] == "P1"
        assert "aborted by alice" in a["description"]
        n(rollout_obj("Progressing"), status(phase="Healthy"), [])
        await d.drain(5)
        await d.close()
    assert [(act, al) for act, al, _ in og.log] == [("create", "rollouts.dev:shop:web:RolloutAborted"),
                                                   ("close", "rollouts.dev:shop:web:RolloutAborted")]
    assert og.alerts["rollouts.dev:shop:web:RolloutAborted"]["status"] == "closed"
    assert obs.log == [("sent", "opsgenie", "ops")] * 2


async def test_wrong_key_is_401_final_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    og = FakeOpsgenie(frozenset({KEY}))
    async with serve(og.app()) as api:
        n, d, obs = _notifier(api, key="not-the-key")
        with caplog.at_level(logging.WARNING, logger="rollouts.notify.delivery"):
            n(rollout_obj("Paused"), status(**ABORTED), [ABORT_EVENT])
            await d.drain(5)
        await d.close()
    assert og.requests == 1 and og.alerts == {}
    assert obs.log == [("failed", "opsgenie", "ops", "rejected")]
    assert "HTTP 401: Could not authenticate" in caplog.text and "not-the-key" not in caplog.text


async def test_throttled_then_created() -> None:
    og = FakeOpsgenie(frozenset({KEY}))
    og.faults.next(429, retry_after="1", body='{"message":"You are making too many requests!"}')
    og.faults.next(500)
    async with serve(og.app()) as api:
        n, d, obs = _notifier(api, policy=Policy(base_delay=0.01, max_delay=5))
        t0 = time.monotonic()
        n(rollout_obj("Paused"), status(**ABORTED), [ABORT_EVENT])
        await d.drain(10)
        took = time.monotonic() - t0
        await d.close()
    assert og.requests == 3 and len(og.alerts) == 1 and took >= 0.95
    assert obs.log == [("sent", "opsgenie", "ops")]


async def test_opsgenie_refuses_an_empty_message() -> None:  # the fake is faithful about 422
    import httpx
    og = FakeOpsgenie(frozenset({KEY}))
    async with serve(og.app()) as api, httpx.AsyncClient() as c:
        r = await c.post(f"{api}/v2/alerts", json={"message": ""},
                         headers={"Authorization": f"GenieKey {KEY}"})
    assert r.status_code == 422 and r.json()["errors"] == {"message": "Message can not be empty."}

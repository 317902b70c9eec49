"""PagerDuty receivers: Events API v2 bodies, and a rollout's incident triggered when it
fails and resolved when it is Healthy again, against an in-test Events API (notify_fakes)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import pytest

from rollouts.notify.alerts import Alert
from rollouts.notify.config import parse_config
from rollouts.notify.delivery import Deliveries, Policy
from rollouts.notify.notifier import Notifier
from rollouts.notify.pagerduty import DEFAULT_API_URL, PagerDutySettings, dedup_key, event
from rollouts.notify.source import Loaded
from tests.unit.notify_fakes import (
    ABORT_EVENT,
    ABORTED,
    Ev,
    FakePagerDuty,
    Observer,
    rollout_obj,
    serve,
    status,
)

KEY = "R0UT1NGKEY0123456789abcdefABCDEF"  # an integration key is 32 characters
NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def _alert(**kw: str) -> Alert:
    base = {"namespace": "shop", "rollout": "web", "alertname": "RolloutAnalysisFailed",
            "metric": "error-rate", "severity": "critical",
            "description": "canary error rate 1.6-2.9 x stable", "revision": "abc"}
    base.update(kw)
    return Alert(**base, starts_at=NOW)  # type: ignore[arg-type]


# --- settings and bodies ----------------------------------------------------------------

def test_settings() -> None:
    cfg = parse_config({
        "receiver.pd": "type: pagerdutyv2\nrouting_key: x\n"
                       "routingKey: {secretKeyRef: {name: notif, key: pd}}\n",
        "receiver.eu": "type: pagerdutyv2\nroutingKey: {secretKeyRef: {name: notif, key: pd}}\n"
                       "apiUrl: https://events.eu.pagerduty.com/\n",
        "receiver.inline": "type: pagerdutyv2\nroutingKey: R0UT1NGKEY0123456789abcdefABCDEF\n",
        "receiver.noref": "type: pagerdutyv2\n",
        "receiver.badurl": "type: pagerdutyv2\nroutingKey: {secretKeyRef: {name: n, key: k}}\napiUrl: ftp://x\n",
    })
    assert cfg.receivers["pd"].settings == PagerDutySettings(DEFAULT_API_URL)
    assert cfg.receivers["pd"].refs()["routingKey"].key == "pd"
    assert cfg.receivers["eu"].settings.api_url == "https://events.eu.pagerduty.com"
    assert set(cfg.receivers) == {"pd", "eu"}
    errs = "\n".join(cfg.errors)
    assert "receiver.inline: routingKey must come from a Secret" in errs
    assert "receiver.noref: routingKey.secretKeyRef needs name and key" in errs
    assert "receiver.badurl: apiUrl must be an http(s) URL" in errs


def test_trigger_event_body() -> None:
    body = event(_alert(), KEY, resolve=False, timestamp="2026-05-01T12:00:00.000000Z")
    assert body["routing_key"] == KEY and body["event_action"] == "trigger"
    assert body["dedup_key"] == "rollouts.dev:shop:web:RolloutAnalysisFailed:error-rate"
    p = body["payload"]
    assert p["summary"].startswith("Rollout shop/web: RolloutAnalysisFailed (analysis metric error-rate)")
    assert p["summary"].endswith("canary error rate 1.6-2.9 x stable")
    assert (p["source"], p["severity"], p["component"], p["group"], p["class"]) == (
        "shop/web", "critical", "web", "shop", "RolloutAnalysisFailed")
    assert p["timestamp"] == "2026-05-01T12:00:00.000000Z"
    assert p["custom_details"] == {"description": "canary error rate 1.6-2.9 x stable",
                                   "revision": "abc", "alertname": "RolloutAnalysisFailed",
                                   "metric": "error-rate"}


def test_resolve_body_and_limits() -> None:
    assert event(_alert(), KEY, resolve=True, timestamp="t") == {
        "routing_key": KEY, "event_action": "resolve",
        "dedup_key": "rollouts.dev:shop:web:RolloutAnalysisFailed:error-rate"}
    long = _alert(description="x" * 5000, metric="m" * 400, severity="page-me")
    body = event(long, KEY, resolve=False, timestamp="t")
    assert len(body["payload"]["summary"]) == 1024 and len(body["dedup_key"]) == 255
    assert body["payload"]["severity"] == "warning"  # only PagerDuty's four are sent
    assert dedup_key(_alert(metric="")) == "rollouts.dev:shop:web:RolloutAnalysisFailed"


# --- against the Events API -------------------------------------------------------------

def _notifier(api: str, *, subscribe: str = "['*']", key: str = KEY,
              policy: Policy | None = None) -> tuple[Notifier, Deliveries, Observer]:
    cfg = parse_config({
        "receiver.oncall": f"type: pagerdutyv2\napiUrl: {api}\n"
                           "routingKey: {secretKeyRef: {name: notif, key: pd}}\n",
        "subscriptions": f"- triggers: {subscribe}\n  receivers: [oncall]\n"})
    assert cfg.errors == ()
    obs = Observer()
    d = Deliveries(obs, policy or Policy(base_delay=0.01, max_delay=2))
    n = Notifier(d)
    n.loaded = Loaded(cfg, {}, (), {"oncall": {"routingKey": key}})
    return n, d, obs


async def test_abort_triggers_one_incident_resolved_when_healthy() -> None:
    pd = FakePagerDuty()
    async with serve(pd.app()) as api:
        n, d, obs = _notifier(api)
        n(rollout_obj("Paused"), status(**ABORTED), [ABORT_EVENT])
        n(rollout_obj("Degraded"), status(**ABORTED), [])  # later reconciles: nothing new
        n(rollout_obj("Degraded"), status(phase="Progressing"), [Ev("Normal", "RolloutRetried", "r")])
        await d.drain(5)
        assert [e["event_action"] for e in pd.events] == ["trigger"]
        (ident,) = pd.incidents
        assert ident == (KEY, "rollouts.dev:shop:web:RolloutAborted") and pd.incidents[ident] == "triggered"
        assert "aborted by alice" in pd.events[0]["payload"]["summary"]
        n(rollout_obj("Progressing"), status(phase="Healthy"), [Ev("Normal", "RolloutCompleted", "ok")])
        await d.drain(5)
        await d.close()
    assert [e["event_action"] for e in pd.events] == ["trigger", "resolve"]
    assert pd.incidents == {ident: "resolved"}
    assert obs.log == [("sent", "pagerdutyv2", "oncall")] * 2


async def test_restart_re_triggers_the_same_incident_and_a_deleted_rollout_resolves() -> None:
    pd = FakePagerDuty()
    async with serve(pd.app()) as api:
        n, d, _ = _notifier(api)
        n(rollout_obj("Paused"), status(**ABORTED), [ABORT_EVENT])
        await d.drain(5)
        await d.close()
        n2, d2, _ = _notifier(api)  # a new controller: alerts rebuilt from status alone
        n2.exists = lambda key: False
        n2(rollout_obj("Degraded"), status(**ABORTED), [])
        await d2.drain(5)
        assert len(pd.incidents) == 1 and [e["event_action"] for e in pd.events] == ["trigger"] * 2
        n2.resend()  # the rollout was deleted: its incident is resolved
        await d2.drain(5)
        await d2.close()
    assert list(pd.incidents.values()) == ["resolved"]


async def test_only_subscribed_triggers_open_incidents() -> None:
    pd = FakePagerDuty()
    async with serve(pd.app()) as api:
        n, d, _ = _notifier(api, subscribe="[on-analysis-run-failed]")
        n(rollout_obj("Paused"), status(**ABORTED), [ABORT_EVENT])  # a manual abort: not paged
        await d.drain(5)
        assert pd.requests == 0
        failed = status(phase="Degraded", abort=True, abortReason="analysis failed",
                        analysis={"phase": "Failed", "metrics": [{"name": "error-rate", "phase": "Failed"}]})
        n(rollout_obj("Paused", {}) | {"metadata": {"namespace": "shop", "name": "api"}}, failed,
          [Ev("Warning", "AnalysisRunFailed", "canary error rate 3x stable")])
        await d.drain(5)
        await d.close()
    (ev,) = pd.events
    assert ev["dedup_key"] == "rollouts.dev:shop:api:RolloutAnalysisFailed:error-rate"
    assert ev["payload"]["severity"] == "critical"


async def test_429_honours_retry_after_and_5xx_is_retried() -> None:
    pd = FakePagerDuty()
    pd.faults.next(429, retry_after="1", body='{"status":"throttle exceeded"}')
    pd.faults.next(503)
    async with serve(pd.app()) as api:
        n, d, obs = _notifier(api, policy=Policy(base_delay=0.01, max_delay=5))
        t0 = time.monotonic()
        n(rollout_obj("Paused"), status(**ABORTED), [ABORT_EVENT])
        await d.drain(10)
        took = time.monotonic() - t0
        await d.close()
    assert pd.requests == 3 and len(pd.events) == 1
    assert took >= 0.95  # waited the server's Retry-After, not the 0.01 s backoff
    assert obs.log == [("sent", "pagerdutyv2", "oncall")]


async def test_invalid_event_is_final_and_logged_with_pagerdutys_message(
        caplog: pytest.LogCaptureFixture) -> None:
    pd = FakePagerDuty()
    async with serve(pd.app()) as api:
        n, d, obs = _notifier(api, key="too-short")
        with caplog.at_level(logging.WARNING, logger="rollouts.notify.delivery"):
            n(rollout_obj("Paused"), status(**ABORTED), [ABORT_EVENT])
            await d.drain(5)
        await d.close()
    assert pd.requests == 1  # a 400 is not retried
    assert obs.log == [("failed", "pagerdutyv2", "oncall", "rejected")]
    assert "Event object is invalid" in caplog.text and "routing_key" in caplog.text
    assert "too-short" not in caplog.text  # the key itself is never logged


async def test_a_dead_endpoint_never_blocks_the_decision() -> None:
    from tests.unit.notify_fakes import free_port
    n, d, obs = _notifier(f"http://127.0.0.1:{free_port()}", policy=Policy(attempts=2, base_delay=0.01))
    t0 = time.monotonic()
    n(rollout_obj("Paused"), status(**ABORTED), [ABORT_EVENT])
    assert time.monotonic() - t0 < 0.1  # the listener only enqueued
    await d.drain(5)
    await d.close()
    assert obs.log == [("failed", "pagerdutyv2", "oncall", "retries_exhausted")]


async def test_missing_key_counted_once_and_paged_once_the_secret_exists() -> None:
    pd = FakePagerDuty()
    async with serve(pd.app()) as api:
        n, d, obs = _notifier(api)
        good = n.loaded
        n.loaded = Loaded(good.config, {}, ("receiver.oncall: Secret notif not found",), {})
        n(rollout_obj("Paused"), status(**ABORTED), [ABORT_EVENT])
        n(rollout_obj("Degraded"), status(**ABORTED), [])
        assert obs.log == [("failed", "pagerdutyv2", "oncall", "no_secret")]  # once, not per reconcile
        n.loaded = good  # the Secret was created; the next reload finds it
        n(rollout_obj("Degraded"), status(**ABORTED), [])
        n(rollout_obj("Degraded"), status(**ABORTED), [])
        await d.drain(5)
        assert [e["event_action"] for e in pd.events] == ["trigger"]
        n(rollout_obj("Progressing"), status(phase="Healthy"), [])
        await d.drain(5)
        await d.close()
    assert [e["event_action"] for e in pd.events] == ["trigger", "resolve"]


async def test_never_opened_is_never_resolved() -> None:
    pd = FakePagerDuty()
    async with serve(pd.app()) as api:
        n, d, obs = _notifier(api)
        good = n.loaded
        n.loaded = Loaded(good.config, {}, (), {})
        n(rollout_obj("Paused"), status(**ABORTED), [ABORT_EVENT])
        n(rollout_obj("Degraded"), status(phase="Healthy"), [])
        await d.drain(5)
        await d.close()
    assert pd.requests == 0 and obs.log == [("failed", "pagerdutyv2", "oncall", "no_secret")]

"""Pure parts of notifications: trigger mapping, payloads, configuration, backoff, alerts."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from rollouts.api.status import RolloutStatus
from rollouts.notify.alerts import AlertTracker, causes
from rollouts.notify.config import parse_config, receivers_for, rollout_alertmanager_urls
from rollouts.notify.delivery import Job, NullObserver, Policy, Sender, retry_delay, retryable
from rollouts.notify.payloads import slack_payload, webhook_payload
from rollouts.notify.triggers import kebab, notifications_for, trigger_for

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Ev:
    type: str
    reason: str
    message: str


def _obj(phase: str | None = "Paused", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"namespace": "shop", "name": "web", "uid": "u1",
                         "annotations": annotations or {}},
            "spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}},
            "status": {"phase": phase} if phase else {}}


def _status(**kw: Any) -> RolloutStatus:
    base: dict[str, Any] = {"phase": "Progressing", "currentPodHash": "abc", "stableRS": "old",
                            "currentStepIndex": 1, "canary": {"weights": {"canary": {"weight": 20}}}}
    base.update(kw)
    return RolloutStatus.from_dict(base)


# --- triggers ---------------------------------------------------------------------------

@pytest.mark.parametrize(("reason", "trigger"), [
    ("RolloutStepCompleted", "on-rollout-step-completed"),
    ("RolloutPaused", "on-rollout-paused"),
    ("RolloutAborted", "on-rollout-aborted"),
    ("RolloutCompleted", "on-rollout-completed"),
    ("RolloutUpdated", "on-rollout-updated"),
    ("AnalysisRunFailed", "on-analysis-run-failed"),
    ("AnalysisRunError", "on-analysis-run-error"),
    ("AnalysisRunInconclusive", "on-analysis-run-inconclusive"),
    ("ProgressDeadlineExceeded", "on-rollout-progress-deadline-exceeded"),
    # not in the table: kebab-cased, so new reasons are notifiable at once
    ("AnalysisRunTerminated", "on-analysis-run-terminated"),
    ("CanaryHPAScaled", "on-rollout-canary-hpa-scaled"),
])
def test_trigger_for(reason: str, trigger: str) -> None:
    assert trigger_for(reason) == trigger


def test_kebab() -> None:
    assert kebab("RolloutStepCompleted") == "rollout-step-completed"
    assert kebab("HTTPError") == "http-error"


def test_notifications_keep_event_order_and_add_degraded_on_phase_change() -> None:
    st = _status(phase="Degraded", message="RolloutAborted: aborted by me", abort=True)
    notes = notifications_for(_obj("Paused"), st, [Ev("Warning", "RolloutAborted", "aborted by me"),
                                                   Ev("Normal", "TrafficWeightUpdated", "20 -> 0")],
                              "2026-05-01T12:00:00Z")
    assert [n.trigger for n in notes] == ["on-rollout-aborted", "on-traffic-weight-updated",
                                          "on-rollout-degraded"]
    assert notes[0].namespace == "shop" and notes[0].rollout == "web" and notes[0].steps == 2
    # already Degraded before: no second on-rollout-degraded
    assert notifications_for(_obj("Degraded"), st, [], "t") == []


# --- payloads ---------------------------------------------------------------------------

def test_webhook_payload_shape() -> None:
    n = notifications_for(_obj(), _status(), [Ev("Normal", "RolloutStepCompleted", "step 1/2")],
                          "2026-05-01T12:00:00Z")[0]
    p = webhook_payload(n)
    assert p["version"] == "rollouts.dev/v1"
    assert p["trigger"] == "on-rollout-step-completed"
    assert p["event"] == {"type": "Normal", "reason": "RolloutStepCompleted", "message": "step 1/2"}
    assert p["rollout"]["namespace"] == "shop" and p["rollout"]["canaryWeight"] == 20
    assert p["rollout"]["currentStepIndex"] == 1 and p["rollout"]["steps"] == 2


def test_slack_payload_shape() -> None:
    n = notifications_for(_obj(), _status(), [Ev("Warning", "RolloutAborted", "aborted by me")],
                          "2026-05-01T12:00:00Z")[0]
    p = slack_payload(n, "#deploys")
    assert p["channel"] == "#deploys"
    assert "shop/web" in p["text"] and "on-rollout-aborted" in p["text"] and "aborted by me" in p["text"]
    att = p["attachments"][0]
    assert att["color"] == "danger"
    assert {f["title"] for f in att["fields"]} == {"Phase", "Step", "Canary weight", "Revision"}
    assert att["ts"] == int(NOW.timestamp())


# --- configuration ----------------------------------------------------------------------

CFG = {
    "receiver.hook": "type: webhook\nurl: {secretKeyRef: {name: s, key: hook}}\n",
    "receiver.chat": "type: slack\nurl: {secretKeyRef: {name: s, key: slack}}\nchannel: '#c'\n",
    "receiver.inline": "type: webhook\nurl: http://evil.example/\n",
    "subscriptions": "- triggers: [on-rollout-aborted]\n  receivers: [chat, hook]\n"
                     "- triggers: ['*']\n  receivers: [hook, nope]\n  namespaces: [shop]\n",
    "alertmanager.urls": "- http://am:9093/\n",
}


def test_parse_config_rejects_inline_urls_and_unknown_receivers() -> None:
    cfg = parse_config(CFG)
    assert set(cfg.receivers) == {"hook", "chat"}
    assert cfg.receivers["chat"].channel == "#c"
    assert cfg.receivers["hook"].url.key == "hook"
    assert cfg.alertmanager_urls == ("http://am:9093",)
    assert any("never inline" in e for e in cfg.errors)
    assert any("unknown receivers nope" in e for e in cfg.errors)


def test_parse_config_never_raises() -> None:
    cfg = parse_config({"subscriptions": "{", "receiver.x": "[1]", "alertmanager.urls": "5"})
    assert cfg.receivers == {} and cfg.subscriptions == () and len(cfg.errors) == 3
    assert parse_config(None).receivers == {}


def test_receivers_for_subscriptions_namespaces_and_annotations() -> None:
    cfg = parse_config(CFG)
    assert receivers_for(cfg, "on-rollout-aborted", "shop", {}) == ["chat", "hook"]
    assert receivers_for(cfg, "on-rollout-aborted", "other", {}) == ["chat", "hook"]
    assert receivers_for(cfg, "on-rollout-paused", "other", {}) == []
    ann = {"notifications.rollouts.dev/subscribe.on-rollout-paused": "chat, unknown"}
    assert receivers_for(cfg, "on-rollout-paused", "other", ann) == ["chat"]


def test_rollout_alertmanager_urls() -> None:
    ann = {"notifications.rollouts.dev/alertmanager-url": "http://a:9093/, ftp://x, http://b"}
    assert rollout_alertmanager_urls(ann) == ["http://a:9093", "http://b"]


# --- backoff ----------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "retry"), [(None, True), (429, True), (500, True), (503, True),
                                               (400, False), (401, False), (404, False), (410, False)])
def test_retryable(status: int | None, retry: bool) -> None:
    assert retryable(status) is retry


def test_retry_delay_exponential_capped_and_retry_after() -> None:
    assert [retry_delay(a, 503, base=0.5, cap=3) for a in range(1, 6)] == [0.5, 1.0, 2.0, 3, 3]
    assert retry_delay(1, 429, "7", cap=30) == 7.0
    assert retry_delay(1, 429, "999", cap=30) == 30
    assert retry_delay(1, 429, "Wed, 21 Oct 2015 07:28:00 GMT", base=1) == 1.0
    assert retry_delay(1, 404) is None


class _Obs:
    def __init__(self) -> None:
        self.log: list[tuple[str, ...]] = []

    def sent(self, receiver_type: str, receiver: str) -> None:
        self.log.append(("sent", receiver))

    def failed(self, receiver_type: str, receiver: str, reason: str) -> None:
        self.log.append(("failed", receiver, reason))


async def test_sender_retries_5xx_and_429_but_not_4xx() -> None:
    calls: list[str] = []
    answers = {"/flaky": [503, 429, 200], "/bad": [400, 200]}

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req.url.path)
        return httpx.Response(answers[req.url.path].pop(0))

    obs = _Obs()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        s = Sender("webhook", "r", client, obs, Policy(attempts=5, base_delay=0.001, max_delay=0.01))
        assert await s.deliver(Job("http://x/flaky", {}, "t"))
        assert not await s.deliver(Job("http://x/bad", {}, "t"))
    assert calls == ["/flaky"] * 3 + ["/bad"]
    assert obs.log == [("sent", "r"), ("failed", "r", "rejected")]


async def test_sender_gives_up_after_attempts_and_drops_when_full() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    obs = _Obs()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        s = Sender("slack", "r", client, obs, Policy(queue_size=1, attempts=3, base_delay=0.001))
        assert not await s.deliver(Job("http://x/", {}, "t"))
        assert s.offer(Job("http://x/", {}, "t"))
        assert not s.offer(Job("http://x/", {}, "t"))
    assert obs.log == [("failed", "r", "retries_exhausted"), ("failed", "r", "queue_full")]
    NullObserver().failed("a", "b", "c")
    await asyncio.sleep(0)


# --- alerts -----------------------------------------------------------------------------

def test_manual_abort_is_one_rollout_aborted_alert() -> None:
    st = _status(phase="Degraded", abort=True, abortReason="aborted by me",
                 message="RolloutAborted: aborted by me").to_dict()
    cs = causes(st, [Ev("Warning", "RolloutAborted", "rollout aborted by me: traffic back to stable")])
    assert [(c.alertname, c.severity, c.from_event) for c in cs] == [("RolloutAborted", "critical", True)]
    assert "aborted by me" in cs[0].description
    # from status alone (controller restarted)
    cs = causes(st, [])
    assert [(c.alertname, c.description) for c in cs] == [("RolloutAborted", "RolloutAborted: aborted by me")]


def test_analysis_failure_with_abort_is_one_alert_with_metric() -> None:
    st = _status(phase="Degraded", abort=True, abortReason="analysis failed",
                 analysis={"phase": "Failed", "metrics": [
                     {"name": "error-rate", "phase": "Failed", "value": "0.05", "eValue": 40.0},
                     {"name": "latency", "phase": "Successful", "value": 0.2}]}).to_dict()
    events = [Ev("Warning", "AnalysisRunFailed", "canary error rate 1.6-2.9 x stable"),
              Ev("Warning", "RolloutAborted", "rollout aborted by controller")]
    cs = causes(st, events)
    assert [(c.alertname, c.metric) for c in cs] == [("RolloutAnalysisFailed", "error-rate")]
    assert cs[0].description.startswith("canary error rate 1.6-2.9 x stable")
    assert "aborted" in cs[0].description


def test_deadline_and_inconclusive() -> None:
    st = _status(phase="Degraded", conditions=[
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
         "message": "no progress for 600s"}]).to_dict()
    assert [(c.alertname, c.severity) for c in causes(st, [])] == [
        ("RolloutProgressDeadlineExceeded", "warning")]
    st = _status(phase="Paused", canary={"currentStepAnalysisRunStatus": {
        "name": "web-abc-1", "status": "Inconclusive", "message": "not enough data"}}).to_dict()
    cs = causes(st, [])
    assert [(c.alertname, c.description) for c in cs] == [("RolloutAnalysisInconclusive", "not enough data")]


def test_tracker_fires_once_updates_on_new_explanations_and_resolves_when_healthy() -> None:
    t = AlertTracker()
    aborted = _status(phase="Degraded", abort=True, message="RolloutAborted: aborted by me").to_dict()
    ev = [Ev("Warning", "RolloutAborted", "rollout aborted by me")]
    changed, resolved = t.observe("shop/web", "shop", "web", aborted, ev, {"http://am"}, NOW)
    assert [a.alertname for a in changed] == ["RolloutAborted"] and resolved == []
    # the next reconciles (no Events) change nothing: no re-send outside the resend loop
    assert t.observe("shop/web", "shop", "web", aborted, [], {"http://am"}, NOW) == ([], [])
    # retried: still active (resolved only when Healthy)
    retried = _status(phase="Paused").to_dict()
    assert t.observe("shop/web", "shop", "web", retried, [], {"http://am"}, NOW) == ([], [])
    assert len(t.firing()) == 1
    later = NOW + timedelta(minutes=3)
    changed, resolved = t.observe("shop/web", "shop", "web", _status(phase="Healthy").to_dict(), [],
                                  {"http://am"}, later)
    assert changed == [] and [a.alertname for a in resolved] == ["RolloutAborted"]
    am = resolved[0].to_am(later, timedelta(minutes=4))
    assert am["labels"] == {"alertname": "RolloutAborted", "namespace": "shop", "rollout": "web",
                            "severity": "critical"}
    assert am["annotations"]["description"] == "rollout aborted by me"
    assert am["startsAt"].startswith("2026-05-01T12:00:00") and am["endsAt"].startswith("2026-05-01T12:03:00")
    assert t.firing() == []


def test_firing_alert_ends_in_the_future() -> None:
    t = AlertTracker()
    st = _status(phase="Degraded", abort=True).to_dict()
    (a,), _ = t.observe("shop/web", "shop", "web", st, [], set(), NOW)
    am = a.to_am(NOW, timedelta(minutes=4))
    assert am["endsAt"].startswith("2026-05-01T12:04:00")


def test_abort_after_analysis_alert_joins_it() -> None:
    t = AlertTracker()
    st = _status(phase="Paused").to_dict()
    (_a,), _ = t.observe("k", "shop", "web", st, [Ev("Warning", "AnalysisRunFailed", "bad")], set(), NOW)
    st = _status(phase="Degraded", abort=True).to_dict()
    changed, _ = t.observe("k", "shop", "web", st, [Ev("Warning", "RolloutAborted", "x")], set(), NOW)
    assert [c.alertname for c in changed] == ["RolloutAnalysisFailed"]
    assert len(t.firing()) == 1 and "aborted" in t.firing()[0].description


def test_secret_urls_decode() -> None:  # the Secret format the loader expects
    assert base64.b64decode(base64.b64encode(b"http://x")).decode() == "http://x"


def test_analysis_status_of_the_controller_shape() -> None:
    """status.analysis as the analysis-in-the-rollout code writes it: {attempt, step, background}."""
    run = {"name": "demo-abc-0-step2", "phase": "Failed",
           "message": "canary error rate 1.6-2.9 x stable"}
    st = _status(phase="Degraded", abort=True, abortReason="analysis demo-abc-0-step2 failed",
                 analysis={"attempt": 0, "step": run}).to_dict()
    cs = causes(st, [])
    assert [(c.alertname, c.description) for c in cs] == [(
        "RolloutAnalysisFailed",
        "canary error rate 1.6-2.9 x stable (rollout aborted: traffic back to stable)")]
    # a stale failed run in status does not alert on a rollout that is progressing again
    st = _status(phase="Progressing", analysis={"attempt": 1, "step": run}).to_dict()
    assert causes(st, []) == []

"""Microsoft Teams receivers: a connector's MessageCard and a Workflows Adaptive Card, sent
to an in-test Teams (notify_fakes) that answers as the real ones do."""

from __future__ import annotations

import time

import httpx

from rollouts.notify.config import parse_config
from rollouts.notify.delivery import Deliveries, Policy
from rollouts.notify.notifier import Notifier
from rollouts.notify.source import Loaded
from rollouts.notify.teams import adaptive_card_message, connector_outcome, message_card
from rollouts.notify.triggers import Notification, notifications_for
from tests.unit.notify_fakes import ABORT_EVENT, ABORTED, Ev, FakeTeams, Observer, rollout_obj, serve, status


def _note(**kw: object) -> Notification:
    st = status(**(kw or ABORTED))
    return notifications_for(rollout_obj("Paused"), st, [ABORT_EVENT], "2026-05-01T12:00:00Z")[0]


def test_settings_url_from_a_secret() -> None:
    cfg = parse_config({
        "receiver.ch": "type: teams\nurl: {secretKeyRef: {name: notif, key: teams}}\n",
        "receiver.wf": "type: teams-workflows\nurl: {secretKeyRef: {name: notif, key: wf}}\n",
        "receiver.bad": "type: teams\nurl: https://outlook.office.com/webhookb2/x\n"})
    assert {r: cfg.receivers[r].type for r in cfg.receivers} == {"ch": "teams", "wf": "teams-workflows"}
    assert cfg.receivers["wf"].refs()["url"].key == "wf"
    assert any("receiver.bad: url must come from a Secret" in e for e in cfg.errors)


def test_message_card() -> None:
    c = message_card(_note())
    assert c["@type"] == "MessageCard" and c["@context"] == "https://schema.org/extensions"
    assert c["summary"] == c["title"] == "shop/web: on-rollout-aborted"
    assert c["text"] == "rollout aborted by alice: traffic back to stable"
    assert c["themeColor"] == "E81123"
    facts = {f["name"]: f["value"] for f in c["sections"][0]["facts"]}
    assert facts["Phase"] == "Degraded" and facts["Step"] == "1/2" and facts["Revision"] == "abc"
    assert facts["Event"] == "Warning RolloutAborted"


def test_adaptive_card() -> None:
    m = adaptive_card_message(_note())
    assert m["type"] == "message"
    (att,) = m["attachments"]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive" and att["contentUrl"] is None
    card = att["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    title, text, facts = card["body"]
    assert title["text"] == "shop/web: on-rollout-aborted" and title["color"] == "Attention"
    assert text["text"].startswith("rollout aborted by alice")
    assert {f["title"]: f["value"] for f in facts["facts"]}["Phase"] == "Degraded"


def test_healthy_is_green_and_a_rollout_without_steps_shows_none() -> None:
    n = notifications_for({"metadata": {"namespace": "shop", "name": "web"}, "spec": {}},
                          status(phase="Healthy"), [Ev("Normal", "RolloutCompleted", "done")], "t")[0]
    c = message_card(n)
    assert c["themeColor"] == "2DC72D"
    assert "Step" not in {f["name"] for f in c["sections"][0]["facts"]}


def test_connector_answers() -> None:
    req = httpx.Request("POST", "https://x")
    assert connector_outcome(httpx.Response(200, text="1", request=req)).ok
    throttled = connector_outcome(httpx.Response(
        200, text="Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0", request=req))
    assert not throttled.ok and throttled.retry
    bad = connector_outcome(httpx.Response(400, text="Summary or Text is required.", request=req))
    assert not bad.ok and not bad.retry and "Summary or Text is required." in bad.problem
    throttled = connector_outcome(httpx.Response(429, headers={"Retry-After": "3"}, request=req))
    assert throttled.retry and throttled.retry_after == "3"


async def test_both_kinds_delivered_in_order_with_429_retried() -> None:
    teams = FakeTeams()
    teams.faults.next(429, retry_after="1")
    async with serve(teams.app()) as base:
        cfg = parse_config({
            "receiver.ch": "type: teams\nurl: {secretKeyRef: {name: notif, key: teams}}\n",
            "receiver.wf": "type: teams-workflows\nurl: {secretKeyRef: {name: notif, key: wf}}\n",
            "subscriptions": "- triggers: [on-rollout-aborted, on-rollout-completed]\n"
                             "  receivers: [ch, wf]\n"})
        obs = Observer()
        d = Deliveries(obs, Policy(base_delay=0.01, max_delay=5))
        n = Notifier(d)
        n.loaded = Loaded(cfg, {}, (), {"ch": {"url": f"{base}/webhookb2/abc/IncomingWebhook/def"},
                                        "wf": {"url": f"{base}/workflows/xyz/triggers/manual/run"}})
        t0 = time.monotonic()
        n(rollout_obj("Paused"), status(**ABORTED), [ABORT_EVENT])
        n(rollout_obj("Progressing"), status(phase="Healthy"), [Ev("Normal", "RolloutCompleted", "done")])
        await d.drain(10)
        await d.close()
    assert time.monotonic() - t0 >= 0.95  # the 429's Retry-After was honoured
    cards = [c.get("title") or c["attachments"][0]["content"]["body"][0]["text"] for c in teams.cards]
    assert sorted(cards) == sorted(["shop/web: on-rollout-aborted", "shop/web: on-rollout-completed"] * 2)
    connector = [c["title"] for c in teams.cards if "title" in c]
    assert connector == ["shop/web: on-rollout-aborted", "shop/web: on-rollout-completed"]  # in order
    assert sorted(obs.log) == sorted([("sent", "teams", "ch")] * 2 + [("sent", "teams-workflows", "wf")] * 2)


async def test_a_workflow_rejecting_the_body_is_final() -> None:
    teams = FakeTeams()
    async with serve(teams.app()) as base, httpx.AsyncClient() as c:
        r = await c.post(f"{base}/workflows/x", json=message_card(_note()))  # wrong format for it
        assert r.status_code == 400 and r.json()["error"]["code"] == "TriggerInputSchemaMismatch"
        r = await c.post(f"{base}/workflows/x", json=adaptive_card_message(_note()))
        assert r.status_code == 202
        r = await c.post(f"{base}/webhookb2/x", json={"title": "no summary"})
        assert r.status_code == 400 and r.text == "Summary or Text is required."


def test_blue_green_cards_name_active_and_preview_never_a_weight() -> None:
    from rollouts.notify.email import message
    from tests.unit.test_notify_email import _settings

    obj = {"metadata": {"namespace": "shop", "name": "web"},
           "spec": {"strategy": {"blueGreen": {"activeService": "a", "previewService": "p"}}},
           "status": {"phase": "Progressing"}}
    st = status(phase="Paused", currentPodHash="new1", stableRS="old1",
                blueGreen={"activeSelector": "old1", "previewSelector": "new1"})
    n = notifications_for(obj, st, [Ev("Normal", "RolloutPaused", "paused")], "t")[0]
    facts = {f["name"]: f["value"] for f in message_card(n)["sections"][0]["facts"]}
    assert facts["Active revision"] == "old1" and facts["Preview revision"] == "new1"
    assert "Canary weight" not in facts and "Step" not in facts
    body = message(_settings(587), n).get_content()
    assert "Preview revision: new1" in body and "Canary weight" not in body

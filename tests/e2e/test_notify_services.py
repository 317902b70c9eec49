"""Email, Microsoft Teams, PagerDuty and Opsgenie receivers end to end: the controller as a
process with the shipped RBAC reads the ConfigMap and Secrets of the test namespace; a
user aborts a canary and sees the page, the chat card and the mail; after retry and
promotion the incident is resolved and the Opsgenie alert closed. A receiver whose Secret
does not exist is logged and counted and changes nothing else.

The SaaS endpoints are the in-test servers of tests/unit/notify_fakes.py (written from the
vendors' API docs); the SMTP server is real (aiosmtpd, STARTTLS with a throwaway
certificate the controller trusts through SSL_CERT_FILE, AUTH required)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from rollouts.kube.apply import apply
from rollouts.kube.client import Kube
from rollouts.kube.signals import request_action
from tests.e2e.kit import ControllerProcess, eventually, phase_is, set_image
from tests.e2e.test_alerting import _at_pause, _deploy, _metrics, _notifications_rbac, _secret
from tests.unit.notify_fakes import FakeOpsgenie, FakePagerDuty, FakeTeams, free_port, serve, smtp_server

PD_KEY = "E2ER0UT1NGKEY0123456789abcdefABC"  # an integration key is 32 characters
OG_KEY = "e2e-genie-key"


async def test_abort_pages_chats_and_mails_then_recovery_resolves_and_a_missing_secret_is_counted(
        rkube: Kube, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    port = free_port()
    pd, og, teams = FakePagerDuty(), FakeOpsgenie(frozenset({OG_KEY})), FakeTeams()
    pd.faults.next(429, retry_after="1")  # the first page is throttled once: retried, not lost
    with smtp_server(tmp_path, {"rollouts-bot": "s3cret"}) as smtp:
        monkeypatch.setenv("SSL_CERT_FILE", str(smtp.cafile))  # inherited by the controller
        async with serve(pd.app()) as pd_api, serve(og.app()) as og_api, serve(teams.app()) as teams_api:
            await _notifications_rbac(rkube, ns)
            await apply(rkube, _secret("rollouts-notifications", {
                "pd": PD_KEY, "og": OG_KEY, "teams": f"{teams_api}/webhookb2/e2e/IncomingWebhook/x"}), ns)
            await apply(rkube, _secret("smtp", {"password": "s3cret"}), ns)
            ref = "{{secretKeyRef: {{name: rollouts-notifications, key: {}}}}}"
            await apply(rkube, {"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "rollouts-notifications"}, "data": {
                "receiver.oncall": f"type: pagerdutyv2\napiUrl: {pd_api}\nroutingKey: {ref.format('pd')}\n",
                "receiver.ops": f"type: opsgenie\napiUrl: {og_api}\napiKey: {ref.format('og')}\n",
                "receiver.chat": f"type: teams\nurl: {ref.format('teams')}\n",
                # a receiver whose Secret was never created: logged, counted, harmless
                "receiver.lost": "type: pagerdutyv2\n"
                                 "routingKey: {secretKeyRef: {name: no-such-secret, key: pd}}\n",
                "receiver.mail": (f"type: email\nhost: 127.0.0.1\nport: {smtp.port}\n"
                                  "from: rollouts@example.com\nto: [oncall@example.com]\n"
                                  "username: rollouts-bot\n"
                                  "password: {secretKeyRef: {name: smtp, key: password}}\n"),
                "subscriptions": yaml.safe_dump([
                    {"triggers": ["on-rollout-aborted"], "receivers": ["oncall", "ops", "chat", "mail",
                                                                   "lost"]}]),
            }}, ns)
            ctl = start_controller(f"--metrics-listen=127.0.0.1:{port}", f"--controller-namespace={ns}")
            await _deploy(rkube, ns)
            await set_image(rkube, ns, "demo:2")
            await eventually(lambda: _at_pause(rkube, ns), 60, "canary paused at step 1")
            await request_action(rkube, ns, "demo", "abort", user="e2e-user")
            await eventually(lambda: phase_is(rkube, ns, "Degraded"), 60, "aborted: Degraded")

            async def all_told() -> bool:
                return bool(pd.events and og.alerts and teams.cards and smtp.mails)

            await eventually(all_told, 30, "page, Opsgenie alert, Teams card and mail")
            dedup = f"rollouts.dev:{ns}:demo:RolloutAborted"
            assert pd.incidents == {(PD_KEY, dedup): "triggered"}
            page = pd.events[0]["payload"]
            assert page["severity"] == "critical" and page["source"] == f"{ns}/demo"
            assert "aborted by e2e-user" in page["summary"]
            assert og.alerts[dedup]["status"] == "open" and og.alerts[dedup]["priority"] == "P1"
            (card,) = teams.cards
            assert card["title"] == f"{ns}/demo: on-rollout-aborted" and "e2e-user" in card["text"]
            (mail,) = smtp.mails
            assert mail.tls and mail.login == "rollouts-bot" and mail.rcpt_tos == ["oncall@example.com"]
            msg = email.message_from_bytes(mail.content, policy=email.policy.default)
            assert msg["Subject"] == f"[rollouts] {ns}/demo: on-rollout-aborted"

            # the user retries and promotes: Healthy again, so the incident is over
            await request_action(rkube, ns, "demo", "retry", user="e2e-user")
            await eventually(lambda: _at_pause(rkube, ns), 60, "retried canary paused at step 1")
            assert pd.incidents[(PD_KEY, dedup)] == "triggered"  # a retry alone resolves nothing
            await request_action(rkube, ns, "demo", "promote", user="e2e-user")
            await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "promoted: Healthy")

            async def resolved() -> bool:
                return (pd.incidents.get((PD_KEY, dedup)) == "resolved"
                        and og.alerts[dedup]["status"] == "closed")

            await eventually(resolved, 30, "incident resolved and Opsgenie alert closed")
            assert [e["event_action"] for e in pd.events] == ["trigger", "resolve"]
            assert [a for a, _, _ in og.log] == ["create", "close"]
            assert len(teams.cards) == 1 and len(smtp.mails) == 1  # only the subscribed trigger
            m = _metrics(port)
            for rtype, rname, count in (("pagerdutyv2", "oncall", 2), ("opsgenie", "ops", 2),
                                        ("teams", "chat", 1), ("email", "mail", 1)):
                assert m[("rollouts_notifications_sent_total",
                          frozenset({("type", rtype), ("receiver", rname)}))] == count
            failed = {frozenset(labels): v for (name, labels), v in m.items()
                      if name == "rollouts_notifications_failed_total"}
            assert failed == {frozenset({("type", "pagerdutyv2"), ("receiver", "lost"),
                                         ("reason", "no_secret")}): 1.0}  # the trigger; no resolve
            log = ctl.log.read_text()
            assert f"receiver.lost: Secret {ns}/no-such-secret not found" in log
            assert "Traceback" not in log
            assert ctl.proc is not None and ctl.proc.poll() is None


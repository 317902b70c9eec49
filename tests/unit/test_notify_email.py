"""Email receivers: settings as Argo names them, the message, and delivery to a real SMTP
server on 127.0.0.1 (aiosmtpd) that offers STARTTLS with a throwaway certificate and
requires AUTH over TLS."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollouts.notify.config import parse_config
from rollouts.notify.delivery import Deliveries, Policy
from rollouts.notify.email import EmailSettings, message, send, smtp_outcome
from rollouts.notify.notifier import Notifier
from rollouts.notify.source import Loaded
from rollouts.notify.triggers import Notification, notifications_for
from tests.unit.notify_fakes import (
    ABORT_EVENT,
    ABORTED,
    Observer,
    SmtpServer,
    rollout_obj,
    smtp_server,
    status,
)

MAIL = ("type: email\nhost: 127.0.0.1\nport: {port}\nfrom: rollouts@example.com\n"
        "to: [oncall@example.com, dev@example.com]\nusername: bot\n"
        "password: {{secretKeyRef: {{name: notif, key: smtp-password}}}}\n")


def _note() -> Notification:
    return notifications_for(rollout_obj("Paused"), status(**ABORTED), [ABORT_EVENT],
                             "2026-05-01T12:00:00Z")[0]


@pytest.fixture
def smtp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path, {"bot": "s3cret"}) as srv:
        monkeypatch.setenv("SSL_CERT_FILE", str(srv.cafile))  # the private CA a user would mount
        yield srv


def _settings(port: int, **kw: object) -> EmailSettings:
    base: dict[str, object] = {"host": "127.0.0.1", "port": port, "sender": "rollouts@example.com",
                               "to": ("oncall@example.com",), "username": "bot"}
    base.update(kw)
    return EmailSettings(**base)  # type: ignore[arg-type]


# --- settings ---------------------------------------------------------------------------

def test_email_settings_with_argo_keys() -> None:
    cfg = parse_config({"receiver.mail": MAIL.format(port=587) + "html: true\n"})
    assert cfg.errors == ()
    r = cfg.receivers["mail"]
    assert r.type == "email" and r.url is None
    assert r.settings == EmailSettings("127.0.0.1", 587, "rollouts@example.com",
                                       ("oncall@example.com", "dev@example.com"), "bot", html=True)
    assert {k: (v.name, v.key) for k, v in r.refs().items()} == {"password": ("notif", "smtp-password")}


def test_email_username_from_a_secret_and_no_auth_at_all() -> None:
    cfg = parse_config({
        "receiver.a": "type: email\nhost: h\nfrom: a@x.io\nto: b@x.io\n"
                      "username: {secretKeyRef: {name: s, key: u}}\n"
                      "password: {secretKeyRef: {name: s, key: p}}\n",
        "receiver.b": "type: email\nhost: relay.internal\nport: 25\nfrom: a@x.io\nto: [b@x.io]\n"})
    assert cfg.errors == ()
    assert set(cfg.receivers["a"].refs()) == {"username", "password"}
    assert cfg.receivers["a"].settings.port == 587  # the submission port by default
    assert cfg.receivers["b"].refs() == {} and cfg.receivers["b"].settings.username is None


@pytest.mark.parametrize(("entry", "problem"), [
    ("type: email\nfrom: a@x.io\nto: [b@x.io]\n", "host is required"),
    ("type: email\nhost: h\nport: http\nfrom: a@x.io\nto: [b@x.io]\n", "port must be"),
    ("type: email\nhost: h\nfrom: nobody\nto: [b@x.io]\n", "from must be an email address"),
    ("type: email\nhost: h\nfrom: a@x.io\nto: []\n", "to must be a list"),
    ("type: email\nhost: h\nfrom: a@x.io\nto: [\"b@x.io\\r\\nBcc: c@x.io\"]\n", "to must be a list"),
    ("type: email\nhost: h\nfrom: a@x.io\nto: [b@x.io]\nusername: u\npassword: hunter2\n", "never inline"),
    ("type: email\nhost: h\nfrom: a@x.io\nto: [b@x.io]\nusername: u\n", "password.secretKeyRef"),
    ("type: email\nhost: h\nfrom: a@x.io\nto: [b@x.io]\npassword: {secretKeyRef: {name: s, key: p}}\n",
     "password without username"),
    ("type: email\nhost: h\nfrom: a@x.io\nto: [b@x.io]\nhtml: yes please\n", "html must be true or false"),
])
def test_bad_email_settings_are_reported_and_left_out(entry: str, problem: str) -> None:
    cfg = parse_config({"receiver.mail": entry})
    assert cfg.receivers == {}
    assert len(cfg.errors) == 1 and problem in cfg.errors[0] and "receiver.mail" in cfg.errors[0]


# --- the message ------------------------------------------------------------------------

def test_message_headers_and_body() -> None:
    msg = message(_settings(587, to=("a@x.io", "b@x.io")), _note())
    assert msg["Subject"] == "[rollouts] shop/web: on-rollout-aborted"
    assert msg["From"] == "rollouts@example.com" and msg["To"] == "a@x.io, b@x.io"
    assert msg["Message-ID"].endswith("@example.com>")
    body = msg.get_content()
    assert body.startswith("rollout aborted by alice: traffic back to stable")
    assert "Phase: Degraded" in body and "Step: 1/2" in body and "Revision: abc" in body
    assert not msg.is_multipart()


def test_html_part_is_escaped() -> None:
    n = _note()
    n = Notification(**{**n.__dict__, "message": "weight <b>20</b> & rising"})
    msg = message(_settings(587, html=True), n)
    html = msg.get_body(("html",))
    assert html is not None
    assert "weight &lt;b&gt;20&lt;/b&gt; &amp; rising" in html.get_content()


# --- real SMTP: STARTTLS + AUTH ---------------------------------------------------------

async def test_sends_over_starttls_with_auth(smtp: SmtpServer) -> None:
    s = _settings(smtp.port, to=("oncall@example.com", "dev@example.com"))
    out = await send(s, {"password": "s3cret"}, message(s, _note()))
    assert out.ok, out.problem
    (mail,) = smtp.mails
    assert mail.tls and mail.login == "bot"  # the server saw TLS before AUTH and the mail
    assert mail.mail_from == "rollouts@example.com"
    assert mail.rcpt_tos == ["oncall@example.com", "dev@example.com"]
    got = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert got["Subject"] == "[rollouts] shop/web: on-rollout-aborted"


async def test_wrong_password_is_final_not_retried(smtp: SmtpServer) -> None:
    s = _settings(smtp.port)
    out = await send(s, {"password": "wrong"}, message(s, _note()))
    assert not out.ok and not out.retry and "535" in out.problem
    assert smtp.mails == []


async def test_untrusted_certificate_is_final(smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    from rollouts.server.tls import self_signed_pem
    other.write_bytes(self_signed_pem(["127.0.0.1"])[0])
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    s = _settings(smtp.port)
    out = await send(s, {"password": "s3cret"}, message(s, _note()))
    assert not out.ok and not out.retry and "certificate" in out.problem
    # insecure_skip_verify (Argo's switch) accepts it
    s = _settings(smtp.port, insecure_skip_verify=True)
    assert (await send(s, {"password": "s3cret"}, message(s, _note()))).ok
    assert len(smtp.mails) == 1


async def test_password_never_sent_without_starttls(tmp_path: Path) -> None:
    with smtp_server(tmp_path, {}, starttls=False) as srv:
        s = _settings(srv.port)
        out = await send(s, {"password": "s3cret"}, message(s, _note()))
        assert not out.ok and not out.retry and "STARTTLS" in out.problem
        assert srv.mails == []
        # without credentials a plain relay is fine (Argo's "without authentication")
        s = _settings(srv.port, username=None)
        assert (await send(s, {}, message(s, _note()))).ok
        assert len(srv.mails) == 1 and not srv.mails[0].tls


async def test_nobody_listening_is_retryable() -> None:
    from tests.unit.notify_fakes import free_port
    s = _settings(free_port())
    out = await send(s, {"password": "x"}, message(s, _note()), timeout=2)
    assert not out.ok and out.retry


def test_smtp_reply_codes_decide_retries() -> None:
    import smtplib
    assert smtp_outcome(smtplib.SMTPSenderRefused(451, b"try later", "a@x")).retry
    assert not smtp_outcome(smtplib.SMTPSenderRefused(550, b"no", "a@x")).retry
    assert smtp_outcome(smtplib.SMTPRecipientsRefused({"a@x": (452, b"full")})).retry
    assert not smtp_outcome(smtplib.SMTPRecipientsRefused({"a@x": (452, b"full"),
                                                           "b@x": (550, b"unknown")})).retry
    assert smtp_outcome(smtplib.SMTPServerDisconnected("gone")).retry
    assert smtp_outcome(ConnectionRefusedError()).retry


# --- through the Notifier: a decision mails the subscribed receiver ---------------------

async def test_notifier_mails_an_abort_and_counts_it(smtp: SmtpServer) -> None:
    cfg = parse_config({"receiver.mail": MAIL.format(port=smtp.port),
                        "subscriptions": "- triggers: [on-rollout-aborted]\n  receivers: [mail]\n"})
    obs = Observer()
    deliveries = Deliveries(obs, Policy(base_delay=0.01))
    n = Notifier(deliveries)
    n.loaded = Loaded(cfg, {}, (), {"mail": {"password": "s3cret"}})
    n(rollout_obj("Paused"), status(**ABORTED), [ABORT_EVENT])
    await deliveries.drain(10)
    await deliveries.close()
    assert obs.log == [("sent", "email", "mail")]
    (mail,) = smtp.mails
    assert mail.tls and mail.rcpt_tos == ["oncall@example.com", "dev@example.com"]
    assert b"on-rollout-aborted" in mail.content


async def test_refused_recipients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  caplog: pytest.LogCaptureFixture) -> None:
    with smtp_server(tmp_path, {"bot": "s3cret"}, refuse=frozenset({"gone@example.com"})) as srv:
        monkeypatch.setenv("SSL_CERT_FILE", str(srv.cafile))
        s = _settings(srv.port, to=("oncall@example.com", "gone@example.com"))
        out = await send(s, {"password": "s3cret"}, message(s, _note()))
        assert out.ok  # delivered to the others, and the refusal is logged
        assert srv.mails[0].rcpt_tos == ["oncall@example.com"]
        assert "recipients refused: gone@example.com" in caplog.text
        s = _settings(srv.port, to=("gone@example.com",))
        out = await send(s, {"password": "s3cret"}, message(s, _note()))
        assert not out.ok and not out.retry and "gone@example.com" in out.problem  # 550: final
        assert len(srv.mails) == 1

"""Email over SMTP, with the settings of Argo's email service.

.. code-block:: yaml

    receiver.team-mail: |
      type: email
      host: smtp.example.com
      port: 587                   # 465: TLS from the first byte; else STARTTLS when offered
      from: rollouts@example.com
      to: [oncall@example.com]
      username: rollouts@example.com          # or {secretKeyRef: ...}; optional
      password: {secretKeyRef: {name: rollouts-notifications, key: smtp-password}}
      html: false                 # optional: add an HTML part
      insecure_skip_verify: false # optional: accept any server certificate

A password is never sent in clear: a server on a port other than 465 that does not offer
STARTTLS gets no mail from a receiver with credentials. SMTP runs in a worker thread
(stdlib ``smtplib``), off the event loop; replies 4xx are retried, 5xx are final.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import partial
from html import escape
from typing import Any, Final

from rollouts.notify.delivery import Job, Outcome
from rollouts.notify.facts import facts
from rollouts.notify.refs import SecretRef, secret_ref
from rollouts.notify.triggers import Notification

log = logging.getLogger(__name__)
DEFAULT_PORT: Final = 587
IMPLICIT_TLS_PORT: Final = 465


@dataclass(frozen=True)
class EmailSettings:
    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    username: str | None = None  # when given inline; from a Secret it is in the secrets
    html: bool = False
    insecure_skip_verify: bool = False


def _addr(v: Any) -> bool:
    return isinstance(v, str) and "@" in v and not any(c in v for c in "\r\n,")


def parse_settings(d: dict[str, Any], where: str,
                   errors: list[str]) -> tuple[dict[str, SecretRef], EmailSettings] | None:
    host, port, sender = d.get("host"), d.get("port", DEFAULT_PORT), d.get("from")
    to = [d["to"]] if isinstance(d.get("to"), str) else d.get("to")
    problems = []
    if not (isinstance(host, str) and host.strip()):
        problems.append("host is required")
    if not (isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536):
        problems.append("port must be a TCP port number")
    if not _addr(sender):
        problems.append("from must be an email address")
    if not (isinstance(to, list) and to and all(_addr(a) for a in to)):
        problems.append("to must be a list of email addresses")
    for flag in ("html", "insecure_skip_verify"):
        if not isinstance(d.get(flag, False), bool):
            problems.append(f"{flag} must be true or false")
    if problems:
        errors.append(f"{where}: {'; '.join(problems)}")
        return None
    refs: dict[str, SecretRef] = {}
    user = d.get("username")
    if isinstance(user, dict):
        ok, ref = secret_ref(d, "username", where, errors)
        if not ok or ref is None:
            return None
        refs["username"] = ref
    elif user is not None and not (isinstance(user, str) and user):
        errors.append(f"{where}: username must be a string or a secretKeyRef")
        return None
    ok, pw = secret_ref(d, "password", where, errors, required=user is not None)
    if not ok:
        return None
    if pw is not None:
        if user is None:
            errors.append(f"{where}: password without username")
            return None
        refs["password"] = pw
    assert isinstance(host, str) and isinstance(port, int) and isinstance(sender, str)
    return refs, EmailSettings(host.strip(), port, sender, tuple(str(a) for a in (to or [])),
                               user if isinstance(user, str) else None,
                               bool(d.get("html", False)), bool(d.get("insecure_skip_verify", False)))


def _lines(n: Notification) -> list[tuple[str, str]]:
    return [("Rollout", f"{n.namespace}/{n.rollout}"), ("Trigger", n.trigger), *facts(n)]


def message(s: EmailSettings, n: Notification) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"[rollouts] {n.namespace}/{n.rollout}: {n.trigger}"
    msg["From"] = s.sender
    msg["To"] = ", ".join(s.to)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=s.sender.rsplit("@", 1)[1])
    text = n.message or n.status_message or n.reason
    msg.set_content(text + "\n\n" + "\n".join(f"{k}: {v}" for k, v in _lines(n)) + "\n")
    if s.html:
        rows = "".join(f"<tr><th align='left'>{escape(k)}</th><td>{escape(v)}</td></tr>"
                       for k, v in _lines(n))
        msg.add_alternative(f"<html><body><p>{escape(text)}</p><table>{rows}</table></body></html>",
                            subtype="html")
    return msg


def tls_context(s: EmailSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context()  # honours SSL_CERT_FILE for a private CA
    if s.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def smtp_outcome(e: BaseException) -> Outcome:
    """What a failed SMTP conversation means: transient (4xx, a dropped connection) is
    worth retrying; permanent (5xx, a bad certificate, a missing extension) is not."""
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        codes = [c for c, _ in e.recipients.values()]
        return Outcome(False, bool(codes) and all(400 <= c < 500 for c in codes), None,
                       f"recipients refused: {', '.join(sorted(e.recipients))}")
    if isinstance(e, smtplib.SMTPResponseException):
        text = e.smtp_error.decode(errors="replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
        return Outcome(False, 400 <= e.smtp_code < 500, None, f"SMTP {e.smtp_code}: {text[:200]}")
    if isinstance(e, smtplib.SMTPServerDisconnected):
        return Outcome(False, True, None, f"disconnected: {e}")
    if isinstance(e, ssl.SSLCertVerificationError):
        return Outcome(False, False, None, f"server certificate not trusted: {e.verify_message}")
    if isinstance(e, smtplib.SMTPException):  # e.g. STARTTLS or AUTH not offered
        return Outcome(False, False, None, f"{type(e).__name__}: {e}")
    # refused, unreachable, timed out, TLS handshake cut
    return Outcome(False, isinstance(e, OSError), None, f"{type(e).__name__}: {e}")


def _send_blocking(s: EmailSettings, secrets: dict[str, str], msg: EmailMessage,
                   timeout: float) -> None:
    ctx = tls_context(s)
    username = secrets.get("username", s.username)
    password = secrets.get("password")
    smtp: smtplib.SMTP
    if s.port == IMPLICIT_TLS_PORT:
        smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=timeout, context=ctx)
    else:
        smtp = smtplib.SMTP(s.host, s.port, timeout=timeout)
    with smtp:
        smtp.ehlo()
        if s.port != IMPLICIT_TLS_PORT:
            if smtp.has_extn("starttls"):
                smtp.starttls(context=ctx)
                smtp.ehlo()
            elif password is not None:
                raise smtplib.SMTPNotSupportedError(
                    "server does not offer STARTTLS: the password is not sent in clear")
        if username is not None and password is not None:
            smtp.login(username, password)
        refused = smtp.send_message(msg)
        if refused:  # some recipients got it: a success, but say who did not
            log.warning("email to %s: recipients refused: %s", s.host, ", ".join(sorted(refused)))


async def send(s: EmailSettings, secrets: dict[str, str], msg: EmailMessage,
               timeout: float = 10.0) -> Outcome:
    try:
        await asyncio.to_thread(_send_blocking, s, secrets, msg, timeout)
    except (smtplib.SMTPException, OSError) as e:
        return smtp_outcome(e)
    return Outcome(True)


def notification_job(s: EmailSettings, secrets: dict[str, str], n: Notification) -> Job:
    return Job(f"smtp://{s.host}:{s.port}", None, n.trigger,
               send=partial(send, s, dict(secrets), message(s, n)))

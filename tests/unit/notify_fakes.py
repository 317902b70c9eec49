"""In-test servers for the notification services that cannot be reached from here,
written from the vendors' public API documentation (paths, auth, JSON shapes, answers,
error bodies, throttling), plus a real SMTP server (aiosmtpd) with STARTTLS and AUTH.

Each HTTP fake keeps what a real account would show (open incidents, alerts, messages)
and can be told to throttle (429 with ``Retry-After``) or fail (5xx) its next requests.
"""

from __future__ import annotations

import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Faults:
    """Answers to force on the next requests: (status, Retry-After or None, body)."""

    def __init__(self) -> None:
        self.queue: list[tuple[int, str | None, str]] = []

    def next(self, status: int, retry_after: str | None = None, body: str = "", times: int = 1) -> None:
        self.queue += [(status, retry_after, body)] * times

    def take(self) -> web.Response | None:
        if not self.queue:
            return None
        status, retry_after, body = self.queue.pop(0)
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return web.Response(status=status, text=body, headers=headers)


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """The app on 127.0.0.1, a free port; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# --- PagerDuty Events API v2 ------------------------------------------------------------

PD_SEVERITIES = ("critical", "error", "warning", "info")


@dataclass
class FakePagerDuty:
    """``POST /v2/enqueue``: routing key (32 characters) in the body, no auth header;
    202 ``{"status": "success", "message": "Event processed", "dedup_key"}``; an invalid
    event is 400 ``{"status": "invalid event", "message": "Event object is invalid",
    "errors": [...]}``."""

    events: list[dict[str, Any]] = field(default_factory=list)  # accepted, in order
    incidents: dict[tuple[str, str], str] = field(default_factory=dict)  # (key, dedup) -> state
    requests: int = 0
    faults: Faults = field(default_factory=Faults)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/enqueue", self._enqueue)
        return app

    @staticmethod
    def _invalid(errors: list[str]) -> web.Response:
        return web.json_response({"status": "invalid event", "message": "Event object is invalid",
                                  "errors": errors}, status=400)

    async def _enqueue(self, request: web.Request) -> web.Response:
        self.requests += 1
        forced = self.faults.take()
        if forced is not None:
            return forced
        try:
            ev = await request.json()
        except ValueError:
            return self._invalid(["Event object is not valid JSON"])
        if not isinstance(ev, dict):
            return self._invalid(["Event object must be a JSON object"])
        errors = []
        key, action = ev.get("routing_key"), ev.get("event_action")
        if not isinstance(key, str) or len(key) != 32:
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
        dedup = ev.get("dedup_key")
        if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
            errors.append("'dedup_key' must be a string of at most 255 characters")
        if action in ("acknowledge", "resolve") and not dedup:
            errors.append("'dedup_key' is required for acknowledge and resolve events")
        if action == "trigger":
            p = ev.get("payload")
            if not isinstance(p, dict):
                errors.append("'payload' is missing or invalid")
            else:
                if not isinstance(p.get("summary"), str) or not p["summary"] or len(p["summary"]) > 1024:
                    errors.append("'payload.summary' is missing or longer than 1024 characters")
                if not isinstance(p.get("source"), str) or not p["source"]:
                    errors.append("'payload.source' is missing")
                if p.get("severity") not in PD_SEVERITIES:
                    errors.append("'payload.severity' is invalid (must be one of: critical, error, "
                                  "warning, info)")
                if "custom_details" in p and not isinstance(p["custom_details"], dict):
                    errors.append("'payload.custom_details' must be an object")
        if errors:
            return self._invalid(errors)
        dedup = dedup or uuid.uuid4().hex
        self.events.append(ev)
        state = {"trigger": "triggered", "acknowledge": "acknowledged", "resolve": "resolved"}[action]
        ident = (key, dedup)
        if action == "trigger" or ident in self.incidents:  # resolving nothing is accepted, no-op
            self.incidents[ident] = state
        return web.json_response({"status": "success", "message": "Event processed",
                                  "dedup_key": dedup}, status=202)


# --- Opsgenie Alert API -----------------------------------------------------------------

OG_PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
OG_RESPONDER_TYPES = ("team", "user", "escalation", "schedule")


@dataclass
class FakeOpsgenie:
    """``POST /v2/alerts`` (create) and ``POST /v2/alerts/{identifier}/close?identifierType=``
    with ``Authorization: GenieKey <key>``; both 202 ``{"result": "Request will be
    processed", "took", "requestId"}``. 401 ``{"message": "Could not authenticate"}``,
    422 ``{"message": ..., "errors": {field: problem}}``."""

    keys: frozenset[str]
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # alias -> alert (+ status)
    log: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (action, alias, body)
    requests: int = 0
    faults: Faults = field(default_factory=Faults)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/alerts", self._create)
        app.router.add_post("/v2/alerts/{identifier}/close", self._close)
        return app

    @staticmethod
    def _answer(status: int, **extra: Any) -> web.Response:
        return web.json_response({**extra, "took": 0.01, "requestId": str(uuid.uuid4())}, status=status)

    def _auth(self, request: web.Request) -> web.Response | None:
        self.requests += 1
        forced = self.faults.take()
        if forced is not None:
            return forced
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme != "GenieKey" or key not in self.keys:
            return self._answer(401, message="Could not authenticate")
        return None

    def _unprocessable(self, errors: dict[str, str]) -> web.Response:
        return self._answer(422, message="Request body is not processable. Please check the errors.",
                            errors=errors)

    async def _create(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return self._answer(400, message="Could not parse request body")
        errors: dict[str, str] = {}
        msg = body.get("message") if isinstance(body, dict) else None
        if not isinstance(msg, str) or not msg.strip():
            errors["message"] = "Message can not be empty."
        elif len(msg) > 130:
            errors["message"] = "Message can not be longer than 130 characters."
        for f, limit in (("alias", 512), ("description", 15000), ("entity", 512), ("source", 100)):
            v = body.get(f) if isinstance(body, dict) else None
            if v is not None and (not isinstance(v, str) or len(v) > limit):
                errors[f] = f"{f} can not be longer than {limit} characters."
        if isinstance(body, dict):
            if body.get("priority", "P3") not in OG_PRIORITIES:
                errors["priority"] = "Priority should be one of [P1, P2, P3, P4, P5]"
            tags = body.get("tags", [])
            if not isinstance(tags, list) or len(tags) > 20 or any(
                    not isinstance(t, str) or len(t) > 50 for t in tags):
                errors["tags"] = "Tags should be at most 20 strings of at most 50 characters."
            details = body.get("details", {})
            if not isinstance(details, dict) or any(not isinstance(v, str) for v in details.values()):
                errors["details"] = "Details should be a map of strings."
            for r in body.get("responders", []):
                if not (isinstance(r, dict) and r.get("type") in OG_RESPONDER_TYPES
                        and any(r.get(k) for k in ("id", "name", "username"))):
                    errors["responders"] = "Responder should have a type and an id, name or username."
        if errors:
            return self._unprocessable(errors)
        alias = body.get("alias") or str(uuid.uuid4())
        cur = self.alerts.get(alias)
        if cur is not None and cur["status"] == "open":  # de-duplicated: the count goes up
            cur["count"] += 1
        else:
            self.alerts[alias] = {**body, "status": "open", "count": 1}
        self.log.append(("create", alias, body))
        return self._answer(202, result="Request will be processed")

    async def _close(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        id_type = request.query.get("identifierType", "id")
        if id_type not in ("id", "tiny", "alias"):
            return self._unprocessable({"identifierType": "identifierType should be one of "
                                                          "[id, tiny, alias]"})
        ident = request.match_info["identifier"]
        body = await request.json() if request.can_read_body else {}
        self.log.append(("close", ident, body))
        if id_type == "alias" and ident in self.alerts:  # processed asynchronously: always 202
            self.alerts[ident]["status"] = "closed"
        return self._answer(202, result="Request will be processed")


# --- Microsoft Teams --------------------------------------------------------------------

@dataclass
class FakeTeams:
    """An Office 365 connector (``/webhookb2/...``: MessageCard, 200 ``1``; "Summary or Text
    is required." otherwise) and a Workflows trigger (``/workflows/...``: a message with an
    Adaptive Card attachment, 202 with no body; 400 with an ``error`` object otherwise)."""

    cards: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    faults: Faults = field(default_factory=Faults)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/webhookb2/{tail:.*}", self._connector)
        app.router.add_post("/workflows/{tail:.*}", self._workflow)
        return app

    async def _connector(self, request: web.Request) -> web.Response:
        self.requests += 1
        forced = self.faults.take()
        if forced is not None:
            return forced
        try:
            card = await request.json()
        except ValueError:
            return web.Response(status=400, text="Bad payload received by generic incoming webhook.")
        if not isinstance(card, dict) or not (card.get("summary") or card.get("text")):
            return web.Response(status=400, text="Summary or Text is required.")
        self.cards.append(card)
        return web.Response(status=200, text="1")

    async def _workflow(self, request: web.Request) -> web.Response:
        self.requests += 1
        forced = self.faults.take()
        if forced is not None:
            return forced
        try:
            msg = await request.json()
        except ValueError:
            msg = None
        atts = msg.get("attachments") if isinstance(msg, dict) else None
        ok = (isinstance(msg, dict) and msg.get("type") == "message" and isinstance(atts, list) and atts
              and all(isinstance(a, dict)
                      and a.get("contentType") == "application/vnd.microsoft.card.adaptive"
                      and isinstance(a.get("content"), dict) and a["content"].get("type") == "AdaptiveCard"
                      for a in atts))
        if not ok:
            return web.json_response({"error": {"code": "TriggerInputSchemaMismatch", "message":
                                     "The input body for trigger 'manual' of type 'Request' did not "
                                     "match its schema definition."}}, status=400)
        self.cards.append(msg)
        return web.Response(status=202)


# --- SMTP (real: aiosmtpd) --------------------------------------------------------------

@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    login: str | None


@dataclass
class SmtpServer:
    port: int
    cafile: Path
    mails: list[Mail]


@contextmanager
def smtp_server(tmp: Path, users: dict[str, str], *, starttls: bool = True,
                refuse: frozenset[str] = frozenset()) -> Iterator[SmtpServer]:
    """aiosmtpd on 127.0.0.1 with STARTTLS (a throwaway self-signed certificate, also the
    CA file a client must trust) and AUTH PLAIN/LOGIN against ``users``, required, and
    only over TLS; recipients in ``refuse`` get 550. The server runs in its own thread."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from rollouts.server.tls import self_signed_pem

    cert, key = self_signed_pem(["127.0.0.1", "localhost"])
    (tmp / "smtp.crt").write_bytes(cert)
    (tmp / "smtp.key").write_bytes(key)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp / "smtp.crt", tmp / "smtp.key")
    mails: list[Mail] = []

    class Handler:
        async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                              rcpt_options: list[str]) -> str:
            if address in refuse:
                return "550 5.1.1 No such user here"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) \
                else None
            mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content,
                              session.ssl is not None, login))
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword)
              and users.get(auth_data.login.decode()) == auth_data.password.decode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    port = free_port()
    kwargs: dict[str, Any] = {"authenticator": authenticator, "auth_required": bool(users),
                              "auth_require_tls": True}
    if starttls:
        kwargs.update(tls_context=ctx, require_starttls=True)
    ctl = Controller(Handler(), hostname="127.0.0.1", port=port, server_hostname="localhost",
                     **kwargs)
    ctl.start()
    try:
        yield SmtpServer(port, tmp / "smtp.crt", mails)
    finally:
        ctl.stop()


# --- a rollout's decisions, as the Notifier sees them ------------------------------------

@dataclass(frozen=True)
class Ev:
    type: str
    reason: str
    message: str


def rollout_obj(phase: str | None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """The Rollout as read before a decision (its status is the previous one)."""
    return {"metadata": {"namespace": "shop", "name": "web", "uid": "u1",
                         "annotations": annotations or {}},
            "spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}},
            "status": {"phase": phase} if phase else {}}


def status(**kw: Any) -> Any:
    from rollouts.api.status import RolloutStatus

    base: dict[str, Any] = {"phase": "Progressing", "currentPodHash": "abc", "stableRS": "old",
                            "currentStepIndex": 1, "canary": {"weights": {"canary": {"weight": 20}}}}
    base.update(kw)
    return RolloutStatus.from_dict(base)


ABORTED = {"phase": "Degraded", "abort": True, "abortReason": "aborted by alice",
           "message": "RolloutAborted: aborted by alice"}
ABORT_EVENT = Ev("Warning", "RolloutAborted", "rollout aborted by alice: traffic back to stable")


class Observer:
    def __init__(self) -> None:
        self.log: list[tuple[str, ...]] = []

    def sent(self, receiver_type: str, receiver: str) -> None:
        self.log.append(("sent", receiver_type, receiver))

    def failed(self, receiver_type: str, receiver: str, reason: str) -> None:
        self.log.append(("failed", receiver_type, receiver, reason))

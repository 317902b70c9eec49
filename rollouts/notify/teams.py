"""Microsoft Teams: incoming-webhook cards, named like Argo's two Teams services.

- ``type: teams``: an Office 365 connector ("Incoming Webhook") URL; the body is a
  MessageCard and the connector answers ``200`` with the text ``1`` (anything else in a
  200 is its way of reporting an error, e.g. a throttled channel).
- ``type: teams-workflows``: a Workflows (Power Automate) webhook URL, the connectors'
  replacement; the body is a message with one Adaptive Card attachment, answered ``202``.

The webhook URL is the secret (``url: {secretKeyRef: ...}``).
"""

from __future__ import annotations

import re
from typing import Any, Final

import httpx

from rollouts.notify.delivery import Job, Outcome, http_outcome, retryable
from rollouts.notify.facts import facts
from rollouts.notify.triggers import Notification

ADAPTIVE_CARD: Final = "application/vnd.microsoft.card.adaptive"
ADAPTIVE_SCHEMA: Final = "http://adaptivecards.io/schemas/adaptive-card.json"
_RED, _GREEN, _AMBER, _BLUE = "E81123", "2DC72D", "FFB900", "0078D7"


def _title(n: Notification) -> str:
    return f"{n.namespace}/{n.rollout}: {n.trigger}"


def _colour(n: Notification) -> str:
    if n.type == "Warning" or n.phase == "Degraded":
        return _RED
    return {"Healthy": _GREEN, "Paused": _AMBER}.get(n.phase, _BLUE)


def message_card(n: Notification) -> dict[str, Any]:
    """The connector's MessageCard: ``summary`` (required, shown in notifications), a title,
    the event's message as text and a facts section."""
    return {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": _title(n),
        "themeColor": _colour(n),
        "title": _title(n),
        "text": n.message or n.status_message or n.reason,
        "sections": [{"facts": [{"name": k, "value": v} for k, v in facts(n)], "markdown": False}],
    }


def adaptive_card_message(n: Notification) -> dict[str, Any]:
    """A Workflows message: one Adaptive Card attachment (schema 1.4, which Teams renders)."""
    colour = "Attention" if _colour(n) == _RED else "Good" if _colour(n) == _GREEN else "Default"
    card = {
        "$schema": ADAPTIVE_SCHEMA,
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": _title(n), "weight": "Bolder", "size": "Medium",
             "color": colour, "wrap": True},
            {"type": "TextBlock", "text": n.message or n.status_message or n.reason, "wrap": True},
            {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts(n)]},
        ],
    }
    return {"type": "message",
            "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}]}


_HTTP_ERROR = re.compile(r"HTTP error (\d{3})")


def connector_outcome(resp: httpx.Response) -> Outcome:
    """A connector reports some failures inside a 200 (body other than ``1``); the embedded
    status decides whether retrying may help."""
    if resp.status_code != 200:
        return http_outcome(resp)
    text = resp.text.strip()
    if text == "1":
        return Outcome(True)
    m = _HTTP_ERROR.search(text)
    status = int(m.group(1)) if m else 400
    return Outcome(False, retryable(status), resp.headers.get("retry-after"),
                   f"HTTP 200 with error: {text[:300]}")


def notification_job(kind: str, url: str, n: Notification) -> Job:
    if kind == "teams-workflows":
        return Job(url, adaptive_card_message(n), n.trigger)
    return Job(url, message_card(n), n.trigger, judge=connector_outcome)

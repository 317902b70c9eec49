"""Wire formats: the generic webhook payload (documented in docs/alerting.md), Slack's
incoming-webhook message, and Alertmanager's API v2 alert objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rollouts.notify.triggers import Notification

WEBHOOK_VERSION = "rollouts.dev/v1"


def webhook_payload(n: Notification) -> dict[str, Any]:
    """``canaryWeight`` stays on every payload (fields are only ever added); a blue-green
    rollout's also name the revisions its active and preview Services select."""
    body: dict[str, Any] = {
        "version": WEBHOOK_VERSION,
        "trigger": n.trigger,
        "event": {"type": n.type, "reason": n.reason, "message": n.message},
        "time": n.time,
        "rollout": {
            "namespace": n.namespace,
            "name": n.rollout,
            "uid": n.uid,
            "phase": n.phase,
            "message": n.status_message,
            "revision": n.revision,
            "stableRevision": n.stable_revision,
            "currentStepIndex": n.step,
            "steps": n.steps,
            "canaryWeight": n.canary_weight,
            "strategy": n.strategy,
        },
    }
    if n.strategy == "blueGreen":
        body["rollout"]["activeRevision"] = n.active_revision
        body["rollout"]["previewRevision"] = n.preview_revision
    return body


def _progress_fields(n: Notification) -> list[dict[str, Any]]:
    """Where the update stands: a canary's step and weight, a blue-green rollout's active and
    preview revisions (it has no steps and no weight)."""
    if n.strategy == "blueGreen":
        return [{"title": "Active", "value": n.active_revision or "-", "short": True},
                {"title": "Preview", "value": n.preview_revision or "-", "short": True}]
    step = f"{n.step}/{n.steps}" if n.step is not None and n.steps is not None else "-"
    return [{"title": "Step", "value": step, "short": True},
            {"title": "Canary weight", "value": f"{n.canary_weight}%", "short": True}]


_COLOURS = {"Healthy": "good", "Degraded": "danger", "Paused": "warning"}


def slack_payload(n: Notification, channel: str | None = None) -> dict[str, Any]:
    """Slack incoming-webhook body: ``text`` for notifications, one attachment with fields."""
    icon = ":red_circle:" if n.type == "Warning" else ":large_blue_circle:"
    body: dict[str, Any] = {
        "text": f"{icon} *{n.namespace}/{n.rollout}* {n.trigger}: {n.message}",
        "attachments": [{
            "color": "danger" if n.type == "Warning" else _COLOURS.get(n.phase, "#439FE0"),
            "fallback": f"{n.namespace}/{n.rollout} {n.reason}: {n.message}",
            "fields": [
                {"title": "Phase", "value": n.phase or "-", "short": True},
                *_progress_fields(n),
                {"title": "Revision", "value": n.revision or "-", "short": True},
            ],
            "ts": int(datetime.fromisoformat(n.time.replace("Z", "+00:00")).timestamp())
            if n.time else None,
        }],
    }
    if channel:
        body["channel"] = channel
    return body


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def am_alert(labels: dict[str, str], annotations: dict[str, str], starts_at: datetime,
             ends_at: datetime) -> dict[str, Any]:
    """One element of the array POSTed to ``/api/v2/alerts``; empty labels are left out
    (Alertmanager treats an empty label as absent anyway)."""
    return {
        "labels": {k: v for k, v in labels.items() if v},
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": rfc3339(starts_at),
        "endsAt": rfc3339(ends_at),
    }

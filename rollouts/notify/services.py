"""The receiver types: how each one's ConfigMap entry is read and what a notification or
an alert becomes for it (a delivery ``Job``).

Two families:

- **message** receivers (webhook, slack, teams, teams-workflows, email) get one message per
  trigger a subscription names;
- **incident** receivers (pagerdutyv2, opsgenie) get the controller's alerts (the ones
  Alertmanager gets): opened when a rollout fails, resolved/closed when it is Healthy
  again. A subscription names the triggers whose alerts open an incident
  (``ALERT_TRIGGERS``); other triggers are not sent to them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from rollouts.notify import email, opsgenie, pagerduty, teams
from rollouts.notify.alerts import ABORTED, ANALYSIS, DEADLINE, Alert
from rollouts.notify.delivery import Job
from rollouts.notify.payloads import slack_payload, webhook_payload
from rollouts.notify.refs import SecretRef
from rollouts.notify.triggers import ALL, Notification, trigger_for

URL_TYPES: Final = ("webhook", "slack", "teams", "teams-workflows")
INCIDENT_TYPES: Final = ("pagerdutyv2", "opsgenie")
RECEIVER_TYPES: Final = (*URL_TYPES, "email", *INCIDENT_TYPES)

Parsed = tuple[dict[str, SecretRef], Any]
SETTINGS: Final[dict[str, Callable[[dict[str, Any], str, list[str]], Parsed | None]]] = {
    "email": email.parse_settings,
    "pagerdutyv2": pagerduty.parse_settings,
    "opsgenie": opsgenie.parse_settings,
}

# alertname -> the trigger a subscription names to get it as an incident
ALERT_TRIGGERS: Final[dict[str, str]] = {
    **{name: trigger_for(reason) for reason, (name, _, _) in ANALYSIS.items()},
    ABORTED: trigger_for("RolloutAborted"),
    DEADLINE: trigger_for("ProgressDeadlineExceeded"),
}


def alert_trigger(a: Alert) -> str:
    return ALERT_TRIGGERS.get(a.alertname, ALL)


def notification_job(rtype: str, settings: Any, channel: str | None, secrets: dict[str, str],
                     n: Notification) -> Job | None:
    """None for incident receivers: they get alerts, not trigger messages."""
    if rtype == "webhook":
        return Job(secrets["url"], webhook_payload(n), n.trigger)
    if rtype == "slack":
        return Job(secrets["url"], slack_payload(n, channel), n.trigger)
    if rtype in ("teams", "teams-workflows"):
        return teams.notification_job(rtype, secrets["url"], n)
    if rtype == "email":
        return email.notification_job(settings, secrets, n)
    return None


def incident_job(rtype: str, settings: Any, secrets: dict[str, str], a: Alert, *, resolve: bool,
                 timestamp: str) -> Job:
    if rtype == "pagerdutyv2":
        return pagerduty.incident_job(settings, secrets, a, resolve=resolve, timestamp=timestamp)
    if rtype == "opsgenie":
        return opsgenie.incident_job(settings, secrets, a, resolve=resolve)
    raise ValueError(f"{rtype} is not an incident receiver")

"""PagerDuty Events API v2: an incident per alert, triggered when a rollout fails and
resolved when it recovers (the same alerts, with the same lifetime, as Alertmanager's).

.. code-block:: yaml

    receiver.oncall: |
      type: pagerdutyv2
      routingKey: {secretKeyRef: {name: rollouts-notifications, key: pagerduty-key}}
      apiUrl: https://events.eu.pagerduty.com      # optional; default the US endpoint

Events are ``POST {apiUrl}/v2/enqueue``; the routing key (the service's Events API v2
integration key) travels in the body, there is no auth header. ``dedup_key`` names the
alert, so re-sending a trigger after a restart adds to the open incident instead of
opening a second one, and the resolve closes exactly it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from rollouts.notify.alerts import Alert
from rollouts.notify.delivery import Job
from rollouts.notify.refs import SecretRef, secret_ref

DEFAULT_API_URL: Final = "https://events.pagerduty.com"
SEVERITIES: Final = ("critical", "error", "warning", "info")
_SUMMARY_MAX: Final = 1024
_DEDUP_MAX: Final = 255


@dataclass(frozen=True)
class PagerDutySettings:
    api_url: str = DEFAULT_API_URL


def parse_settings(d: dict[str, Any], where: str,
                   errors: list[str]) -> tuple[dict[str, SecretRef], PagerDutySettings] | None:
    ok, ref = secret_ref(d, "routingKey", where, errors)
    if not ok or ref is None:
        return None
    api = d.get("apiUrl", DEFAULT_API_URL)
    if not (isinstance(api, str) and api.startswith(("http://", "https://"))):
        errors.append(f"{where}: apiUrl must be an http(s) URL")
        return None
    return {"routingKey": ref}, PagerDutySettings(api.rstrip("/"))


def dedup_key(a: Alert) -> str:
    parts = ["rollouts.dev", a.namespace, a.rollout, a.alertname] + ([a.metric] if a.metric else [])
    return ":".join(parts)[:_DEDUP_MAX]


def severity(a: Alert) -> str:
    return a.severity if a.severity in SEVERITIES else "warning"


def event(a: Alert, routing_key: str, *, resolve: bool, timestamp: str) -> dict[str, Any]:
    """The Events API v2 body: ``trigger`` with a payload, or ``resolve`` by dedup_key."""
    body: dict[str, Any] = {"routing_key": routing_key, "dedup_key": dedup_key(a),
                            "event_action": "resolve" if resolve else "trigger"}
    if resolve:
        return body
    ann = a.annotations()
    summary = f"{ann['summary']}: {a.description}" if a.description else ann["summary"]
    details = {"description": a.description, "revision": a.revision, "alertname": a.alertname}
    if a.metric:
        details["metric"] = a.metric
    body["payload"] = {
        "summary": summary[:_SUMMARY_MAX],
        "source": f"{a.namespace}/{a.rollout}",
        "severity": severity(a),
        "timestamp": timestamp,
        "component": a.rollout,
        "group": a.namespace,
        "class": a.alertname,
        "custom_details": details,
    }
    body["client"] = "rollouts-controller"
    return body


def incident_job(settings: PagerDutySettings, secrets: dict[str, str], a: Alert, *, resolve: bool,
                 timestamp: str) -> Job:
    what = f"{'resolve' if resolve else 'trigger'} {a.alertname}"
    return Job(f"{settings.api_url}/v2/enqueue",
               event(a, secrets["routingKey"], resolve=resolve, timestamp=timestamp), what)

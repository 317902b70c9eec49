"""Opsgenie Alert API: an alert per rollout alert, created when a rollout fails and closed
when it recovers (by ``alias``, Opsgenie's de-duplication key).

.. code-block:: yaml

    receiver.team-ops: |
      type: opsgenie
      apiKey: {secretKeyRef: {name: rollouts-notifications, key: opsgenie-key}}
      apiUrl: api.eu.opsgenie.com       # optional: api.opsgenie.com (default) or the EU one
      responders: [{type: team, name: payments}]   # optional
      priority: P2                      # optional: else P1 for critical, P3 for warning

Requests carry ``Authorization: GenieKey <apiKey>`` (an API integration's key).
Create is ``POST /v2/alerts``; close is ``POST /v2/alerts/<alias>/close?identifierType=alias``.
Both answer 202 and are processed asynchronously by Opsgenie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from rollouts.notify.alerts import Alert
from rollouts.notify.delivery import Job
from rollouts.notify.refs import SecretRef, secret_ref

DEFAULT_API_URL: Final = "https://api.opsgenie.com"
EU_API_URL: Final = "https://api.eu.opsgenie.com"
PRIORITIES: Final = ("P1", "P2", "P3", "P4", "P5")
RESPONDER_TYPES: Final = ("team", "user", "escalation", "schedule")
SOURCE: Final = "rollouts-controller"
# the API's field limits: longer values are cut here rather than refused there
_MESSAGE_MAX: Final = 130
_ALIAS_MAX: Final = 512
_DESCRIPTION_MAX: Final = 15000
_NOTE_MAX: Final = 25000


@dataclass(frozen=True)
class OpsgenieSettings:
    api_url: str = DEFAULT_API_URL
    responders: tuple[tuple[tuple[str, str], ...], ...] = ()
    priority: str | None = None
    tags: tuple[str, ...] = ()


def _api_url(v: Any) -> str | None:
    """Argo writes the host alone (``api.eu.opsgenie.com``); a full URL is accepted too."""
    if not isinstance(v, str) or not v.strip():
        return None
    url = str(v).strip().rstrip("/")
    if url.startswith(("http://", "https://")):
        return url
    return None if "/" in url else f"https://{url}"


def _responder(r: Any) -> tuple[tuple[str, str], ...] | None:
    if not isinstance(r, dict) or r.get("type") not in RESPONDER_TYPES:
        return None
    ids = {k: v for k, v in r.items() if k in ("id", "name", "username") and isinstance(v, str) and v}
    if not ids or len(r) != len(ids) + 1:
        return None
    return (("type", str(r["type"])), *sorted(ids.items()))


def parse_settings(d: dict[str, Any], where: str,
                   errors: list[str]) -> tuple[dict[str, SecretRef], OpsgenieSettings] | None:
    ok, ref = secret_ref(d, "apiKey", where, errors)
    if not ok or ref is None:
        return None
    api = _api_url(d.get("apiUrl", DEFAULT_API_URL))
    if api is None:
        errors.append(f"{where}: apiUrl must be api.opsgenie.com, api.eu.opsgenie.com or an http(s) URL")
        return None
    raw = d.get("responders", [])
    responders = [_responder(r) for r in raw] if isinstance(raw, list) else [None]
    if any(r is None for r in responders):
        errors.append(f"{where}: responders must be a list of {{type: team|user|escalation|schedule, "
                      "id|name|username: ...}}")
        return None
    prio = d.get("priority")
    if prio is not None and prio not in PRIORITIES:
        errors.append(f"{where}: priority must be one of {', '.join(PRIORITIES)}")
        return None
    tags = d.get("tags", [])
    if not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        errors.append(f"{where}: tags must be a list of strings")
        return None
    return {"apiKey": ref}, OpsgenieSettings(api, tuple(r for r in responders if r is not None),
                                             prio, tuple(tags))


def alias(a: Alert) -> str:
    parts = ["rollouts.dev", a.namespace, a.rollout, a.alertname] + ([a.metric] if a.metric else [])
    return ":".join(parts)[:_ALIAS_MAX]  # no "/": the alias travels in the close URL's path


def priority(s: OpsgenieSettings, a: Alert) -> str:
    return s.priority or ("P1" if a.severity == "critical" else "P3")


def create_body(s: OpsgenieSettings, a: Alert) -> dict[str, Any]:
    ann = a.annotations()
    details = {"namespace": a.namespace, "rollout": a.rollout, "alertname": a.alertname,
               "severity": a.severity, "revision": a.revision}
    if a.metric:
        details["metric"] = a.metric
    body: dict[str, Any] = {
        "message": ann["summary"][:_MESSAGE_MAX],
        "alias": alias(a),
        "description": (a.description or ann["summary"])[:_DESCRIPTION_MAX],
        "tags": ["rollouts", a.namespace, a.alertname, *s.tags],
        "details": {k: v for k, v in details.items() if v},
        "entity": f"{a.namespace}/{a.rollout}",
        "source": SOURCE,
        "priority": priority(s, a),
    }
    if s.responders:
        body["responders"] = [dict(r) for r in s.responders]
    return body


def close_body(a: Alert) -> dict[str, Any]:
    return {"source": SOURCE,
            "note": f"Rollout {a.namespace}/{a.rollout} is healthy again"[:_NOTE_MAX]}


def incident_job(settings: OpsgenieSettings, secrets: dict[str, str], a: Alert, *,
                 resolve: bool) -> Job:
    headers = {"Authorization": f"GenieKey {secrets['apiKey']}"}
    if resolve:
        url = f"{settings.api_url}/v2/alerts/{quote(alias(a), safe='')}/close?identifierType=alias"
        return Job(url, close_body(a), f"close {a.alertname}", headers)
    return Job(f"{settings.api_url}/v2/alerts", create_body(s=settings, a=a), f"create {a.alertname}",
               headers)

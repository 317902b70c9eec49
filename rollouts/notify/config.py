"""The notification configuration: a ConfigMap (parsed here, pure) whose receivers take
their URLs from Secrets.

.. code-block:: yaml

    data:
      receiver.team-hook: |
        type: webhook                      # webhook | slack
        url: {secretKeyRef: {name: rollouts-notifications, key: team-hook-url}}
      receiver.team-slack: |
        type: slack
        url: {secretKeyRef: {name: rollouts-notifications, key: slack-url}}
        channel: "#deploys"                # optional
      receiver.oncall: |                   # also teams, teams-workflows, email, opsgenie:
        type: pagerdutyv2                  # see their modules and docs/alerting.md
        routingKey: {secretKeyRef: {name: rollouts-notifications, key: pd-key}}
      subscriptions: |
        - triggers: [on-rollout-aborted, on-analysis-run-failed]
          receivers: [team-slack]
        - triggers: ["*"]                  # every trigger
          receivers: [team-hook]
          namespaces: [shop]               # optional: only these namespaces
      alertmanager.urls: |                 # optional, added to --alertmanager-url
        - http://alertmanager.monitoring:9093

A Rollout can subscribe too, with the annotation
``notifications.rollouts.dev/subscribe.<trigger>: "<receiver>[,<receiver>...]"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from rollouts.notify.refs import SecretRef, secret_ref
from rollouts.notify.services import RECEIVER_TYPES, SETTINGS
from rollouts.notify.triggers import ALL

RECEIVER_PREFIX: Final = "receiver."
ANNOTATION_PREFIX: Final = "notifications.rollouts.dev/"
SUBSCRIBE_PREFIX: Final = f"{ANNOTATION_PREFIX}subscribe."
ALERTMANAGER_URL_ANNOTATION: Final = f"{ANNOTATION_PREFIX}alertmanager-url"
__all__ = ["RECEIVER_TYPES", "NotifyConfig", "ReceiverSpec", "SecretRef", "Subscription",
           "parse_config", "receivers_for", "rollout_alertmanager_urls"]


@dataclass(frozen=True)
class ReceiverSpec:
    name: str
    type: str
    url: SecretRef | None  # webhook, slack, teams, teams-workflows: the URL is the secret
    channel: str | None = None
    secret_refs: tuple[tuple[str, SecretRef], ...] = ()  # the other types' credentials, by field
    settings: Any = None  # the type's own settings (email.EmailSettings, ...)

    def refs(self) -> dict[str, SecretRef]:
        """Every Secret value this receiver needs, by field name."""
        return {**({"url": self.url} if self.url is not None else {}), **dict(self.secret_refs)}


@dataclass(frozen=True)
class Subscription:
    triggers: frozenset[str]
    receivers: tuple[str, ...]
    namespaces: frozenset[str] = frozenset()

    def matches(self, trigger: str, namespace: str) -> bool:
        return (ALL in self.triggers or trigger in self.triggers) and (
            not self.namespaces or namespace in self.namespaces)


@dataclass(frozen=True)
class NotifyConfig:
    receivers: dict[str, ReceiverSpec] = field(default_factory=dict)
    subscriptions: tuple[Subscription, ...] = ()
    alertmanager_urls: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


def _str_list(v: Any) -> list[str] | None:
    if isinstance(v, str):
        return [v]
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return list(v)
    return None


def _receiver(name: str, raw: str, errors: list[str]) -> ReceiverSpec | None:
    where = f"{RECEIVER_PREFIX}{name}"
    try:
        d = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        errors.append(f"{where}: not YAML: {e}")
        return None
    if not isinstance(d, dict):
        errors.append(f"{where}: must be a mapping")
        return None
    rtype = d.get("type")
    if rtype not in RECEIVER_TYPES:
        errors.append(f"{where}: type must be one of {', '.join(RECEIVER_TYPES)}")
        return None
    parse = SETTINGS.get(rtype)
    if parse is not None:
        parsed = parse(d, where, errors)
        if parsed is None:
            return None
        refs, settings = parsed
        return ReceiverSpec(name, rtype, None, secret_refs=tuple(refs.items()), settings=settings)
    ok, ref = secret_ref(d, "url", where, errors)
    if not ok or ref is None:
        return None
    channel = d.get("channel")
    return ReceiverSpec(name, rtype, ref, channel if isinstance(channel, str) and channel else None)


def _subscriptions(raw: str, receivers: dict[str, ReceiverSpec],
                   errors: list[str]) -> list[Subscription]:
    try:
        items = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        errors.append(f"subscriptions: not YAML: {e}")
        return []
    if not isinstance(items, list):
        errors.append("subscriptions: must be a list")
        return []
    out: list[Subscription] = []
    for i, s in enumerate(items):
        triggers = _str_list(s.get("triggers")) if isinstance(s, dict) else None
        names = _str_list(s.get("receivers")) if isinstance(s, dict) else None
        nss = _str_list(s.get("namespaces", [])) if isinstance(s, dict) else None
        if not triggers or not names or nss is None:
            errors.append(f"subscriptions[{i}]: needs triggers and receivers (lists of strings)")
            continue
        unknown = [n for n in names if n not in receivers]
        if unknown:
            errors.append(f"subscriptions[{i}]: unknown receivers {', '.join(unknown)}")
        known = tuple(n for n in names if n in receivers)
        if known:
            out.append(Subscription(frozenset(triggers), known, frozenset(nss)))
    return out


def parse_config(data: dict[str, str] | None) -> NotifyConfig:
    """Never raises: a broken entry is reported in ``errors`` and left out."""
    data = data or {}
    errors: list[str] = []
    receivers: dict[str, ReceiverSpec] = {}
    for key in sorted(data):
        if key.startswith(RECEIVER_PREFIX):
            r = _receiver(key[len(RECEIVER_PREFIX):], data[key], errors)
            if r is not None:
                receivers[r.name] = r
    subs = _subscriptions(data["subscriptions"], receivers, errors) if "subscriptions" in data else []
    urls: list[str] = []
    if "alertmanager.urls" in data:
        try:
            parsed = _str_list(yaml.safe_load(data["alertmanager.urls"]))
        except yaml.YAMLError:
            parsed = None
        if parsed is None:
            errors.append("alertmanager.urls: must be a list of URLs")
        else:
            urls = [u.rstrip("/") for u in parsed if u.startswith(("http://", "https://"))]
    return NotifyConfig(receivers, tuple(subs), tuple(urls), tuple(errors))


def receivers_for(cfg: NotifyConfig, trigger: str, namespace: str,
                  annotations: dict[str, str]) -> list[str]:
    """Receiver names for a trigger on a rollout, in configuration order, without repeats."""
    names: list[str] = []
    for s in cfg.subscriptions:
        if s.matches(trigger, namespace):
            names += s.receivers
    for key in (f"{SUBSCRIBE_PREFIX}{trigger}", f"{SUBSCRIBE_PREFIX}{ALL}"):
        names += [n.strip() for n in annotations.get(key, "").split(",")
                  if n.strip() in cfg.receivers]
    return list(dict.fromkeys(names))


def rollout_alertmanager_urls(annotations: dict[str, str]) -> list[str]:
    raw = annotations.get(ALERTMANAGER_URL_ANNOTATION, "")
    return [u.strip().rstrip("/") for u in raw.split(",")
            if u.strip().startswith(("http://", "https://"))]

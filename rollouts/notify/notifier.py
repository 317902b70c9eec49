"""The decision listener: trigger messages to webhook, Slack, Teams and email receivers;
alerts to Alertmanager and, as incidents, to PagerDuty and Opsgenie receivers.

``Notifier.__call__`` runs inside a reconcile, so it only computes and enqueues; delivery,
re-sending active alerts and reloading the configuration run in ``Notifier.run``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from rollouts.notify.alerts import Alert, AlertTracker
from rollouts.notify.config import receivers_for, rollout_alertmanager_urls
from rollouts.notify.delivery import Deliveries, Job
from rollouts.notify.incidents import IncidentBook
from rollouts.notify.payloads import rfc3339
from rollouts.notify.services import INCIDENT_TYPES, alert_trigger, incident_job, notification_job
from rollouts.notify.source import ConfigSource, Loaded
from rollouts.notify.triggers import EventLike, notifications_for

log = logging.getLogger(__name__)
ALERTMANAGER = "alertmanager"


def _fmt(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Notifier:
    def __init__(self, deliveries: Deliveries, alertmanager_urls: Iterable[str] = (),
                 source: ConfigSource | None = None, resend_interval: float = 60.0,
                 reload_interval: float = 15.0, rollout_alertmanager_urls: bool = True,
                 exists: Callable[[str], bool] | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.deliveries = deliveries
        self.global_urls = {u.rstrip("/") for u in alertmanager_urls}
        self.source = source
        self.resend_interval = resend_interval
        self.reload_interval = reload_interval
        self.allow_rollout_urls = rollout_alertmanager_urls
        self.exists = exists
        self.clock = clock or (lambda: datetime.now(UTC))
        self.loaded = Loaded()
        self.tracker = AlertTracker()
        self.incidents = IncidentBook()

    @property
    def active_for(self) -> timedelta:
        """How long Alertmanager keeps an alert we stopped re-sending (we died): 4 intervals."""
        return timedelta(seconds=max(4 * self.resend_interval, 10.0))

    async def start(self) -> None:
        if self.source is not None:
            self.loaded = await self.source.load()

    # --- the listener (must not block) ------------------------------------------------
    def __call__(self, obj: dict[str, Any], status: Any, events: Sequence[EventLike]) -> None:
        md = obj.get("metadata") or {}
        ns, name = str(md.get("namespace", "")), str(md.get("name", ""))
        annotations: dict[str, str] = md.get("annotations") or {}
        now = self.clock()
        cfg = self.loaded
        for n in notifications_for(obj, status, events, _fmt(now)):
            for rname in receivers_for(cfg.config, n.trigger, ns, annotations):
                spec = cfg.config.receivers[rname]
                if spec.type in INCIDENT_TYPES:
                    continue  # they get alerts (below), not trigger messages
                secrets = self._secrets(cfg, rname)
                if secrets is None:
                    self.deliveries.observer.failed(spec.type, rname,
                                                    "no_url" if spec.url is not None else "no_secret")
                    continue
                job = notification_job(spec.type, spec.settings, spec.channel, secrets, n)
                if job is not None:
                    self.deliveries.offer(spec.type, rname, job)
        urls = self.global_urls | set(cfg.config.alertmanager_urls)
        if self.allow_rollout_urls:
            urls |= set(rollout_alertmanager_urls(annotations))
        changed, resolved = self.tracker.observe(f"{ns}/{name}", ns, name, status.to_dict(), events,
                                                 urls, now)
        self._post(changed + resolved, now)

        def wanted(a: Alert) -> list[str]:
            return [r for r in receivers_for(cfg.config, alert_trigger(a), ns, annotations)
                    if cfg.config.receivers[r].type in INCIDENT_TYPES]

        active = self.tracker.active.get(f"{ns}/{name}", {}).values()
        self._incidents(self.incidents.to_open(active, changed, wanted), resolve=False)
        self._incidents(self.incidents.to_close(resolved), resolve=True)

    @staticmethod
    def _secrets(cfg: Loaded, rname: str) -> dict[str, str] | None:
        found = cfg.secrets.get(rname)
        if found is None and rname in cfg.urls:
            return {"url": cfg.urls[rname]}
        return found

    def _incidents(self, pairs: list[tuple[Alert, str]], *, resolve: bool) -> None:
        cfg = self.loaded
        for a, rname in pairs:
            spec = cfg.config.receivers.get(rname)
            secrets = self._secrets(cfg, rname) if spec is not None else None
            if spec is None or secrets is None:
                if resolve or self.incidents.unsent(a, rname):
                    rtype = spec.type if spec is not None else "unknown"
                    self.deliveries.observer.failed(rtype, rname, "no_secret")
                    log.warning("notifications: receiver %s: no credentials, %s of %s not sent",
                                rname, "resolve" if resolve else "trigger", a.alertname)
                continue
            if not resolve:
                self.incidents.sent(a, rname)
            self.deliveries.offer(spec.type, rname, incident_job(
                spec.type, spec.settings, secrets, a, resolve=resolve, timestamp=rfc3339(a.starts_at)))

    def _post(self, alerts: list[Alert], now: datetime) -> None:
        batches: dict[str, list[dict[str, Any]]] = {}
        for a in alerts:
            for url in sorted(a.urls):
                batches.setdefault(url, []).append(a.to_am(now, self.active_for))
        for url, batch in batches.items():
            self.deliveries.offer(ALERTMANAGER, url, Job(f"{url}/api/v2/alerts", batch,
                                                         f"{len(batch)} alert(s)"))

    # --- background -------------------------------------------------------------------
    def resend(self) -> None:
        """Re-send every active alert; resolve those of rollouts that no longer exist."""
        now = self.clock()
        gone: list[Alert] = []
        if self.exists is not None:
            for key in [k for k in self.tracker.active if not self.exists(k)]:
                gone += self.tracker.forget(key, now)
        self._post(self.tracker.firing() + gone, now)
        self._incidents(self.incidents.to_close(gone), resolve=True)

    async def _every(self, seconds: float, what: str, fn: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                r = fn()
                if asyncio.iscoroutine(r):
                    await r
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notifications: %s failed", what)

    async def _reload(self) -> None:
        if self.source is not None:
            self.loaded = await self.source.load()

    async def run(self) -> None:
        """Until cancelled; then the senders stop too."""
        try:
            await asyncio.gather(self._every(self.resend_interval, "re-sending alerts", self.resend),
                                 self._every(self.reload_interval, "reloading config", self._reload))
        finally:
            await self.deliveries.close()
            if self.source is not None:
                await self.source.close()

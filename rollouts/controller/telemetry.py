"""Wiring of what the controller exports and sends: /metrics, the rollout and work-queue
collectors, and the notifier (Alertmanager, webhook, Slack) as a decision listener."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Protocol

from rollouts.controller.reconciler import DecisionListener
from rollouts.kube.client import Kube
from rollouts.kube.informer import Informer
from rollouts.kube.workqueue import WorkQueue
from rollouts.notify.delivery import Deliveries
from rollouts.notify.notifier import Notifier
from rollouts.notify.source import ConfigSource
from rollouts.observability.collectors import RolloutCollector, WorkQueueCollector
from rollouts.observability.metrics import ControllerMetrics

DEFAULT_CONTROLLER_NAMESPACE = "rollouts-system"
_ANALYSIS_RUN_KEY = "AnalysisRun:"  # manager's work-queue prefix for AnalysisRun keys
_EXPERIMENT_KEY = "Experiment:"  # and for Experiment keys


class AlertingOptions(Protocol):
    @property
    def alertmanager_urls(self) -> Sequence[str]: ...
    @property
    def notifications_configmap(self) -> str: ...
    @property
    def controller_namespace(self) -> str | None: ...
    @property
    def alert_resend_seconds(self) -> float: ...
    @property
    def rollout_alertmanager_urls(self) -> bool: ...


def controller_namespace(configured: str | None) -> str:
    """Where the controller's own configuration lives: the flag, else $POD_NAMESPACE."""
    return configured or os.environ.get("POD_NAMESPACE") or DEFAULT_CONTROLLER_NAMESPACE


class Telemetry:
    def __init__(self, queue: WorkQueue) -> None:
        self.metrics = ControllerMetrics()
        self.metrics.register(WorkQueueCollector(queue, self.metrics.in_flight))
        self.notifier: Notifier | None = None

    def started(self, key: str, waited: float, *, urgent: bool = False) -> None:
        self.metrics.start_work(key, waited, urgent=urgent)

    def finished(self, key: str, requeue: float | None = None, error: bool = False) -> None:
        controller = ("analysisrun" if key.startswith(_ANALYSIS_RUN_KEY)
                      else "experiment" if key.startswith(_EXPERIMENT_KEY) else "rollout")
        result = "error" if error else "requeue_after" if requeue is not None else "success"
        self.metrics.end_work(key, result, controller)

    async def start(self, opts: AlertingOptions, kube: Kube, rollouts: Informer,
                    runs: Informer | None = None) -> tuple[list[DecisionListener], asyncio.Task[None]]:
        """Once the caches are synced (and we lead): the rollout gauges and the notifier."""
        self.metrics.register(RolloutCollector(rollouts.values, runs.values if runs else None))
        source = (ConfigSource(kube, controller_namespace(opts.controller_namespace),
                               opts.notifications_configmap)
                  if opts.notifications_configmap else None)
        if source is not None:
            await source.watch()
        self.notifier = Notifier(
            Deliveries(self.metrics), opts.alertmanager_urls, source,
            resend_interval=opts.alert_resend_seconds,
            rollout_alertmanager_urls=opts.rollout_alertmanager_urls,
            exists=lambda key: key in rollouts.store)
        await self.notifier.start()
        return [self.notifier], asyncio.create_task(self.notifier.run())

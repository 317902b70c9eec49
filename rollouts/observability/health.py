"""Readiness and leadership, reported apart.

A replica is *ready* while it serves (the HTTP API and ``/metrics`` answer), whether or not
it leads: a standby waiting for the Lease serves the API (which reads the API server, not
the informers) and its own metrics, so a 2-replica Deployment shows 2/2 Ready and its
Service keeps both endpoints. Only a replica shutting down is not ready. This is
controller-runtime's default (a ping check; leader election is not a readiness matter).

Leadership is reported separately: the gauge ``rollouts_controller_leader`` (1 on the
replica that acts, 0 on a standby) and the ``leader`` field of ``/readyz?verbose``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rollouts.observability.metrics import ControllerMetrics

LEADER_METRIC = "rollouts_controller_leader"


class Elector(Protocol):
    """What is read of rollouts.kube.leader.LeaderElector."""

    namespace: str
    name: str
    identity: str
    is_leader: asyncio.Event
    lost: asyncio.Event


class Health(Collector):
    """The process's state as the probes and the leader gauge see it. The manager sets
    ``elector`` when it runs for leadership, ``synced`` once its informers are synced and
    its workers run, ``stopping`` when shutdown begins."""

    def __init__(self, metrics: ControllerMetrics | None = None, *,
                 leader_election: bool) -> None:
        self.leader_election = leader_election
        self.elector: Elector | None = None
        self.synced = False
        self.stopping = False
        if metrics is not None:
            metrics.register(self)

    def leader(self) -> bool:
        """True when this replica acts: it holds the Lease, or runs without election."""
        if not self.leader_election:
            return not self.stopping
        e = self.elector
        return e is not None and e.is_leader.is_set() and not e.lost.is_set() \
            and not self.stopping

    def ready(self) -> bool:
        return not self.stopping

    def details(self) -> dict[str, object]:
        e = self.elector
        return {
            "ready": self.ready(),
            "leaderElection": self.leader_election,
            "leader": self.leader(),
            # informers synced and workers running: this replica is reconciling
            "active": self.synced and self.leader(),
            "lease": f"{e.namespace}/{e.name}" if e is not None else None,
            "identity": e.identity if e is not None else None,
        }

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily(
            LEADER_METRIC,
            "1 on the replica that acts (holds the leader-election Lease, or runs without "
            "election), 0 on a standby.")
        g.add_metric([], 1.0 if self.leader() else 0.0)
        yield g

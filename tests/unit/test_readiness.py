"""Readiness is "this replica serves"; leadership is reported apart (issue 15).

Before, /readyz answered 503 on a standby waiting for the Lease, so the shipped 2-replica
Deployment sat at 1/2 Ready and the HTTP API Service lost an endpoint it could use."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.testclient import TestClient

from rollouts.controller.manager import Controller, ControllerOptions
from rollouts.observability.health import LEADER_METRIC, Health
from rollouts.observability.metrics import ControllerMetrics


class FakeElector:
    namespace, name, identity = "rollouts-system", "rollouts-controller", "pod-a_1_abc"

    def __init__(self) -> None:
        self.is_leader = asyncio.Event()
        self.lost = asyncio.Event()


def _leader_gauge(text: str) -> float:
    line = next(x for x in text.splitlines() if x.startswith(LEADER_METRIC + " "))
    return float(line.split()[1])


def _plain_app(ctl: Controller) -> TestClient:
    """The --metrics-listen app exactly as the manager builds it."""
    servers = ctl._servers(object())  # type: ignore[arg-type]  # the kube client is not called
    assert len(servers) == 2
    app: Any = servers[1].config.app
    return TestClient(app)


def test_a_standby_replica_is_ready_and_says_it_does_not_lead() -> None:
    ctl = Controller(ControllerOptions(leader_elect=True, insecure_http=True,
                                       listen="127.0.0.1:0", metrics_listen="127.0.0.1:0"))
    main = TestClient(ctl.http_app(object()))  # type: ignore[arg-type]
    plain = _plain_app(ctl)
    elector = FakeElector()
    ctl.health.elector = elector  # running for leadership, not holding the Lease
    for c in (main, plain):
        r = c.get("/readyz")
        assert r.status_code == 200 and r.text == "ok"  # 503 before the fix
        d = c.get("/readyz?verbose").json()
        assert d["ready"] is True and d["leader"] is False and d["active"] is False
        assert d["leaderElection"] is True and d["lease"] == "rollouts-system/rollouts-controller"
    assert _leader_gauge(plain.get("/metrics").text) == 0.0

    elector.is_leader.set()  # took the Lease; informers synced, workers running
    ctl.health.synced = True
    d = plain.get("/readyz?verbose").json()
    assert d["leader"] is True and d["active"] is True
    assert _leader_gauge(plain.get("/metrics").text) == 1.0

    elector.lost.set()  # a lost Lease is no longer leadership, even for a moment
    assert plain.get("/readyz?verbose").json()["leader"] is False
    assert _leader_gauge(plain.get("/metrics").text) == 0.0


def test_a_replica_shutting_down_is_not_ready() -> None:
    ctl = Controller(ControllerOptions(insecure_http=True, listen="127.0.0.1:0",
                                       metrics_listen="127.0.0.1:0"))
    plain = _plain_app(ctl)
    assert plain.get("/readyz").status_code == 200
    ctl.health.stopping = True
    r = plain.get("/readyz")
    assert r.status_code == 503 and r.text == "not ready"
    r = plain.get("/readyz?verbose")
    assert r.status_code == 503 and r.json()["ready"] is False
    assert plain.get("/healthz").text == "ok"  # alive: it is exiting on its own


def test_without_leader_election_the_only_replica_leads() -> None:
    m = ControllerMetrics()
    h = Health(m, leader_election=False)
    assert h.leader() and h.ready() and h.details()["lease"] is None
    assert not h.details()["active"]  # informers not yet synced
    h.synced = True
    assert h.details()["active"]
    assert _leader_gauge(m.render()[0].decode()) == 1.0


def test_the_leader_gauge_is_exported_once_per_registry() -> None:
    m = ControllerMetrics()
    Health(m, leader_election=True)
    text = m.render()[0].decode()
    assert text.count(f"# TYPE {LEADER_METRIC} gauge") == 1
    assert _leader_gauge(text) == 0.0

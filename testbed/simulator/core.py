"""The Simulator: watches + tick loop + /metrics, in one asyncio event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from types import TracebackType

import numpy as np
from kubernetes_asyncio import client, config

from .kube import (
    DESTINATION_RULE,
    HTTP_ROUTE,
    INGRESS,
    POD,
    SERVICE,
    TRAFFIC_SPLIT,
    VIRTUAL_SERVICE,
    Reflector,
)
from .metrics import IstioMetrics, MetricsServer, NginxMetrics
from .model import Clients, ClusterState, PlanBuilder, RoutePlan
from .traffic import draw_tick

log = logging.getLogger(__name__)

MAX_CATCH_UP_TICKS = 25  # after a stall, do not dump more than this many ticks at once


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen wants HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


class Simulator:
    """Simulated data plane for the test bed: Istio's mesh (VirtualServices, TrafficSplits,
    HTTPRoutes) and ingress controllers (NGINX canary Ingresses, ALB actions).

    ``headers``/``header_share``: that share of clients sends those headers (header routes).

    ``await start()`` lists everything once (so the first tick sees the whole
    cluster), serves /metrics and starts ticking; ``port`` is then the bound port.
    Pass either ``kubeconfig`` (a path) or an existing ``api_client`` (not closed by
    ``stop()``).
    """

    def __init__(
        self,
        *,
        kubeconfig: str | None = None,
        api_client: client.ApiClient | None = None,
        namespace: str | None = None,
        rps: float = 100.0,
        seed: int | None = None,
        listen: str = "127.0.0.1:0",
        tick: float = 0.2,
        sync_timeout: float = 60.0,
        per_pod: bool = True,
        headers: Mapping[str, str] | None = None,
        header_share: float = 0.0,
    ) -> None:
        if tick <= 0:
            raise ValueError("tick must be > 0")
        if rps < 0:
            raise ValueError("rps must be >= 0")
        self.kubeconfig = kubeconfig
        self.namespace = namespace or None
        self.tick = tick
        self.sync_timeout = sync_timeout
        self.host, port = parse_listen(listen)
        self.rng = np.random.default_rng(seed)
        self.state = ClusterState()
        clients = Clients(tuple((headers or {}).items()), header_share)
        self.builder = PlanBuilder(rps, per_pod=per_pod, clients=clients)
        self.metrics = IstioMetrics(per_pod=per_pod)
        self.nginx_metrics = NginxMetrics()
        self._restarts: dict[tuple[str, str], str] = {}  # (ns, pod) -> last restart_token
        self.server = MetricsServer(self.metrics, self.host, port, texts=[self.nginx_metrics.text])
        self.ticks = 0
        self._api = api_client
        self._own_api = api_client is None
        self._plans: list[RoutePlan] = []
        self._dirty = True
        self._tasks: list[asyncio.Task[None]] = []
        self._reflectors: list[Reflector] = []

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> str:
        """HOST:PORT, the form Prometheus wants as a scrape target."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    @property
    def plans(self) -> list[RoutePlan]:
        """The current routing plan (rebuilt lazily after a watched change)."""
        if self._dirty:
            self._dirty = False
            self._plans = self.builder.build(self.state)
        return self._plans

    def _changed(self) -> None:
        self._dirty = True

    async def start(self) -> None:
        if self._api is None:
            cfg = client.Configuration()
            await config.load_kube_config(config_file=self.kubeconfig, client_configuration=cfg)
            self._api = client.ApiClient(cfg)
        stores = {
            VIRTUAL_SERVICE: self.state.virtual_services,
            DESTINATION_RULE: self.state.destination_rules,
            SERVICE: self.state.services,
            POD: self.state.pods,
            INGRESS: self.state.ingresses,
            TRAFFIC_SPLIT: self.state.traffic_splits,
            HTTP_ROUTE: self.state.http_routes,
        }
        try:
            for res, store in stores.items():
                r = Reflector(self._api, res, self.namespace, store, self._changed)
                self._reflectors.append(r)
                self._tasks.append(asyncio.create_task(r.run(), name=f"watch-{res.plural}"))
            async with asyncio.timeout(self.sync_timeout):
                for r in self._reflectors:
                    await r.synced.wait()
            await self.server.start()
        except BaseException:
            await self.stop()
            raise
        self._tasks.append(asyncio.create_task(self._tick_loop(), name="simulator-ticks"))
        log.info(
            "simulator serving %s (namespace=%s, rps=%g, tick=%gs)",
            self.url,
            self.namespace or "*",
            self.builder.default_rps,
            self.tick,
        )

    def step(self, ticks: int = 1) -> None:
        """Simulate ``ticks`` ticks of traffic now (the loop calls this; tests may too)."""
        plans = self.plans
        self._reset_restarted(plans)
        batches = draw_tick(self.rng, plans, ticks * self.tick, now=time.time())
        self.metrics.record(batches)
        self.nginx_metrics.record(batches)
        self.ticks += ticks

    def _reset_restarted(self, plans: list[RoutePlan]) -> None:
        """A pod whose restart token changed restarted: its counters start from 0."""
        for plan in plans:
            for dest in plan.destinations:
                for group in dest.groups:
                    if not group.pod:
                        continue
                    key = (dict(group.labels)["destination_workload_namespace"], group.pod)
                    seen = self._restarts.get(key)
                    if seen is not None and seen != group.restarts:
                        dropped = self.metrics.reset_pod(*key)
                        log.info("pod %s/%s restarted: %d series start from 0", *key, dropped)
                    self._restarts[key] = group.restarts
        if len(self._restarts) > 100_000:  # bounded under pod churn
            self._restarts.clear()

    async def _tick_loop(self) -> None:
        # An absolute schedule, so the long-run rate is exact even if the loop lags,
        # and each draw uses a whole number of ticks (reproducible given the seed).
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self.tick
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            due = int((loop.time() - next_at) // self.tick) + 1
            next_at += due * self.tick
            try:
                self.step(min(due, MAX_CATCH_UP_TICKS))
            except Exception:
                log.exception("tick failed")

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        self._reflectors.clear()
        await self.server.stop()
        if self._own_api and self._api is not None:
            await self._api.close()
            self._api = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

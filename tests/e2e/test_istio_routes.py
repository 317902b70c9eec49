"""Istio routing as a user's traffic sees it: never a moment where a weighted destination
selects a revision without available pods, and tls[] / tcp[] routes shifted like http[].

The timeline is rebuilt from watch events of the VirtualService, the Services, the
DestinationRule and the ReplicaSets, ordered by resourceVersion (one etcd revision
counter for all of them), so "which came first" is what the API server stored, not
when our watch happened to deliver it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from rollouts.kube.apply import apply
from rollouts.kube.client import JSON, Kube, Resource
from rollouts.kube.signals import request_action
from tests.e2e.kit import (
    DR,
    HASH,
    REPLICASETS,
    SERVICES,
    VS,
    ControllerProcess,
    destination_rule,
    eventually,
    get_rollout,
    phase_is,
    rollout,
    services,
    set_image,
    virtual_service,
)


class Timeline:
    """Every stored version of the routing objects and ReplicaSets of one namespace."""

    def __init__(self, kube: Kube, ns: str) -> None:
        self.kube, self.ns = kube, ns
        self.initial: dict[tuple[str, str], JSON] = {}  # as listed at the start
        self.versions: list[tuple[int, str, JSON]] = []  # (resourceVersion, kind, object)
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = 0
        self._stopping = False

    async def _watch(self, kind: str, res: Resource) -> None:
        data = await self.kube.get_list(res.path(self.ns))
        for o in data["items"]:
            self.initial[(kind, o["metadata"]["name"])] = o
        self._ready += 1
        rv = data["metadata"]["resourceVersion"]
        while not self._stopping:
            with contextlib.suppress(Exception):
                async for ev in self.kube.watch(res.path(self.ns), rv, 120):
                    o = ev["object"]
                    rv = o["metadata"]["resourceVersion"]
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        self.versions.append((int(rv), kind, o))

    async def start(self) -> Timeline:
        for kind, res in (("vs", VS), ("svc", SERVICES), ("dr", DR), ("rs", REPLICASETS)):
            self._tasks.append(asyncio.create_task(self._watch(kind, res)))
        await eventually(lambda: _true(self._ready == 4), 10, "watches started")
        return self

    async def stop(self) -> None:
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        # never wait forever for a watch to notice (a test must fail, not hang)
        _, pending = await asyncio.wait(self._tasks, timeout=10) if self._tasks else (set(), set())
        assert not pending, f"{len(pending)} watch task(s) ignored cancellation"

    def states(self) -> list[tuple[int, dict[tuple[str, str], JSON]]]:
        """The objects as stored after each write, in the API server's order (from the
        state listed at the start, which the watches continue)."""
        state: dict[tuple[str, str], JSON] = dict(self.initial)
        out = [(0, dict(state))]
        for rv, kind, o in sorted(self.versions, key=lambda v: v[0]):
            state[(kind, o["metadata"]["name"])] = o
            out.append((rv, dict(state)))
        return out


async def _true(v: bool) -> bool:
    return v


def _served(state: dict[tuple[str, str], JSON]) -> list[tuple[int, str | None, int]]:
    """(weight, selected pod template hash, its available pods) for each weighted
    destination of the VirtualService's http route."""
    vs = state.get(("vs", "demo"))
    if vs is None:
        return []
    out = []
    for d in vs["spec"]["http"][0]["route"]:
        w = int(d.get("weight") or 0)
        dst = d["destination"]
        if "subset" in dst:
            dr = state.get(("dr", "demo"))
            subsets = {s["name"]: s.get("labels") or {}
                       for s in (dr or {}).get("spec", {}).get("subsets", [])}
            h = subsets.get(dst["subset"], {}).get(HASH)
        else:
            svc = state.get(("svc", dst["host"]))
            h = ((svc or {}).get("spec", {}).get("selector") or {}).get(HASH)
        rs = next((o for (k, _), o in state.items()
                   if k == "rs" and (o["metadata"].get("labels") or {}).get(HASH) == h), None)
        avail = int(((rs or {}).get("status") or {}).get("availableReplicas") or 0)
        out.append((w, h, avail))
    return out


async def _deploy(rkube: Kube, ns: str, steps: list[dict[str, Any]], subsets: bool,
                  **extra: Any) -> str:
    objs: list[JSON] = (services() if not subsets else [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "demo"},
         "spec": {"selector": {"app": "demo"}, "ports": [{"port": 80}]}}, destination_rule()])
    for obj in [*objs, virtual_service(subsets=subsets)]:
        await apply(rkube, obj, ns)
    await apply(rkube, rollout(steps, subsets=subsets, replicas=3, **extra), ns)
    ro = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy Healthy")
    return str(ro["status"]["stableRS"])


@pytest.mark.parametrize("subsets", [False, True], ids=["services", "subsets"])
async def test_promotion_after_setweight_100_never_routes_to_a_scaled_down_stable(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess],
        subsets: bool) -> None:
    # dynamicStableScale: at setWeight 100 the old stable is scaled to 0 pods. Promotion
    # must point the stable Service/subset at the new pods before it gives the stable
    # destination its weight back (it used to move the weights first).
    ns = namespace
    start_controller()
    old = await _deploy(rkube, ns, [{"setWeight": 100}, {"pause": {"duration": "3s"}}], subsets,
                        dynamicStableScale=True, scaleDownDelaySeconds=1)
    tl = await Timeline(rkube, ns).start()
    try:
        await set_image(rkube, ns, "demo:2")
        ro = await eventually(lambda: _promoted(rkube, ns, old), 90, "promoted to the new revision")
    finally:
        await tl.stop()
    new = ro["status"]["stableRS"]
    states = tl.states()
    # the old stable really had no pods left while the canary carried everything
    assert any(any(h == old and avail == 0 for _, h, avail in _served(s)) for _, s in states)
    outages = [(rv, _served(s)) for rv, s in states
               if any(w > 0 and avail == 0 for w, _, avail in _served(s))]
    assert outages == [], f"traffic on a selector without available pods: {outages[:3]}"
    assert _served(states[-1][1])[0][:2] == (100, new) or _served(states[-1][1])[1][:2] == (0, new)


async def _promoted(rkube: Kube, ns: str, old: str) -> JSON | None:
    ro = await phase_is(rkube, ns, "Healthy")
    return ro if ro is not None and ro["status"]["stableRS"] != old else None


def _tls_tcp_virtual_service() -> JSON:
    def dests(canary: int) -> list[JSON]:
        return [{"destination": {"host": "demo-stable", "port": {"number": 443}}, "weight": 100 - canary},
                {"destination": {"host": "demo-canary", "port": {"number": 443}}, "weight": canary}]

    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "demo"},
            "spec": {"hosts": ["demo.example.com", "other.example.com"], "gateways": ["mesh"],
                     "tls": [
                         # not ours: another SNI host, must stay as it is
                         {"match": [{"port": 443, "sniHosts": ["other.example.com"]}],
                          "route": [{"destination": {"host": "other", "port": {"number": 443}}}]},
                         {"match": [{"port": 443, "sniHosts": ["demo.example.com"]}],
                          "route": dests(0)}],
                     "tcp": [{"match": [{"port": 5432}], "route": dests(0)}]}}


async def test_tls_and_tcp_routes_get_their_weights_set(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    start_controller()
    for obj in [*services(), _tls_tcp_virtual_service()]:
        await apply(rkube, obj, ns)
    ro = rollout([{"setWeight": 30}, {"pause": {}}], replicas=3)
    # Argo's fields: the tls route by port and SNI hosts, the tcp route by port; the CRD
    # accepts them (apply would fail otherwise).
    ro["spec"]["strategy"]["canary"]["trafficRouting"]["istio"]["virtualService"] = {
        "name": "demo", "tlsRoutes": [{"port": 443, "sniHosts": ["demo.example.com"]}],
        "tcpRoutes": [{"port": 5432}]}
    await apply(rkube, ro, ns)
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy Healthy")

    await set_image(rkube, ns, "demo:2")
    await eventually(lambda: phase_is(rkube, ns, "Paused"), 60, "paused after setWeight 30")
    vs = await rkube.get(VS.path(ns, "demo"))
    assert _weights(vs["spec"]["tls"][1]) == [70, 30]
    assert _weights(vs["spec"]["tcp"][0]) == [70, 30]
    assert vs["spec"]["tls"][0]["route"] == [
        {"destination": {"host": "other", "port": {"number": 443}}}]  # untouched
    st = (await get_rollout(rkube, ns))["status"]
    assert st["canary"]["weights"]["canary"]["weight"] == 30

    await request_action(rkube, ns, "demo", "promote", user="e2e-user")
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "promoted")
    vs = await rkube.get(VS.path(ns, "demo"))
    assert _weights(vs["spec"]["tls"][1]) == [100, 0] and _weights(vs["spec"]["tcp"][0]) == [100, 0]


def _weights(route: JSON) -> list[int]:
    return [int(d.get("weight") or 0) for d in route["route"]]


async def test_abort_moves_the_weight_then_points_the_canary_subset_at_stable(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    # Subset-level splitting: after an abort the canary subset selects the stable pods
    # (Argo's behaviour), but only once no weight is left on it, and at no stored moment
    # does a weighted subset select a revision without available pods.
    ns = namespace
    start_controller()
    stable = await _deploy(rkube, ns, [{"setWeight": 40}, {"pause": {}}], True,
                           abortScaleDownDelaySeconds=1)
    await set_image(rkube, ns, "demo:2")
    ro = await eventually(lambda: phase_is(rkube, ns, "Paused"), 60, "paused at 40 %")
    new = ro["status"]["currentPodHash"]
    tl = await Timeline(rkube, ns).start()
    try:
        await request_action(rkube, ns, "demo", "abort", user="e2e-user")

        async def canary_subset_on_stable() -> bool:
            dr = await rkube.get(DR.path(ns, "demo"))
            labels = {s["name"]: s["labels"].get(HASH) for s in dr["spec"]["subsets"]}
            rss = await _replicas(rkube, ns)
            return labels == {"stable": stable, "canary": stable} and rss.get(new) == 0

        await eventually(canary_subset_on_stable, 30, "canary subset on stable, canary scaled down")
    finally:
        await tl.stop()
    states = tl.states()
    outages = [(rv, _served(s)) for rv, s in states
               if any(w > 0 and avail == 0 for w, _, avail in _served(s))]
    assert outages == [], f"traffic on a subset without available pods: {outages[:3]}"
    # the canary subset kept the new pods while it still had weight
    assert all(h == new for _, s in states for w, h, _ in _served(s)[1:] if w > 0)
    ro = await get_rollout(rkube, ns)
    assert ro["status"]["phase"] == "Degraded"
    assert ro["status"]["canary"]["weights"]["canary"]["weight"] == 0


async def _replicas(rkube: Kube, ns: str) -> dict[str, int]:
    data = await rkube.get_list(REPLICASETS.path(ns))
    return {rs["metadata"]["labels"][HASH]: int(rs["spec"]["replicas"]) for rs in data["items"]
            if HASH in (rs["metadata"].get("labels") or {})}

"""The traffic routing of one Rollout: its Services and, for a canary, its traffic router.

``TrafficRouter`` is what the reconciler talks to. It orders the writes so that traffic is
never sent to a selector without pods, whatever the router: Service selectors
(``services``) and the mesh's weights (``istio``) are separate rooms.
"""

from __future__ import annotations

from dataclasses import replace

from rollouts.api.routing import HeaderRoute, MirrorRoute
from rollouts.api.spec import RolloutSpec
from rollouts.kube.cache import SharedCache
from rollouts.kube.client import Kube
from rollouts.traffic import weighted
from rollouts.traffic.istio import IstioRouter
from rollouts.traffic.objects import ObjectCache
from rollouts.traffic.owned import Target
from rollouts.traffic.services import ServiceSelectors
from rollouts.traffic.weighted import WeightRouter

_FIELDS = {"nginx": "nginx", "alb": "alb", "smi": "smi", "gatewayAPI": "gateway_api"}


class TrafficRouter:
    """One per reconcile: every object is read once and reused. ``rollout`` and ``uid``
    name the Rollout the routers beyond Istio write for (their objects are owned by it)."""

    def __init__(self, kube: Kube, *, rollout: str = "", uid: str = "",
                 shared: SharedCache | None = None) -> None:
        self.objects = ObjectCache(kube, shared)
        self.services = ServiceSelectors(self.objects)
        self.istio = IstioRouter(self.objects)
        self.rollout, self.uid = rollout, uid
        # notes on objects edited by hand and put back, for Events (read after apply)
        self.notes: list[str] = []
        self.notes_removed: list[str] = []  # what remove_previous took back

    def _weighted(self, spec: RolloutSpec) -> tuple[Target, list[tuple[str, WeightRouter]]]:
        c = spec.canary_strategy
        target = Target(self.rollout, self.uid, c.stable_service or "", c.canary_service or "")
        return target, weighted.build(self.objects, c.routers)

    async def check(self, ns: str, spec: RolloutSpec, template_labels: dict[str, str]) -> list[str]:
        """Everything the spec names must exist and fit; the errors say what does not."""
        if spec.blue_green is not None:
            bg = spec.blue_green
            names = [n for n in (bg.active_service, bg.preview_service) if n]
            return await self.services.check(ns, names, template_labels)
        c = spec.canary_strategy
        names = [n for n in (c.stable_service, c.canary_service) if n]
        errors = await self.services.check(ns, names, template_labels)
        if c.istio is not None:
            errors += await self.istio.check(ns, spec)
        target, routers = self._weighted(spec)
        for _key, router in routers:
            errors += await router.check(ns, target)
        return errors

    async def current_weight(self, ns: str, spec: RolloutSpec) -> int | None:
        """The canary weight the router carries now (None: no router, or unreadable)."""
        if spec.canary is None or not spec.canary.traffic_routed:
            return None
        seen: set[int | None] = set()
        if spec.canary.istio is not None:
            seen.add(await self.istio.current_weight(ns, spec))
        target, routers = self._weighted(spec)
        for _key, router in routers:
            seen.add(await router.current_weight(ns, target))
        return seen.pop() if len(seen) == 1 else None  # routers that disagree: unknown

    async def apply(self, ns: str, spec: RolloutSpec, *, stable_hash: str, canary_hash: str,
                    canary_weight: int, previous_weight: int,
                    header_routes: tuple[HeaderRoute, ...] = (),
                    mirror_routes: tuple[MirrorRoute, ...] = ()) -> None:
        """Stable Service/subset -> stable_hash, canary -> canary_hash, canary_weight % on the
        canary, in the order that never sends traffic to a selector without pods:

        1. the stable selector first (Argo's order): it only moves at promotion, to the canary
           pods the promotion waited for, while the old stable may already be scaled down
           (dynamicStableScale after setWeight 100);
        2. less canary traffic: the weights, then the canary selector (its old pods serve
           until no traffic is left on them; after an abort it goes back to the stable hash);
           more or equal: the canary selector, then the weights.
        canary_hash may equal stable_hash (promotion, abort, undo): both point at one revision.
        Header and mirror routes follow the weights (they send requests to the canary's
        pods, which the weights have already been allowed to reach).
        Without a router the weights are the pods' shares (the ReplicaSets' sizes), so only
        the Services move.
        """
        c = spec.canary_strategy
        await self._point_role(ns, spec, role="stable", pod_hash=stable_hash)
        if not c.traffic_routed:
            await self._point_role(ns, spec, role="canary", pod_hash=canary_hash)
        else:
            routes = (header_routes, mirror_routes)
            done = stable_hash == canary_hash
            if canary_weight < previous_weight:
                await self._set_weights(ns, spec, canary_weight, routes, done=done)
                await self._point_role(ns, spec, role="canary", pod_hash=canary_hash)
            else:
                await self._point_role(ns, spec, role="canary", pod_hash=canary_hash)
                await self._set_weights(ns, spec, canary_weight, routes, done=done)

    async def _set_weights(self, ns: str, spec: RolloutSpec, canary_weight: int,
                           routes: tuple[tuple[HeaderRoute, ...], tuple[MirrorRoute, ...]], *,
                           done: bool) -> None:
        """Every router at ``canary_weight``. ``done``: no canary any more (promoted, aborted
        and drained, or back to the stable revision): a canary Ingress is then deleted, as
        the canary objects only exist while a canary does."""
        headers, mirrors = routes
        if spec.canary_strategy.istio is not None:
            await self.istio.set_weights(ns, spec, canary_weight)
            await self.istio.set_managed_routes(ns, spec, header_routes=headers, mirror_routes=mirrors)
        target, routers = self._weighted(spec)
        for key, router in routers:
            if done and canary_weight == 0 and key == "nginx":
                await router.remove(ns, target)
            else:
                self.notes += await router.apply(ns, target, canary_weight=canary_weight,
                                                 header_routes=headers, mirror_routes=mirrors)

    async def remove_previous(self, ns: str, previous: RolloutSpec, current: RolloutSpec | None) -> None:
        """What ``previous``'s routers wrote and ``current`` (the spec now; None: not a routed
        canary any more) no longer writes is taken back: Istio VirtualServices it dropped get
        all traffic on the stable and no managed routes; a router beyond Istio that is gone or
        configured differently removes its objects and managed routes."""
        old = previous.canary_strategy
        new = current.canary if current is not None else None
        if old.istio is not None:
            keep = {r.name for r in new.istio.virtual_services} if new and new.istio else set()
            dropped = [r for r in old.istio.virtual_services if r.name not in keep]
            if dropped:
                only = replace(previous, canary=replace(old, istio=replace(old.istio,
                                                                           virtual_services=tuple(dropped))))
                await self.istio.set_weights(ns, only, 0)
                await self.istio.set_managed_routes(ns, only)
        target, routers = self._weighted(previous)
        kept = new.routers if new is not None else None
        for key, router in routers:
            same = kept is not None and getattr(kept, _FIELDS[key]) == getattr(old.routers, _FIELDS[key])
            if not same:
                self.notes_removed += await router.remove(ns, target)

    async def point(self, ns: str, service: str, pod_hash: str) -> None:
        """One Service at one revision (blue-green's active and preview Services)."""
        await self.services.point(ns, service, pod_hash)

    async def _point_role(self, ns: str, spec: RolloutSpec, *, role: str, pod_hash: str) -> None:
        c = spec.canary_strategy
        name = c.stable_service if role == "stable" else c.canary_service
        if name:
            await self.services.point(ns, name, pod_hash)
        if c.istio is not None:
            await self.istio.point_subset(ns, spec, role=role, pod_hash=pod_hash)

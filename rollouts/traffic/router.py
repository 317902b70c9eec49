"""The traffic routing of one Rollout: its Services and, for a canary, its traffic router.

``TrafficRouter`` is what the reconciler talks to. It orders the writes so that traffic is
never sent to a selector without pods, whatever the router: Service selectors
(``services``) and the mesh's weights (``istio``) are separate rooms.
"""

from __future__ import annotations

from rollouts.api.spec import RolloutSpec
from rollouts.kube.client import Kube
from rollouts.traffic.istio import IstioRouter
from rollouts.traffic.objects import ObjectCache
from rollouts.traffic.services import ServiceSelectors


class TrafficRouter:
    """One per reconcile: every object is read once and reused."""

    def __init__(self, kube: Kube) -> None:
        objects = ObjectCache(kube)
        self.services = ServiceSelectors(objects)
        self.istio = IstioRouter(objects)

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
        return errors

    async def current_weight(self, ns: str, spec: RolloutSpec) -> int | None:
        """The canary weight the router carries now (None: no router, or unreadable)."""
        if spec.canary is None or spec.canary.istio is None:
            return None
        return await self.istio.current_weight(ns, spec)

    async def apply(self, ns: str, spec: RolloutSpec, *, stable_hash: str, canary_hash: str,
                    canary_weight: int, previous_weight: int) -> None:
        """Stable Service/subset -> stable_hash, canary -> canary_hash, canary_weight % on the
        canary, in the order that never sends traffic to a selector without pods:

        1. the stable selector first (Argo's order): it only moves at promotion, to the canary
           pods the promotion waited for, while the old stable may already be scaled down
           (dynamicStableScale after setWeight 100);
        2. less canary traffic: the weights, then the canary selector (its old pods serve
           until no traffic is left on them; after an abort it goes back to the stable hash);
           more or equal: the canary selector, then the weights.
        canary_hash may equal stable_hash (promotion, abort, undo): both point at one revision.
        Without a router the weights are the pods' shares (the ReplicaSets' sizes), so only
        the Services move.
        """
        c = spec.canary_strategy
        await self._point_role(ns, spec, role="stable", pod_hash=stable_hash)
        if c.istio is None:
            await self._point_role(ns, spec, role="canary", pod_hash=canary_hash)
        elif canary_weight < previous_weight:
            await self.istio.set_weights(ns, spec, canary_weight)
            await self._point_role(ns, spec, role="canary", pod_hash=canary_hash)
        else:
            await self._point_role(ns, spec, role="canary", pod_hash=canary_hash)
            await self.istio.set_weights(ns, spec, canary_weight)

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

"""The routers beyond Istio behind one interface, for ``rollouts.traffic.router``.

Each router (NGINX, ALB, SMI, Gateway API) is asked the same four things; what it
cannot express (a mirror route on an Ingress) it ignores, and ``support`` tells which
step kinds at least one configured router expresses.
"""

from __future__ import annotations

from typing import Protocol

from rollouts.api.routing import HeaderRoute, MirrorRoute, RoutersConfig
from rollouts.traffic import alb, gateway, nginx, smi
from rollouts.traffic.objects import ObjectCache
from rollouts.traffic.owned import Target


class WeightRouter(Protocol):
    async def check(self, ns: str, target: Target, *,
                    header_routes: tuple[HeaderRoute, ...] = (),
                    mirror_routes: tuple[MirrorRoute, ...] = ()) -> list[str]:
        """Errors naming the object and field (nothing must be written while any)."""
        ...

    async def current_weight(self, ns: str, target: Target) -> int | None:
        """The canary weight the objects carry now (None: unknown, disagreeing, unreadable)."""
        ...

    async def apply(self, ns: str, target: Target, *, canary_weight: int,
                    header_routes: tuple[HeaderRoute, ...] = (),
                    mirror_routes: tuple[MirrorRoute, ...] = ()) -> list[str]:
        """Write the weight and exactly the active managed routes; notes (for Events) on
        objects edited by hand and put back. Raises KubeError when anything fails."""
        ...

    async def remove(self, ns: str, target: Target) -> list[str]:
        """All traffic to stable, managed routes and owned objects gone; what was written."""
        ...


def build(objects: ObjectCache, cfg: RoutersConfig, *,
          smi_version: str = smi.DEFAULT_VERSION) -> list[tuple[str, WeightRouter]]:
    """(trafficRouting key, router) for every configured router beyond Istio."""
    out: list[tuple[str, WeightRouter]] = []
    if cfg.nginx is not None:
        out.append(("nginx", nginx.NginxRouter(objects, cfg.nginx,
                                               max_traffic_weight=cfg.max_traffic_weight)))
    if cfg.alb is not None:
        out.append(("alb", alb.ALBRouter(objects, cfg.alb, managed_routes=cfg.managed_routes)))
    if cfg.smi is not None:
        out.append(("smi", smi.SMIRouter(objects, cfg.smi, api_version=smi_version)))
    if cfg.gateway_api is not None:
        out.append(("gatewayAPI", gateway.GatewayAPIRouter(
            objects, cfg.gateway_api, managed_routes=cfg.managed_routes,
            max_traffic_weight=cfg.max_traffic_weight)))
    return out


def support(cfg: RoutersConfig) -> tuple[bool, bool]:
    """(some router expresses setHeaderRoute, some router expresses setMirrorRoute)."""
    mods = [m for m, c in ((nginx, cfg.nginx), (alb, cfg.alb), (smi, cfg.smi),
                           (gateway, cfg.gateway_api)) if c is not None]
    return (any(m.SUPPORTS_HEADER_ROUTE for m in mods),
            any(m.SUPPORTS_MIRROR_ROUTE for m in mods))

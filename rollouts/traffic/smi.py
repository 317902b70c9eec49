"""SMI: a TrafficSplit (split.smi-spec.io) owned by the Rollout. Clients call the root
Service; the mesh sends each backend Service its weight's share of those calls.

Argo writes v1alpha1 by default (a controller flag picks v1alpha2 or v1alpha3); Linkerd's
SMI extension reads v1alpha1 and v1alpha2. All three have the same ``spec.service`` and
``spec.backends[{service, weight}]``; v1alpha1's weight is a quantity, written here as an
integer, which every version accepts. The version is the router's ``api_version``.
"""

from __future__ import annotations

from rollouts.api.routing import HeaderRoute, MirrorRoute, SMIConfig
from rollouts.kube.client import JSON, SERVICES, KubeError
from rollouts.traffic.objects import ObjectCache
from rollouts.traffic.owned import Target, create, delete, ownership_error, traffic_splits

VERSIONS = ("v1alpha1", "v1alpha2", "v1alpha3")
DEFAULT_VERSION = "v1alpha1"  # Argo's default

SUPPORTS_HEADER_ROUTE = False
SUPPORTS_MIRROR_ROUTE = False


def split_name(cfg: SMIConfig, target: Target) -> str:
    return cfg.traffic_split_name or target.rollout


def root_service(cfg: SMIConfig, target: Target) -> str:
    return cfg.root_service or target.stable_service


def plan_traffic_split(cfg: SMIConfig, target: Target, *, canary_weight: int,
                       api_version: str = DEFAULT_VERSION) -> JSON:
    """The TrafficSplit: canary first, then stable (Argo's order), weights summing to 100."""
    return {
        "apiVersion": f"split.smi-spec.io/{api_version}", "kind": "TrafficSplit",
        "metadata": {"name": split_name(cfg, target), "ownerReferences": [target.owner_reference()]},
        "spec": {"service": root_service(cfg, target),
                 "backends": [{"service": target.canary_service, "weight": canary_weight},
                              {"service": target.stable_service, "weight": 100 - canary_weight}]},
    }


def spec_patch(actual: JSON, desired: JSON) -> list[JSON]:
    """JSON patch putting the spec back to the desired one (guarded); empty when equal."""
    if actual.get("spec") == desired["spec"]:
        return []
    return [{"op": "test", "path": "/metadata/resourceVersion",
             "value": actual["metadata"]["resourceVersion"]},
            {"op": "add", "path": "/spec", "value": desired["spec"]}]


def _weight(w: object) -> int | None:
    if isinstance(w, bool):
        return None
    if isinstance(w, int):
        return w
    if isinstance(w, str) and w.isdigit():  # a v1alpha1 quantity written as a string
        return int(w)
    return None


def weight_of(split: JSON | None, target: Target) -> int | None:
    if split is None:
        return None
    backends = (split.get("spec") or {}).get("backends")
    for b in backends if isinstance(backends, list) else []:
        if isinstance(b, dict) and b.get("service") == target.canary_service:
            return _weight(b.get("weight"))
    return None


class SMIRouter:
    """The Rollout's TrafficSplit."""

    def __init__(self, objects: ObjectCache, cfg: SMIConfig, *,
                 api_version: str = DEFAULT_VERSION) -> None:
        if api_version not in VERSIONS:
            raise ValueError(f"TrafficSplit version {api_version} is not one of {VERSIONS}")
        self.objects = objects
        self.cfg = cfg
        self.version = api_version
        self.kind = traffic_splits(api_version)

    async def check(self, ns: str, target: Target, *,
                    header_routes: tuple[HeaderRoute, ...] = (),
                    mirror_routes: tuple[MirrorRoute, ...] = ()) -> list[str]:
        errors = []
        root = root_service(self.cfg, target)
        if await self.objects.get(SERVICES.path(ns, root)) is None:
            field = "trafficRouting.smi.rootService" if self.cfg.root_service else "stableService"
            errors.append(f"Service {root} ({field}, the TrafficSplit's root) not found")
        name = split_name(self.cfg, target)
        err = ownership_error(await self.objects.get(self.kind.path(ns, name)), target,
                              f"TrafficSplit {name} (trafficRouting.smi.trafficSplitName)")
        if err:
            errors.append(err)
        return errors

    async def current_weight(self, ns: str, target: Target) -> int | None:
        """The canary weight in the TrafficSplit (None: none yet, or unreadable)."""
        return weight_of(await self.objects.get(self.kind.path(ns, split_name(self.cfg, target))),
                         target)

    async def apply(self, ns: str, target: Target, *, canary_weight: int,
                    header_routes: tuple[HeaderRoute, ...] = (),
                    mirror_routes: tuple[MirrorRoute, ...] = ()) -> list[str]:
        """Create or update the TrafficSplit (header and mirror routes cannot be expressed:
        ignored). A spec that differs from the one this
        controller wrote for the weight it last wrote is put back; the note says so."""
        name = split_name(self.cfg, target)
        path = self.kind.path(ns, name)
        desired = plan_traffic_split(self.cfg, target, canary_weight=canary_weight,
                                     api_version=self.version)
        current = await self.objects.get(path)
        if current is None:
            current = await create(self.objects, self.kind.path(ns), path, desired)
        err = ownership_error(current, target, f"TrafficSplit {name}")
        if err:
            raise KubeError(409, err)
        # Edited by hand: the spec is none that this router writes for any weight.
        w = weight_of(current, target)
        edited = w is None or current.get("spec") != plan_traffic_split(
            self.cfg, target, canary_weight=w, api_version=self.version)["spec"]
        before = current["metadata"].get("resourceVersion")
        await self.objects.patch_guarded(path, lambda obj: spec_patch(obj, desired))
        after = (await self.objects.must(path))["metadata"].get("resourceVersion")
        if edited and after != before:
            return [f"TrafficSplit {name} was edited by hand; put back"]
        return []

    async def remove(self, ns: str, target: Target) -> list[str]:
        name = split_name(self.cfg, target)
        return [name] if await delete(self.objects, self.kind.path(ns, name), uid=target.uid) else []

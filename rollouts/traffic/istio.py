"""Istio traffic routing: VirtualService route weights, DestinationRule subset labels and the
stable/canary Service selectors, in the order that never sends traffic to a missing pod.

Pure planning functions (``plan_*``) compute errors and JSON patches from the objects;
``IstioRouter`` reads and writes them. Weights are written as JSON patches guarded by a
``test`` of the resourceVersion and with a stable field manager, so users can tell Argo CD
to ignore exactly these fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollouts.api.constants import FIELD_MANAGER, POD_TEMPLATE_HASH_LABEL
from rollouts.api.spec import RolloutSpec
from rollouts.kube.client import DESTINATION_RULES, JSON, SERVICES, VIRTUAL_SERVICES, Kube, KubeError

HASH = POD_TEMPLATE_HASH_LABEL


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def host_matches(host: str, service: str, namespace: str) -> bool:
    return host in (service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
                    f"{service}.{namespace}.svc.cluster.local")


@dataclass(frozen=True)
class RoutePlan:
    http_index: int
    canary_index: int
    stable_index: int
    canary_weight: int


def plan_routes(vs: JSON, spec: RolloutSpec, namespace: str,
                route_names: tuple[str, ...]) -> tuple[list[RoutePlan], list[str]]:
    """Where the canary and stable destinations sit in a VirtualService, or why not."""
    name = vs.get("metadata", {}).get("name")
    http = (vs.get("spec") or {}).get("http") or []
    if not isinstance(http, list) or not http:
        return [], [f"VirtualService {name} has no http routes"]
    if route_names:
        picked: list[tuple[int, Any]] = []
        errors = []
        for rn in route_names:
            idx = next((i for i, r in enumerate(http) if isinstance(r, dict) and r.get("name") == rn), None)
            if idx is None:
                errors.append(f"route {rn!r} not found in VirtualService {name}")
            else:
                picked.append((idx, http[idx]))
        if errors:
            return [], errors
    elif len(http) == 1:
        picked = [(0, http[0])]
    else:
        return [], [f"VirtualService {name} has {len(http)} http routes: name the ones to "
                    "manage in trafficRouting.istio.virtualService.routes"]
    dr = spec.canary.istio.destination_rule
    plans, errors = [], []
    for idx, route in picked:
        dests = route.get("route") if isinstance(route, dict) else None
        if not isinstance(dests, list):
            errors.append(f"VirtualService {name} http[{idx}] has no route destinations")
            continue
        canary_i = stable_i = None
        for j, dst in enumerate(dests):
            d = (dst or {}).get("destination") or {}
            host, subset = str(d.get("host", "")), d.get("subset")
            if dr is not None:
                if subset == dr.canary_subset:
                    canary_i = j
                elif subset == dr.stable_subset:
                    stable_i = j
            else:
                if spec.canary.canary_service and host_matches(host, spec.canary.canary_service, namespace):
                    canary_i = j
                elif spec.canary.stable_service and host_matches(host, spec.canary.stable_service,
                                                                 namespace):
                    stable_i = j
        what = (f"subsets {dr.stable_subset!r} and {dr.canary_subset!r}" if dr else
                f"hosts {spec.canary.stable_service!r} and {spec.canary.canary_service!r}")
        if canary_i is None or stable_i is None or len(dests) != 2:
            errors.append(f"VirtualService {name} http[{idx}] must route to exactly the {what}")
            continue
        w = dests[canary_i].get("weight")
        plans.append(RoutePlan(idx, canary_i, stable_i, int(w) if isinstance(w, int) else 0))
    return plans, errors


def weight_patch(vs: JSON, plans: list[RoutePlan], canary_weight: int) -> list[JSON]:
    """JSON patch setting the weights, empty when they are already right."""
    ops: list[JSON] = []
    http = vs["spec"]["http"]
    for p in plans:
        dests = http[p.http_index]["route"]
        for j, w in ((p.canary_index, canary_weight), (p.stable_index, 100 - canary_weight)):
            if dests[j].get("weight") != w:
                ops.append({"op": "add", "path": f"/spec/http/{p.http_index}/route/{j}/weight",
                            "value": w})
    if ops:
        ops.insert(0, {"op": "test", "path": "/metadata/resourceVersion",
                       "value": vs["metadata"]["resourceVersion"]})
    return ops


def subset_patch(dr: JSON, canary_subset: str, stable_subset: str, canary_hash: str,
                 stable_hash: str) -> tuple[list[JSON], list[str]]:
    name = dr.get("metadata", {}).get("name")
    subsets = (dr.get("spec") or {}).get("subsets") or []
    ops: list[JSON] = []
    errors = []
    for subset, h in ((canary_subset, canary_hash), (stable_subset, stable_hash)):
        idx = next((i for i, s in enumerate(subsets)
                    if isinstance(s, dict) and s.get("name") == subset), None)
        if idx is None:
            errors.append(f"subset {subset!r} not found in DestinationRule {name}")
            continue
        labels = subsets[idx].get("labels")
        if not isinstance(labels, dict):
            ops.append({"op": "add", "path": f"/spec/subsets/{idx}/labels", "value": {HASH: h}})
        elif labels.get(HASH) != h:
            ops.append({"op": "add", "path": f"/spec/subsets/{idx}/labels/{_escape(HASH)}", "value": h})
    if ops and not errors:
        ops.insert(0, {"op": "test", "path": "/metadata/resourceVersion",
                       "value": dr["metadata"]["resourceVersion"]})
    return ([] if errors else ops), errors


def service_error(svc: JSON | None, name: str, template_labels: dict[str, str]) -> str | None:
    if svc is None:
        return f"Service {name} not found"
    sel = (svc.get("spec") or {}).get("selector") or {}
    wrong = {k: v for k, v in sel.items() if k != HASH and template_labels.get(k) != v}
    if wrong:
        return (f"Service {name} selects {', '.join(f'{k}={v}' for k, v in sorted(wrong.items()))}, "
                "which the Rollout's pod template labels do not match")
    return None


class IstioRouter:
    """One per reconcile: objects read once are reused (3 GETs instead of 7), and a write
    guarded by a stale resourceVersion re-reads and retries."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._seen: dict[str, JSON | None] = {}

    async def _get(self, path: str, fresh: bool = False) -> JSON | None:
        if fresh or path not in self._seen:
            self._seen[path] = await self.kube.get_or_none(path)
        return self._seen[path]

    async def _must(self, path: str, fresh: bool = False) -> JSON:
        obj = await self._get(path, fresh)
        if obj is None:
            raise KubeError(404, f"{path} not found")
        return obj

    async def check(self, ns: str, spec: RolloutSpec, template_labels: dict[str, str]) -> list[str]:
        """Everything the spec names must exist and fit; the errors say what does not."""
        errors: list[str] = []
        c = spec.canary
        for svc_name in (c.stable_service, c.canary_service):
            if svc_name:
                svc = await self._get(SERVICES.path(ns, svc_name))
                err = service_error(svc, svc_name, template_labels)
                if err:
                    errors.append(err)
        for ref in c.istio.virtual_services:
            vs = await self._get(VIRTUAL_SERVICES.path(ns, ref.name))
            if vs is None:
                errors.append(f"VirtualService {ref.name} not found")
                continue
            errors += plan_routes(vs, spec, ns, ref.routes)[1]
        dr = c.istio.destination_rule
        if dr is not None:
            obj = await self._get(DESTINATION_RULES.path(ns, dr.name))
            if obj is None:
                errors.append(f"DestinationRule {dr.name} not found")
            else:
                errors += subset_patch(obj, dr.canary_subset, dr.stable_subset, "x", "x")[1]
        return errors

    async def current_weight(self, ns: str, spec: RolloutSpec) -> int | None:
        """The canary weight in the VirtualServices, None if they disagree or are unreadable."""
        seen: set[int] = set()
        for ref in spec.canary.istio.virtual_services:
            vs = await self._get(VIRTUAL_SERVICES.path(ns, ref.name))
            if vs is None:
                return None
            plans, errors = plan_routes(vs, spec, ns, ref.routes)
            if errors:
                return None
            seen.update(p.canary_weight for p in plans)
        return seen.pop() if len(seen) == 1 else None

    async def apply(self, ns: str, spec: RolloutSpec, stable_hash: str, canary_hash: str,
                    canary_weight: int, previous_weight: int) -> None:
        # Less canary traffic: move the weight first, while the canary pods still serve.
        # More (or equal): point the selectors at the right pods first.
        if canary_weight < previous_weight:
            await self._set_weights(ns, spec, canary_weight)
            await self._point(ns, spec, stable_hash, canary_hash)
        else:
            await self._point(ns, spec, stable_hash, canary_hash)
            await self._set_weights(ns, spec, canary_weight)

    async def _point(self, ns: str, spec: RolloutSpec, stable_hash: str, canary_hash: str) -> None:
        c = spec.canary
        for svc_name, h in ((c.stable_service, stable_hash), (c.canary_service, canary_hash)):
            if not svc_name:
                continue
            path = SERVICES.path(ns, svc_name)
            svc = await self._must(path)
            if ((svc.get("spec") or {}).get("selector") or {}).get(HASH) != h:
                self._seen[path] = await self.kube.merge_patch(
                    path, {"spec": {"selector": {HASH: h}}}, fieldManager=FIELD_MANAGER)
        dr = c.istio.destination_rule
        if dr is not None:
            for attempt in range(3):
                obj = await self._must(DESTINATION_RULES.path(ns, dr.name), fresh=attempt > 0)
                ops, errors = subset_patch(obj, dr.canary_subset, dr.stable_subset, canary_hash,
                                           stable_hash)
                if errors:
                    raise KubeError(422, "; ".join(errors))
                if not ops:
                    break
                try:
                    self._seen[DESTINATION_RULES.path(ns, dr.name)] = await self.kube.json_patch(
                        DESTINATION_RULES.path(ns, dr.name), ops, fieldManager=FIELD_MANAGER)
                    break
                except KubeError as e:
                    if e.status not in (409, 422):  # a failed `test` op: re-read and retry
                        raise

    async def _set_weights(self, ns: str, spec: RolloutSpec, canary_weight: int) -> None:
        for ref in spec.canary.istio.virtual_services:
            for attempt in range(3):
                vs = await self._must(VIRTUAL_SERVICES.path(ns, ref.name), fresh=attempt > 0)
                plans, errors = plan_routes(vs, spec, ns, ref.routes)
                if errors:
                    raise KubeError(422, "; ".join(errors))
                ops = weight_patch(vs, plans, canary_weight)
                if not ops:
                    break
                try:
                    self._seen[VIRTUAL_SERVICES.path(ns, ref.name)] = await self.kube.json_patch(
                        VIRTUAL_SERVICES.path(ns, ref.name), ops, fieldManager=FIELD_MANAGER)
                    break
                except KubeError as e:
                    if e.status not in (409, 422) or attempt == 2:
                        raise

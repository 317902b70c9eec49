"""Istio traffic routing: VirtualService route weights, DestinationRule subset labels and the
stable/canary Service selectors, in the order that never sends traffic to a missing pod.

Pure planning functions (``plan_*``) compute errors and JSON patches from the objects;
``IstioRouter`` reads and writes them. Weights are written as JSON patches guarded by a
``test`` of the resourceVersion and with a stable field manager, so users can tell Argo CD
to ignore exactly these fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from rollouts.api.constants import FIELD_MANAGER, POD_TEMPLATE_HASH_LABEL
from rollouts.api.spec import RolloutSpec, VirtualServiceRef
from rollouts.kube.client import DESTINATION_RULES, JSON, SERVICES, VIRTUAL_SERVICES, Kube, KubeError

HASH = POD_TEMPLATE_HASH_LABEL


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def host_matches(host: str, service: str, namespace: str) -> bool:
    return host in (service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
                    f"{service}.{namespace}.svc.cluster.local")


ROUTE_KINDS = ("http", "tls", "tcp")


@dataclass(frozen=True)
class RoutePlan:
    kind: str  # the VirtualService section: "http", "tls" or "tcp"
    index: int
    canary_index: int
    stable_index: int
    canary_weight: int


def _match_ports_and_hosts(route: Any) -> tuple[set[int], set[str]]:
    ports: set[int] = set()
    hosts: set[str] = set()
    for m in (route.get("match") if isinstance(route, dict) else None) or []:
        if isinstance(m, dict):
            p = m.get("port")
            ports.add(p if isinstance(p, int) else 0)
            hosts.update(h for h in m.get("sniHosts") or [] if isinstance(h, str))
    return ports or {0}, hosts


def _matches(route: Any, port: int, sni_hosts: tuple[str, ...] | None) -> bool:
    """Argo's rule: the route's matches name exactly one port (none counts as 0), that port,
    and (tls) exactly the SNI hosts asked for."""
    ports, hosts = _match_ports_and_hosts(route)
    return ports == {port} and (sni_hosts is None or hosts == set(sni_hosts))


def _pick(vs_name: str, kind: str, routes: list[Any], ref: VirtualServiceRef) -> tuple[list[int], list[str]]:
    """Indexes of the routes of one section to manage. Named (http) or matched (tls, tcp)
    routes must exist; without any, the section must hold at most one route."""
    if kind == "http" and ref.routes:
        picked, errors = [], []
        for rn in ref.routes:
            idx = next((i for i, r in enumerate(routes) if isinstance(r, dict) and r.get("name") == rn), None)
            if idx is None:
                errors.append(f"route {rn!r} not found in VirtualService {vs_name}")
            else:
                picked.append(idx)
        return picked, errors
    wanted: list[tuple[str, int, tuple[str, ...] | None]] = (
        [(f"port {t.port} and sniHosts {list(t.sni_hosts)}", t.port, t.sni_hosts) for t in ref.tls_routes]
        if kind == "tls" else
        [(f"port {t.port}", t.port, None) for t in ref.tcp_routes] if kind == "tcp" else [])
    if wanted:
        picked, errors = [], []
        for what, port, hosts in wanted:
            found = [i for i, r in enumerate(routes) if _matches(r, port, hosts)]
            if not found:
                errors.append(f"no {kind} route with {what} in VirtualService {vs_name}")
            picked += [i for i in found if i not in picked]
        return picked, errors
    if len(routes) > 1:
        field = {"http": "routes", "tls": "tlsRoutes", "tcp": "tcpRoutes"}[kind]
        return [], [f"VirtualService {vs_name} has {len(routes)} {kind} routes: name the ones to "
                    f"manage in trafficRouting.istio.virtualService.{field}"]
    return list(range(len(routes))), []


def plan_routes(vs: JSON, spec: RolloutSpec, namespace: str,
                ref: VirtualServiceRef) -> tuple[list[RoutePlan], list[str]]:
    """Where the canary and stable destinations sit in a VirtualService's http, tls and tcp
    routes, or why not."""
    name = vs.get("metadata", {}).get("name")
    vs_spec = vs.get("spec") or {}
    sections = {k: vs_spec.get(k) for k in ROUTE_KINDS}
    errors: list[str] = [f"VirtualService {name} spec.{k} must be a list"
                         for k, v in sections.items() if v is not None and not isinstance(v, list)]
    picked: list[tuple[str, int, Any]] = []
    for kind, routes in sections.items():
        if not isinstance(routes, list):
            routes = []
        idxs, errs = _pick(str(name), kind, routes, ref)
        errors += errs
        picked += [(kind, i, routes[i]) for i in idxs]
    if errors:
        return [], errors
    if not picked:
        return [], [f"VirtualService {name} has no http, tls or tcp routes"]
    dr = spec.canary.istio.destination_rule
    plans = []
    for kind, idx, route in picked:
        dests = route.get("route") if isinstance(route, dict) else None
        if not isinstance(dests, list):
            errors.append(f"VirtualService {name} {kind}[{idx}] has no route destinations")
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
            errors.append(f"VirtualService {name} {kind}[{idx}] must route to exactly the {what}")
            continue
        w = dests[canary_i].get("weight")
        plans.append(RoutePlan(kind, idx, canary_i, stable_i, int(w) if isinstance(w, int) else 0))
    return plans, errors


def weight_patch(vs: JSON, plans: list[RoutePlan], canary_weight: int) -> list[JSON]:
    """JSON patch setting the weights, empty when they are already right."""
    ops: list[JSON] = []
    for p in plans:
        dests = vs["spec"][p.kind][p.index]["route"]
        for j, w in ((p.canary_index, canary_weight), (p.stable_index, 100 - canary_weight)):
            if dests[j].get("weight") != w:
                ops.append({"op": "add", "path": f"/spec/{p.kind}/{p.index}/route/{j}/weight",
                            "value": w})
    if ops:
        ops.insert(0, {"op": "test", "path": "/metadata/resourceVersion",
                       "value": vs["metadata"]["resourceVersion"]})
    return ops


def subset_patch(dr: JSON, hashes: dict[str, str]) -> tuple[list[JSON], list[str]]:
    """JSON patch pointing each named subset (subset name -> pod template hash) at its hash."""
    name = dr.get("metadata", {}).get("name")
    subsets = (dr.get("spec") or {}).get("subsets") or []
    ops: list[JSON] = []
    errors = []
    for subset, h in hashes.items():
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


ATTEMPTS = 3  # JSON patches guarded by a resourceVersion test: re-read and retry this often


class IstioRouter:
    """One per reconcile: objects read once are reused (3 GETs instead of 7), and a write
    guarded by a stale resourceVersion re-reads and retries; a write that still fails raises."""

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
            errors += plan_routes(vs, spec, ns, ref)[1]
        dr = c.istio.destination_rule
        if dr is not None:
            obj = await self._get(DESTINATION_RULES.path(ns, dr.name))
            if obj is None:
                errors.append(f"DestinationRule {dr.name} not found")
            else:
                errors += subset_patch(obj, {dr.canary_subset: "x", dr.stable_subset: "x"})[1]
        return errors

    async def current_weight(self, ns: str, spec: RolloutSpec) -> int | None:
        """The canary weight in the VirtualServices, None if they disagree or are unreadable."""
        seen: set[int] = set()
        for ref in spec.canary.istio.virtual_services:
            vs = await self._get(VIRTUAL_SERVICES.path(ns, ref.name))
            if vs is None:
                return None
            plans, errors = plan_routes(vs, spec, ns, ref)
            if errors:
                return None
            seen.update(p.canary_weight for p in plans)
        return seen.pop() if len(seen) == 1 else None

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
        """
        await self._point(ns, spec, role="stable", pod_hash=stable_hash)
        if canary_weight < previous_weight:
            await self._set_weights(ns, spec, canary_weight)
            await self._point(ns, spec, role="canary", pod_hash=canary_hash)
        else:
            await self._point(ns, spec, role="canary", pod_hash=canary_hash)
            await self._set_weights(ns, spec, canary_weight)

    async def _point(self, ns: str, spec: RolloutSpec, *, role: str, pod_hash: str) -> None:
        """The Service and the DestinationRule subset of one role at one revision."""
        c = spec.canary
        svc_name = c.stable_service if role == "stable" else c.canary_service
        if svc_name:
            path = SERVICES.path(ns, svc_name)
            svc = await self._must(path)
            if ((svc.get("spec") or {}).get("selector") or {}).get(HASH) != pod_hash:
                self._seen[path] = await self.kube.merge_patch(
                    path, {"spec": {"selector": {HASH: pod_hash}}}, fieldManager=FIELD_MANAGER)
        dr = c.istio.destination_rule
        if dr is not None:
            subset = dr.stable_subset if role == "stable" else dr.canary_subset
            await self._patch_guarded(DESTINATION_RULES.path(ns, dr.name),
                                      lambda obj: _or_raise(subset_patch(obj, {subset: pod_hash})))

    async def _set_weights(self, ns: str, spec: RolloutSpec, canary_weight: int) -> None:
        for ref in spec.canary.istio.virtual_services:
            def plan(vs: JSON, ref: VirtualServiceRef = ref) -> list[JSON]:
                return weight_patch(vs, _or_raise(plan_routes(vs, spec, ns, ref)), canary_weight)

            await self._patch_guarded(VIRTUAL_SERVICES.path(ns, ref.name), plan)

    async def _patch_guarded(self, path: str, plan: Callable[[JSON], list[JSON]]) -> None:
        """Apply the JSON patch ``plan`` computes from the object (nothing when it is empty).
        Its resourceVersion test fails when someone wrote meanwhile (409/422): re-read and
        retry, and raise when the last attempt fails too, so the caller never reports a
        change that was not made."""
        for attempt in range(ATTEMPTS):
            ops = plan(await self._must(path, fresh=attempt > 0))
            if not ops:
                return
            try:
                self._seen[path] = await self.kube.json_patch(path, ops, fieldManager=FIELD_MANAGER)
                return
            except KubeError as e:
                if e.status not in (409, 422) or attempt == ATTEMPTS - 1:
                    raise


T = TypeVar("T")


def _or_raise(result: tuple[T, list[str]]) -> T:
    value, errors = result
    if errors:
        raise KubeError(422, "; ".join(errors))
    return value

"""Istio traffic routing: VirtualService route weights and DestinationRule subset labels.

Pure planning functions (``plan_*``) compute errors and JSON patches from the objects;
``IstioRouter`` reads and writes them (``rollouts.traffic.router`` orders the writes).
Weights are written as JSON patches guarded by a ``test`` of the resourceVersion and with
a stable field manager, so users can tell Argo CD to ignore exactly these fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollouts.api.constants import POD_TEMPLATE_HASH_LABEL
from rollouts.api.routing import HeaderRoute, MirrorRoute, StringMatch
from rollouts.api.spec import IstioRouting, RolloutSpec, VirtualServiceRef
from rollouts.kube.client import DESTINATION_RULES, JSON, VIRTUAL_SERVICES, KubeError
from rollouts.traffic.objects import ObjectCache, or_raise

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


def _pick(vs_name: str, kind: str, routes: list[Any], ref: VirtualServiceRef,
          managed: tuple[str, ...] = ()) -> tuple[list[int], list[str]]:
    """Indexes of the routes of one section to manage. Named (http) or matched (tls, tcp)
    routes must exist; without any, the section must hold at most one route besides the
    header and mirror routes the controller manages (``managed``)."""
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
    own = [i for i, r in enumerate(routes)
           if not (kind == "http" and isinstance(r, dict) and r.get("name") in managed)]
    if len(own) > 1:
        field = {"http": "routes", "tls": "tlsRoutes", "tcp": "tcpRoutes"}[kind]
        return [], [f"VirtualService {vs_name} has {len(own)} {kind} routes: name the ones to "
                    f"manage in trafficRouting.istio.virtualService.{field}"]
    return own, []


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
        idxs, errs = _pick(str(name), kind, routes, ref, spec.canary_strategy.routers.managed_routes)
        errors += errs
        picked += [(kind, i, routes[i]) for i in idxs]
    if errors:
        return [], errors
    if not picked:
        return [], [f"VirtualService {name} has no http, tls or tcp routes"]
    dr = istio_of(spec).destination_rule
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
                c = spec.canary_strategy
                if c.canary_service and host_matches(host, c.canary_service, namespace):
                    canary_i = j
                elif c.stable_service and host_matches(host, c.stable_service, namespace):
                    stable_i = j
        what = (f"subsets {dr.stable_subset!r} and {dr.canary_subset!r}" if dr else
                f"hosts {spec.canary_strategy.stable_service!r} and {spec.canary_strategy.canary_service!r}")
        if canary_i is None or stable_i is None or len(dests) != 2:
            errors.append(f"VirtualService {name} {kind}[{idx}] must route to exactly the {what}")
            continue
        w = dests[canary_i].get("weight")
        plans.append(RoutePlan(kind, idx, canary_i, stable_i, int(w) if isinstance(w, int) else 0))
    return plans, errors


def _string_match(m: StringMatch) -> JSON:
    if m.exact is not None:
        return {"exact": m.exact}
    if m.prefix is not None:
        return {"prefix": m.prefix}
    return {"regex": m.regex or ""}


def managed_http(vs: JSON, spec: RolloutSpec, namespace: str, ref: VirtualServiceRef, *,
                 header_routes: tuple[HeaderRoute, ...], mirror_routes: tuple[MirrorRoute, ...],
                 ) -> tuple[list[JSON] | None, list[str]]:
    """The VirtualService's http routes with exactly the active header and mirror routes
    first, in ``managedRoutes`` order (Argo's layout): a header route sends its matches to
    the canary destination; a mirror route keeps the primary route's destinations and
    weights and mirrors ``percentage`` % of its matches to the canary. None: nothing to
    change."""
    managed = spec.canary_strategy.routers.managed_routes
    http = (vs.get("spec") or {}).get("http")
    if not isinstance(http, list):
        http = []
    plans, errors = plan_routes(vs, spec, namespace, ref)
    primary = next((p for p in plans if p.kind == "http"), None)
    if errors or (primary is None and (header_routes or mirror_routes)):
        return None, errors or [f"VirtualService {ref.name} has no http route for header or "
                                "mirror routes"]
    wanted: list[JSON] = []
    if primary is not None:
        dests = http[primary.index]["route"]
        canary_dest = dests[primary.canary_index]["destination"]
        by_name_h = {r.name: r for r in header_routes}
        by_name_m = {r.name: r for r in mirror_routes}
        for name in managed:
            if name in by_name_h:
                hr = by_name_h[name]
                wanted.append({"name": name, "match": [{"headers": {
                    m.header_name: _string_match(m.header_value) for m in hr.match}}],
                    "route": [{"destination": canary_dest, "weight": 100}]})
            elif name in by_name_m:
                mr = by_name_m[name]
                matches = []
                for m in mr.match:
                    one: JSON = {}
                    if m.method is not None:
                        one["method"] = _string_match(m.method)
                    if m.path is not None:
                        one["uri"] = _string_match(m.path)
                    if m.headers:
                        one["headers"] = {h: _string_match(v) for h, v in m.headers}
                    matches.append(one)
                wanted.append({"name": name, "match": matches, "route": dests,
                               "mirror": canary_dest,
                               "mirrorPercentage": {"value": float(mr.percentage)}})
    rest = [r for r in http if not (isinstance(r, dict) and r.get("name") in managed)]
    new = wanted + rest
    return (None if new == http else new), []


def managed_patch(vs: JSON, new_http: list[JSON]) -> list[JSON]:
    rv = (vs.get("metadata") or {}).get("resourceVersion")
    return [{"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "replace" if "http" in (vs.get("spec") or {}) else "add",
             "path": "/spec/http", "value": new_http}]


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


class IstioRouter:
    """VirtualService weights and DestinationRule subsets; the Services are not its business."""

    def __init__(self, objects: ObjectCache) -> None:
        self.objects = objects

    async def check(self, ns: str, spec: RolloutSpec) -> list[str]:
        """Every VirtualService and DestinationRule the spec names must exist and fit."""
        errors: list[str] = []
        istio = istio_of(spec)
        for ref in istio.virtual_services:
            vs = await self.objects.get(VIRTUAL_SERVICES.path(ns, ref.name))
            if vs is None:
                errors.append(f"VirtualService {ref.name} not found")
                continue
            errors += plan_routes(vs, spec, ns, ref)[1]
        dr = istio.destination_rule
        if dr is not None:
            obj = await self.objects.get(DESTINATION_RULES.path(ns, dr.name))
            if obj is None:
                errors.append(f"DestinationRule {dr.name} not found")
            else:
                errors += subset_patch(obj, {dr.canary_subset: "x", dr.stable_subset: "x"})[1]
        return errors

    async def current_weight(self, ns: str, spec: RolloutSpec) -> int | None:
        """The canary weight in the VirtualServices, None if they disagree or are unreadable."""
        seen: set[int] = set()
        for ref in istio_of(spec).virtual_services:
            vs = await self.objects.get(VIRTUAL_SERVICES.path(ns, ref.name))
            if vs is None:
                return None
            plans, errors = plan_routes(vs, spec, ns, ref)
            if errors:
                return None
            seen.update(p.canary_weight for p in plans)
        return seen.pop() if len(seen) == 1 else None

    async def point_subset(self, ns: str, spec: RolloutSpec, *, role: str, pod_hash: str) -> None:
        """The DestinationRule subset of one role (stable, canary) at one revision."""
        dr = istio_of(spec).destination_rule
        if dr is not None:
            subset = dr.stable_subset if role == "stable" else dr.canary_subset
            await self.objects.patch_guarded(
                DESTINATION_RULES.path(ns, dr.name),
                lambda obj: or_raise(subset_patch(obj, {subset: pod_hash})))

    async def set_managed_routes(self, ns: str, spec: RolloutSpec, *,
                                 header_routes: tuple[HeaderRoute, ...] = (),
                                 mirror_routes: tuple[MirrorRoute, ...] = ()) -> None:
        """Exactly the active header and mirror routes in every VirtualService (none: all
        the managed routes removed)."""
        if not spec.canary_strategy.routers.managed_routes:
            return
        for ref in istio_of(spec).virtual_services:
            def plan(vs: JSON, ref: VirtualServiceRef = ref) -> list[JSON]:
                new, errors = managed_http(vs, spec, ns, ref, header_routes=header_routes,
                                           mirror_routes=mirror_routes)
                if errors:
                    raise KubeError(422, "; ".join(errors))
                return [] if new is None else managed_patch(vs, new)

            await self.objects.patch_guarded(VIRTUAL_SERVICES.path(ns, ref.name), plan)

    async def set_weights(self, ns: str, spec: RolloutSpec, canary_weight: int) -> None:
        for ref in istio_of(spec).virtual_services:
            def plan(vs: JSON, ref: VirtualServiceRef = ref) -> list[JSON]:
                return weight_patch(vs, or_raise(plan_routes(vs, spec, ns, ref)), canary_weight)

            await self.objects.patch_guarded(VIRTUAL_SERVICES.path(ns, ref.name), plan)


def istio_of(spec: RolloutSpec) -> IstioRouting:
    istio = spec.canary_strategy.istio
    if istio is None:
        raise ValueError("the canary has no Istio traffic routing")
    return istio

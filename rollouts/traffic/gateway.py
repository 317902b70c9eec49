"""Gateway API: the weights of the stable and canary Services' backendRefs in HTTPRoutes,
GRPCRoutes and TCPRoutes (the way Linkerd, Istio, Envoy Gateway, Cilium and others route),
and the steps' header and mirror routes as extra HTTPRoute/GRPCRoute rules.

The semantics follow Argo's gateway-api plugin: every rule of a route with backendRefs to
both the stable and the canary Service carries the weights (a rule to the stable Service
alone is left as written; one to the canary alone is an error); a header
route is one rule per such rule, named after the route (``<name>``, then ``<name>-1``...),
its matches the source rule's with the header matches added, its only backend the canary.
Here managed rules are placed before the others, in ``managedRoutes`` order, and a mirror
route (HTTPRoute only) is one rule with the step's matches, the first source rule's
backends and weights, and a RequestMirror filter to the canary with the step's percentage.

Rules are written as one JSON patch of ``/spec/rules`` guarded by the resourceVersion.
Every field the API server would default is written explicitly, so a rewritten rule
compares equal to what is read back.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from rollouts.api.routing import GatewayAPIConfig, HeaderRoute, MirrorRoute, StringMatch
from rollouts.kube.client import JSON, KubeError, Resource
from rollouts.traffic.objects import ObjectCache
from rollouts.traffic.owned import GRPC_ROUTES, HTTP_ROUTES, TCP_ROUTES, Target

SUPPORTS_HEADER_ROUTE = True  # HTTPRoute and GRPCRoute (useHeaderRoutes)
SUPPORTS_MIRROR_ROUTE = True  # HTTPRoute only

KINDS: dict[str, tuple[str, Resource]] = {
    "http": ("HTTPRoute", HTTP_ROUTES), "grpc": ("GRPCRoute", GRPC_ROUTES),
    "tcp": ("TCPRoute", TCP_ROUTES)}
FIELDS = {"http": "httpRoute", "grpc": "grpcRoute", "tcp": "tcpRoute"}


@dataclass(frozen=True)
class RoutePlan:
    ops: list[JSON]  # JSON patch of /spec/rules, guarded; empty: nothing to change
    put_back: tuple[str, ...]  # managed rules that differed from the step's (hand edits)


def _ref_name(ref: Any) -> str | None:
    return ref.get("name") if isinstance(ref, dict) and isinstance(ref.get("name"), str) else None


def is_managed(rule: Any, managed: tuple[str, ...]) -> bool:
    """A rule this controller writes: named after a managed route (``<name>`` or
    ``<name>-<n>``)."""
    name = rule.get("name") if isinstance(rule, dict) else None
    if not isinstance(name, str):
        return False
    return any(name == m or re.fullmatch(re.escape(m) + r"-\d+", name) for m in managed)


def _base(name: str, managed: tuple[str, ...]) -> int:
    for i, m in enumerate(managed):
        if name == m or re.fullmatch(re.escape(m) + r"-\d+", name):
            return i
    return len(managed)


def _header(name: str, v: StringMatch) -> JSON:
    if v.exact is not None:
        return {"name": name, "type": "Exact", "value": v.exact}
    if v.prefix is not None:
        return {"name": name, "type": "RegularExpression", "value": "^" + re.escape(v.prefix) + ".*"}
    return {"name": name, "type": "RegularExpression", "value": str(v.regex)}


def _path(v: StringMatch) -> JSON:
    if v.exact is not None:
        return {"type": "Exact", "value": v.exact}
    if v.prefix is not None:
        return {"type": "PathPrefix", "value": v.prefix}
    return {"type": "RegularExpression", "value": str(v.regex)}


def _backend(name: str, port: Any, weight: int | None = None) -> JSON:
    ref: JSON = {"group": "", "kind": "Service", "name": name}
    if port is not None:
        ref["port"] = port
    if weight is not None:
        ref["weight"] = weight
    return ref


def mirror_matches(m: MirrorRoute) -> tuple[list[JSON], list[str]]:
    """The HTTPRoute matches of a mirror route (Argo's method, path and header matches)."""
    out: list[JSON] = []
    for rm in m.match:
        match: JSON = {"path": _path(rm.path) if rm.path else {"type": "PathPrefix", "value": "/"}}
        if rm.method is not None:
            if rm.method.exact is None:
                return [], [f"setMirrorRoute {m.name}: an HTTPRoute matches a method exactly only"]
            match["method"] = rm.method.exact
        if rm.headers:
            match["headers"] = [_header(h, v) for h, v in rm.headers]
        out.append(match)
    return out, []


def plan_route(route: JSON, kind: str, target: Target, *, canary_weight: int, total: int = 100,
               header_routes: tuple[HeaderRoute, ...] = (),
               mirror_routes: tuple[MirrorRoute, ...] = (),
               managed_routes: tuple[str, ...] = (),
               use_header_routes: bool = True) -> tuple[RoutePlan, list[str]]:
    """The rules one route must have: weights on the source rules, the active managed
    rules first, inactive managed rules gone."""
    kind_name = KINDS[kind][0]
    name = (route.get("metadata") or {}).get("name")
    rules = (route.get("spec") or {}).get("rules")
    if not isinstance(rules, list):
        return RoutePlan([], ()), [f"{kind_name} {name} has no spec.rules"]
    errors: list[str] = []
    sources: list[tuple[int, JSON]] = []
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict) or is_managed(rule, managed_routes):
            continue
        names = {_ref_name(r) for r in rule.get("backendRefs") or []}
        has_s, has_c = target.stable_service in names, target.canary_service in names
        if has_c and not has_s:
            # its canary weight would be its only weight: all of it, or nothing at 0
            errors.append(f"{kind_name} {name} spec.rules[{i}] references the canary Service "
                          f"{target.canary_service} without the stable Service {target.stable_service}")
        elif has_s and has_c:
            sources.append((i, rule))
        # a rule to the stable Service alone stays as written: it sends everything to stable
    if not sources and not errors:
        errors.append(f"{kind_name} {name} has no rule with backendRefs to the stable Service "
                      f"{target.stable_service} and the canary Service {target.canary_service} "
                      f"(trafficRouting.gatewayAPI.{FIELDS[kind]})")
    if errors:
        return RoutePlan([], ()), errors

    def weighted(rule: JSON) -> JSON:
        r = copy.deepcopy(rule)
        for ref in r.get("backendRefs") or []:
            if _ref_name(ref) == target.canary_service:
                ref["weight"] = canary_weight
            elif _ref_name(ref) == target.stable_service:
                ref["weight"] = total - canary_weight
        return r

    managed_rules: list[JSON] = []
    weightless: set[str] = set()  # mirror rules: their weights follow the steps, not a hand edit
    if kind in ("http", "grpc") and use_header_routes:
        for hr in (r for r in header_routes if r.match):
            headers = [_header(m.header_name, m.header_value) for m in hr.match]
            for k, (_, src) in enumerate(sources):
                canary_ref = next(r for r in src.get("backendRefs") or []
                                  if _ref_name(r) == target.canary_service)
                matches = []
                for m in src.get("matches") or [{}]:
                    mm = copy.deepcopy(m)
                    mm["headers"] = list(mm.get("headers") or []) + headers
                    if kind == "http":
                        mm.setdefault("path", {"type": "PathPrefix", "value": "/"})
                    matches.append(mm)
                hrule: JSON = {"name": hr.name if k == 0 else f"{hr.name}-{k}", "matches": matches,
                               "backendRefs": [_backend(target.canary_service, canary_ref.get("port"), 1)]}
                if src.get("filters"):
                    hrule["filters"] = copy.deepcopy(src["filters"])
                managed_rules.append(hrule)
    if kind == "http":
        for mr in (m for m in mirror_routes if m.match):
            # its own matches: one rule (on the first source rule's backends) is enough
            for k, (_, src) in enumerate(sources[:1]):
                matches, errs = mirror_matches(mr)
                if errs:
                    return RoutePlan([], ()), errs
                canary_ref = next(r for r in src.get("backendRefs") or []
                                  if _ref_name(r) == target.canary_service)
                mrule = weighted(src)
                mrule["name"] = mr.name if k == 0 else f"{mr.name}-{k}"
                mrule["matches"] = matches
                mirror = {"type": "RequestMirror", "requestMirror": {
                    "backendRef": _backend(target.canary_service, canary_ref.get("port")),
                    "percent": mr.percentage}}
                mrule["filters"] = [*(mrule.get("filters") or []), mirror]
                weightless.add(mrule["name"])
                managed_rules.append(mrule)
    managed_rules.sort(key=lambda r: _base(r["name"], managed_routes))  # stable: keeps per-route order

    source_idx = {i for i, _ in sources}
    others = [weighted(r) if i in source_idx else r for i, r in enumerate(rules)
              if not (isinstance(r, dict) and is_managed(r, managed_routes))]
    desired = managed_rules + others
    if desired == rules:
        return RoutePlan([], ()), []
    live = {r["name"]: r for r in rules if isinstance(r, dict) and is_managed(r, managed_routes)}
    put_back = tuple(
        r["name"] for r in managed_rules if r["name"] in live
        and _strip(live[r["name"]], r["name"] in weightless) != _strip(r, r["name"] in weightless))
    ops: list[JSON] = [{"op": "test", "path": "/metadata/resourceVersion",
            "value": (route.get("metadata") or {}).get("resourceVersion")},
           {"op": "replace", "path": "/spec/rules", "value": desired}]
    return RoutePlan(ops, put_back), []


def _strip(rule: JSON, weights: bool) -> JSON:
    if not weights:
        return rule
    r = copy.deepcopy(rule)
    for ref in r.get("backendRefs") or []:
        ref.pop("weight", None)
    return r


def weight_of(route: JSON | None, target: Target, *, total: int = 100,
              managed_routes: tuple[str, ...] = ()) -> int | None:
    """The canary weight every source rule carries (None: they disagree, the weights do not
    add up to ``total``, or the route is unreadable)."""
    if route is None:
        return None
    seen = set()
    for rule in (route.get("spec") or {}).get("rules") or []:
        if not isinstance(rule, dict) or is_managed(rule, managed_routes):
            continue
        w = {_ref_name(r): r.get("weight", 1) for r in rule.get("backendRefs") or []
             if isinstance(r, dict)}
        if target.canary_service in w and target.stable_service in w:
            c, s = w[target.canary_service], w[target.stable_service]
            seen.add(c if isinstance(c, int) and isinstance(s, int) and c + s == total else None)
    return seen.pop() if len(seen) == 1 else None


class GatewayAPIRouter:
    """The HTTPRoutes, GRPCRoutes and TCPRoutes of one Rollout."""

    def __init__(self, objects: ObjectCache, cfg: GatewayAPIConfig, *,
                 managed_routes: tuple[str, ...] = (),
                 max_traffic_weight: int | None = None) -> None:
        self.objects = objects
        self.cfg = cfg
        self.managed = managed_routes
        self.total = max_traffic_weight or 100

    def _routes(self, ns: str) -> list[tuple[str, str, bool, str]]:
        """(kind, name, useHeaderRoutes, path) of every route named."""
        where = self.cfg.namespace or ns
        out = []
        for kind, refs in (("http", self.cfg.http_routes), ("grpc", self.cfg.grpc_routes),
                           ("tcp", self.cfg.tcp_routes)):
            out += [(kind, r.name, r.use_header_routes, KINDS[kind][1].path(where, r.name))
                    for r in refs]
        return out

    def _plan(self, route: JSON, kind: str, target: Target, use_headers: bool, *,
              canary_weight: int, header_routes: tuple[HeaderRoute, ...],
              mirror_routes: tuple[MirrorRoute, ...]) -> tuple[RoutePlan, list[str]]:
        return plan_route(route, kind, target, canary_weight=canary_weight, total=self.total,
                          header_routes=header_routes, mirror_routes=mirror_routes,
                          managed_routes=self.managed, use_header_routes=use_headers)

    async def check(self, ns: str, target: Target, *, header_routes: tuple[HeaderRoute, ...] = (),
                    mirror_routes: tuple[MirrorRoute, ...] = ()) -> list[str]:
        errors: list[str] = []
        for kind, name, use, path in self._routes(ns):
            route = await self.objects.get(path)
            if route is None:
                errors.append(f"{KINDS[kind][0]} {name} (trafficRouting.gatewayAPI."
                              f"{FIELDS[kind]}) not found")
                continue
            errors += self._plan(route, kind, target, use, canary_weight=0,
                                 header_routes=header_routes, mirror_routes=mirror_routes)[1]
        return errors

    async def current_weight(self, ns: str, target: Target) -> int | None:
        seen = {weight_of(await self.objects.get(path), target, total=self.total,
                          managed_routes=self.managed) for _, _, _, path in self._routes(ns)}
        return seen.pop() if len(seen) == 1 else None

    async def apply(self, ns: str, target: Target, *, canary_weight: int,
                    header_routes: tuple[HeaderRoute, ...] = (),
                    mirror_routes: tuple[MirrorRoute, ...] = ()) -> list[str]:
        """Every route carries the weights and exactly the active managed rules. Returns a
        note per managed rule that had been edited by hand and was put back."""
        notes: list[str] = []
        for kind, name, use, path in self._routes(ns):
            found: list[RoutePlan] = []

            def plan(route: JSON, kind: str = kind, use: bool = use,
                     found: list[RoutePlan] = found) -> list[JSON]:
                p, errors = self._plan(route, kind, target, use, canary_weight=canary_weight,
                                       header_routes=header_routes, mirror_routes=mirror_routes)
                if errors:
                    raise KubeError(422, "; ".join(errors))
                found.append(p)
                return p.ops

            await self.objects.patch_guarded(path, plan)
            notes += [f"managed route {r} in {KINDS[kind][0]} {name} was edited by hand; put back"
                      for r in (found[-1].put_back if found else ())]
        return notes

    async def remove(self, ns: str, target: Target) -> list[str]:
        """All traffic to stable and no managed rule left; the routes written."""
        written = []
        for kind, name, use, path in self._routes(ns):
            route = await self.objects.get(path)
            if route is None:
                continue
            p, errors = self._plan(route, kind, target, use, canary_weight=0, header_routes=(),
                                   mirror_routes=())
            if errors or not p.ops:
                continue

            def plan(route: JSON, kind: str = kind, use: bool = use) -> list[JSON]:
                p, errors = self._plan(route, kind, target, use, canary_weight=0,
                                       header_routes=(), mirror_routes=())
                if errors:
                    raise KubeError(422, "; ".join(errors))
                return p.ops

            await self.objects.patch_guarded(path, plan)
            written.append(f"{KINDS[kind][0]} {name}")
        return written

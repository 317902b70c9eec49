"""AWS ALB ingress: weights as the AWS Load Balancer Controller reads them.

The controller forwards a rule whose backend is ``{service: <name>, port: {name:
use-annotation}}`` by the ``<prefix>/actions.<name>`` annotation: a JSON forward action
whose target groups are Services with weights. Here ``<name>`` is the root Service (the
stable Service when ``rootService`` is unset); the canary and stable Services are its
target groups. A header route is an action ``actions.<route>`` plus a condition
``conditions.<route>`` (http-header), reached by a path ``/*`` inserted first in each rule.

The JSON is the documented format (lower camel case keys; the load balancer controller
decodes keys case-insensitively, so annotations written by Argo, in upper camel case,
read the same way here). The annotations this Rollout manages are recorded in
``rollouts.dev/managed-alb-annotations`` (``{rollout: [keys]}``), as Argo records its own.
"""

from __future__ import annotations

import json
from typing import Any

from rollouts.api.constants import GROUP
from rollouts.api.routing import ALBConfig, HeaderRoute, MirrorRoute
from rollouts.kube.client import JSON, KubeError
from rollouts.traffic.objects import ObjectCache
from rollouts.traffic.owned import INGRESSES, Target, escape

USE_ANNOTATION = "use-annotation"
MANAGED = f"{GROUP}/managed-alb-annotations"

SUPPORTS_HEADER_ROUTE = True  # exact values (prefix as a trailing '*' wildcard); no regex
SUPPORTS_MIRROR_ROUTE = False


def action_service(cfg: ALBConfig, target: Target) -> str:
    return cfg.root_service or target.stable_service


def action_key(cfg: ALBConfig, name: str) -> str:
    return f"{cfg.annotation_prefix}/actions.{name}"


def condition_key(cfg: ALBConfig, name: str) -> str:
    return f"{cfg.annotation_prefix}/conditions.{name}"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _forward(cfg: ALBConfig, groups: list[tuple[str, int]]) -> str:
    forward: JSON = {"targetGroups": [{"serviceName": svc, "servicePort": str(cfg.service_port),
                                       "weight": w} for svc, w in groups]}
    if cfg.stickiness is not None and cfg.stickiness.enabled:
        forward["targetGroupStickinessConfig"] = {
            "enabled": True, "durationSeconds": cfg.stickiness.duration_seconds}
    return _compact({"type": "forward", "forwardConfig": forward})


def forward_action(cfg: ALBConfig, target: Target, canary_weight: int) -> str:
    """The ``actions.<root>`` value: canary first, then stable, weights summing to 100."""
    return _forward(cfg, [(target.canary_service, canary_weight),
                          (target.stable_service, 100 - canary_weight)])


def header_values(route: HeaderRoute) -> tuple[str, list[str]]:
    """The http-header conditions of a header route (same header names merged into one
    condition's values, as Argo does), or why the ALB cannot express it."""
    conds: list[JSON] = []
    for m in route.match:
        v = m.header_value
        if v.regex is not None:
            return "", [f"setHeaderRoute {route.name}: the ALB matches header values exactly "
                        f"or with wildcards, not by regex ({m.header_name})"]
        value = v.exact if v.exact is not None else f"{v.prefix}*"
        same = next((c for c in conds if c["httpHeaderConfig"]["httpHeaderName"] == m.header_name), None)
        if same is not None:
            same["httpHeaderConfig"]["values"].append(value)
        else:
            conds.append({"field": "http-header",
                          "httpHeaderConfig": {"httpHeaderName": m.header_name, "values": [value]}})
    return _compact(conds), []


def _paths(ingress: JSON) -> list[tuple[int, int, JSON]]:
    out = []
    for i, rule in enumerate((ingress.get("spec") or {}).get("rules") or []):
        for j, p in enumerate(((rule or {}).get("http") or {}).get("paths") or []):
            if isinstance(p, dict):
                out.append((i, j, p))
    return out


def _service_of(p: JSON) -> tuple[str | None, Any]:
    svc = (p.get("backend") or {}).get("service") or {}
    return svc.get("name"), svc.get("port")


def ingress_error(ingress: JSON, cfg: ALBConfig, target: Target) -> str | None:
    name = (ingress.get("metadata") or {}).get("name")
    svc = action_service(cfg, target)
    if not any(_service_of(p)[0] == svc for _, _, p in _paths(ingress)):
        field = "rootService" if cfg.root_service else "the stable Service"
        return (f"Ingress {name} (trafficRouting.alb.ingress) has no rule whose backend is "
                f"Service {svc} ({field}; spec.rules[].http.paths[].backend.service.name)")
    return None


def _managed(ann: dict[str, Any]) -> dict[str, list[str]]:
    try:
        m = json.loads(ann.get(MANAGED) or "{}")
    except ValueError:
        m = {}
    return m if isinstance(m, dict) else {}


def plan_ingress(ingress: JSON, cfg: ALBConfig, target: Target, *, canary_weight: int,
                 header_routes: tuple[HeaderRoute, ...] = (),
                 managed_routes: tuple[str, ...] = ()) -> tuple[list[JSON], list[str]]:
    """The JSON patch (guarded by the resourceVersion) that makes one Ingress carry the
    weights and the header routes; ``managed_routes`` (all route names the spec may
    create) not among the active ones are taken out. Empty when nothing changes."""
    err = ingress_error(ingress, cfg, target)
    if err:
        return [], [err]
    meta = ingress.get("metadata") or {}
    ann = dict(meta.get("annotations") or {})
    svc = action_service(cfg, target)
    want: dict[str, str] = {action_key(cfg, svc): forward_action(cfg, target, canary_weight)}
    active = [r for r in header_routes if r.match]
    for r in active:
        cond, errors = header_values(r)
        if errors:
            return [], errors
        want[action_key(cfg, r.name)] = _forward(cfg, [(target.canary_service, 100)])
        want[condition_key(cfg, r.name)] = cond
    gone_routes = [n for n in managed_routes if n not in {r.name for r in active}]
    drop = {k for n in gone_routes for k in (action_key(cfg, n), condition_key(cfg, n))}
    managed = _managed(ann)
    prior = managed.get(target.rollout)
    mine = [k for k in prior if isinstance(k, str) and k not in drop] if isinstance(prior, list) else []
    mine += [k for k in want if k not in mine]
    managed[target.rollout] = mine
    want[MANAGED] = _compact(managed)

    ops: list[JSON] = []
    if not isinstance(meta.get("annotations"), dict):
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    for k, v in want.items():
        if ann.get(k) != v:
            ops.append({"op": "add", "path": f"/metadata/annotations/{escape(k)}", "value": v})
    for k in sorted(drop):
        if k in ann:
            ops.append({"op": "remove", "path": f"/metadata/annotations/{escape(k)}"})

    # the root Service's paths read the action: port use-annotation
    for i, j, p in _paths(ingress):
        name, port = _service_of(p)
        if name == svc and port != {"name": USE_ANNOTATION}:
            ops.append({"op": "add", "path": f"/spec/rules/{i}/http/paths/{j}/backend/service/port",
                        "value": {"name": USE_ANNOTATION}})
    ops += _route_path_ops(ingress, [r.name for r in active], gone_routes)
    if ops:
        ops.insert(0, {"op": "test", "path": "/metadata/resourceVersion",
                       "value": meta.get("resourceVersion")})
    return ops, []


def _route_path_ops(ingress: JSON, add: list[str], remove: list[str]) -> list[JSON]:
    """Header-route paths: ``/*`` to the route's action first in every rule (Argo's shape);
    removed routes' paths taken out. Index arithmetic per rule, removals from the end."""
    ops: list[JSON] = []
    for i, rule in enumerate((ingress.get("spec") or {}).get("rules") or []):
        paths = ((rule or {}).get("http") or {}).get("paths")
        if not isinstance(paths, list):
            continue
        names = [_service_of(p)[0] if isinstance(p, dict) else None for p in paths]
        for j in reversed(range(len(names))):
            if names[j] in remove:
                ops.append({"op": "remove", "path": f"/spec/rules/{i}/http/paths/{j}"})
        for n in reversed(add):
            if n not in names:
                ops.append({"op": "add", "path": f"/spec/rules/{i}/http/paths/0", "value": {
                    "path": "/*", "pathType": "ImplementationSpecific",
                    "backend": {"service": {"name": n, "port": {"name": USE_ANNOTATION}}}}})
    return ops


def _ci(d: Any, key: str) -> Any:
    """A key looked up case-insensitively, as the load balancer controller decodes JSON."""
    if not isinstance(d, dict):
        return None
    return next((v for k, v in d.items() if isinstance(k, str) and k.lower() == key.lower()), None)


def weight_of(ingress: JSON | None, cfg: ALBConfig, target: Target) -> int | None:
    """The canary weight in the root Service's action (None: no readable action)."""
    if ingress is None:
        return None
    ann = (ingress.get("metadata") or {}).get("annotations") or {}
    raw = ann.get(action_key(cfg, action_service(cfg, target)))
    try:
        action = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    groups = _ci(_ci(action, "forwardConfig"), "targetGroups")
    for g in groups if isinstance(groups, list) else []:
        if _ci(g, "serviceName") == target.canary_service:
            w = _ci(g, "weight")
            return w if isinstance(w, int) and not isinstance(w, bool) else None
    return 0 if isinstance(groups, list) else None


class ALBRouter:
    """The annotations and rule backends of the Rollout's ALB Ingresses."""

    def __init__(self, objects: ObjectCache, cfg: ALBConfig, *,
                 managed_routes: tuple[str, ...] = ()) -> None:
        self.objects = objects
        self.cfg = cfg
        self.managed_routes = managed_routes

    async def check(self, ns: str, target: Target, *,
                    header_routes: tuple[HeaderRoute, ...] = (),
                    mirror_routes: tuple[MirrorRoute, ...] = ()) -> list[str]:
        errors: list[str] = []
        for name in self.cfg.ingresses:
            ing = await self.objects.get(INGRESSES.path(ns, name))
            if ing is None:
                errors.append(f"Ingress {name} (trafficRouting.alb.ingress) not found")
                continue
            errors += plan_ingress(ing, self.cfg, target, canary_weight=0,
                                   header_routes=header_routes)[1]
        return errors

    async def current_weight(self, ns: str, target: Target) -> int | None:
        seen = {weight_of(await self.objects.get(INGRESSES.path(ns, n)), self.cfg, target)
                for n in self.cfg.ingresses}
        return seen.pop() if len(seen) == 1 else None

    async def apply(self, ns: str, target: Target, *, canary_weight: int,
                    header_routes: tuple[HeaderRoute, ...] = (),
                    mirror_routes: tuple[MirrorRoute, ...] = (), only: str | None = None) -> list[str]:
        """Every Ingress (or ``only`` that one) carries the weights and the active header
        routes (the managed routes not active are taken out; mirror routes cannot be
        expressed: ignored). No notes: the Ingress is the
        user's, only our annotations, paths and the root Service's port are written."""
        for name in self.cfg.ingresses:
            if only is not None and name != only:
                continue
            def plan(ing: JSON) -> list[JSON]:
                ops, errors = plan_ingress(ing, self.cfg, target, canary_weight=canary_weight,
                                           header_routes=header_routes,
                                           managed_routes=self.managed_routes)
                if errors:
                    raise KubeError(422, "; ".join(errors))
                return ops

            await self.objects.patch_guarded(INGRESSES.path(ns, name), plan)
        return []

    async def remove(self, ns: str, target: Target) -> list[str]:
        """All traffic to stable and the header routes gone (the action stays, at weight 0:
        the rule reads it). The Ingresses that were written."""
        written = []
        for name in self.cfg.ingresses:
            path = INGRESSES.path(ns, name)
            if await self.objects.get(path) is None:
                continue
            before = (await self.objects.must(path))["metadata"].get("resourceVersion")
            await self.apply(ns, target, canary_weight=0, only=name)
            if (await self.objects.must(path))["metadata"].get("resourceVersion") != before:
                written.append(name)
        return written

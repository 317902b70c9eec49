"""NGINX ingress: the canary Ingress, a copy of each stable Ingress pointed at the canary
Service, which ingress-nginx merges into the stable one's location by its annotations.

``canary: "true"`` and ``canary-weight`` send that share of requests to the canary;
``canary-by-header`` (with ``-value`` or ``-pattern``) sends every request carrying the
header to it whatever the weight (a ``setHeaderRoute`` step). Deleting the canary Ingress
sends everything back to the stable Service, so removal is always safe for traffic.

The canary Ingress is created and owned by the Rollout (Argo's name
``<rollout>-<stable ingress>-canary``). The annotations it writes are listed on the
object and fingerprinted with its spec; a canary Ingress whose content no longer matches
its fingerprint was edited by hand: it is put back and the caller is told (an Event).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from rollouts.api.constants import GROUP
from rollouts.api.routing import HeaderRoute, MirrorRoute, NginxConfig
from rollouts.kube.client import JSON, KubeError
from rollouts.traffic.objects import ObjectCache
from rollouts.traffic.owned import INGRESSES, Target, create, delete, escape, ownership_error

CANARY_SUFFIX = "-canary"
MAX_NAME = 253
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
# the annotations this controller wrote (comma-separated) and the fingerprint of the content
MANAGED_ANNOTATIONS = f"{GROUP}/managed-annotations"
FINGERPRINT = f"{GROUP}/managed-fingerprint"

SUPPORTS_HEADER_ROUTE = True  # one header per Ingress: ingress-nginx has one canary-by-header
SUPPORTS_MIRROR_ROUTE = False


def canary_ingress_name(rollout: str, stable_ingress: str) -> str:
    """Argo's name, truncated so that the suffix fits in an object name."""
    prefix = f"{rollout}-{stable_ingress}"[:MAX_NAME - len(CANARY_SUFFIX)]
    return prefix + CANARY_SUFFIX


def _backend_service(path: Any) -> str | None:
    svc = ((path or {}).get("backend") or {}).get("service") if isinstance(path, dict) else None
    name = svc.get("name") if isinstance(svc, dict) else None
    return name if isinstance(name, str) else None


def stable_rule_error(stable: JSON, stable_service: str) -> str | None:
    name = (stable.get("metadata") or {}).get("name")
    for rule in (stable.get("spec") or {}).get("rules") or []:
        for p in ((rule or {}).get("http") or {}).get("paths") or []:
            if _backend_service(p) == stable_service:
                return None
    return (f"Ingress {name} (trafficRouting.nginx.stableIngress) has no rule whose backend is "
            f"the stable Service {stable_service} (spec.rules[].http.paths[].backend.service.name)")


def header_annotations(routes: tuple[HeaderRoute, ...], prefix: str) -> tuple[dict[str, str], list[str]]:
    """The canary-by-header annotations for the active header routes (those with matches)."""
    active = [r for r in routes if r.match]
    if not active:
        return {}, []
    if len(active) > 1 or len(active[0].match) > 1:
        return {}, [f"NGINX routes to the canary on one header only: setHeaderRoute "
                    f"{', '.join(r.name for r in active)} asks for "
                    f"{sum(len(r.match) for r in active)} header matches"]
    m = active[0].match[0]
    out = {f"{prefix}/canary-by-header": m.header_name}
    v = m.header_value
    if v.exact is not None:
        out[f"{prefix}/canary-by-header-value"] = v.exact
    elif v.prefix is not None:
        out[f"{prefix}/canary-by-header-pattern"] = "^" + re.escape(v.prefix)
    else:
        out[f"{prefix}/canary-by-header-pattern"] = str(v.regex)
    return out, []


def fingerprint(annotations: dict[str, str], keys: list[str], spec: Any) -> str:
    content = {"annotations": {k: annotations.get(k) for k in sorted(keys)}, "spec": spec}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def plan_canary_ingress(stable: JSON, *, cfg: NginxConfig, target: Target, canary_weight: int,
                        max_weight: int | None = None,
                        header_routes: tuple[HeaderRoute, ...] = ()) -> tuple[JSON | None, list[str]]:
    """The canary Ingress for one stable Ingress, or why there can be none."""
    meta = stable.get("metadata") or {}
    stable_name = str(meta.get("name"))
    err = stable_rule_error(stable, target.stable_service)
    if err:
        return None, [err]
    headers, errors = header_annotations(header_routes, cfg.annotation_prefix)
    if errors:
        return None, errors
    sspec = stable.get("spec") or {}
    rules = []
    for rule in sspec.get("rules") or []:
        paths = ((rule or {}).get("http") or {}).get("paths") or []
        if not any(_backend_service(p) == target.stable_service for p in paths):
            continue  # Argo copies only the rules that reach the stable Service
        new_paths = []
        for p in paths:
            p = json.loads(json.dumps(p))
            if _backend_service(p) == target.stable_service:
                p["backend"]["service"]["name"] = target.canary_service
            new_paths.append(p)
        new_rule = {k: v for k, v in rule.items() if k != "http"}
        new_rule["http"] = {**rule["http"], "paths": new_paths}
        rules.append(new_rule)
    spec: JSON = {"rules": rules}
    if sspec.get("tls"):
        spec["tls"] = sspec["tls"]
    if sspec.get("ingressClassName"):
        spec["ingressClassName"] = sspec["ingressClassName"]
    prefix = cfg.annotation_prefix
    ann: dict[str, str] = {}
    stable_class = (meta.get("annotations") or {}).get(INGRESS_CLASS_ANNOTATION)
    if isinstance(stable_class, str):
        ann[INGRESS_CLASS_ANNOTATION] = stable_class
    for k, v in cfg.additional_ingress_annotations:
        ann[k if k.startswith(prefix) else f"{prefix}/{k}"] = v
    ann.update(dict(cfg.canary_ingress_annotations))
    ann[f"{prefix}/canary"] = "true"
    ann[f"{prefix}/canary-weight"] = str(canary_weight)
    if max_weight is not None:
        ann[f"{prefix}/canary-weight-total"] = str(max_weight)
    ann.update(headers)
    keys = sorted(ann)
    ann[MANAGED_ANNOTATIONS] = ",".join(keys)
    ann[FINGERPRINT] = fingerprint(ann, keys, spec)
    body: JSON = {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": canary_ingress_name(target.rollout, stable_name),
                     "annotations": ann, "ownerReferences": [target.owner_reference()]},
        "spec": spec,
    }
    if meta.get("namespace"):
        body["metadata"]["namespace"] = meta["namespace"]
    return body, []


@dataclass(frozen=True)
class CanaryIngressUpdate:
    ops: list[JSON]  # a JSON patch guarded by the resourceVersion; empty: nothing to do
    edited_by_hand: bool  # the content no longer matched what this controller wrote
    differs: tuple[str, ...]  # what differed from the desired object (for the Event)


def plan_update(actual: JSON, desired: JSON) -> CanaryIngressUpdate:
    """The patch that makes ``actual`` (our canary Ingress) ``desired``. Annotations we
    wrote before and want no more (a cleared header route) are removed; annotations
    others added are left alone, as Argo does."""
    ann = (actual.get("metadata") or {}).get("annotations") or {}
    want = desired["metadata"]["annotations"]
    recorded = [k for k in str(ann.get(MANAGED_ANNOTATIONS, "")).split(",") if k]
    edited = (FINGERPRINT in ann
              and fingerprint(ann, recorded, actual.get("spec")) != ann[FINGERPRINT])
    ops: list[JSON] = []
    differs: list[str] = []
    if actual.get("spec") != desired["spec"]:
        ops.append({"op": "replace" if "spec" in actual else "add", "path": "/spec",
                    "value": desired["spec"]})
        differs.append("spec")
    if not isinstance((actual.get("metadata") or {}).get("annotations"), dict):
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    for k, v in want.items():
        if ann.get(k) != v:
            ops.append({"op": "add", "path": f"/metadata/annotations/{escape(k)}", "value": v})
            if k not in (FINGERPRINT, MANAGED_ANNOTATIONS):
                differs.append(f"annotation {k}")
    for k in recorded:
        if k not in want and k in ann:
            ops.append({"op": "remove", "path": f"/metadata/annotations/{escape(k)}"})
            differs.append(f"annotation {k}")
    if ops:
        ops.insert(0, {"op": "test", "path": "/metadata/resourceVersion",
                       "value": actual["metadata"]["resourceVersion"]})
    return CanaryIngressUpdate(ops, edited and bool(ops), tuple(differs))


def weight_of(canary_ingress: JSON | None, prefix: str) -> int | None:
    """The canary weight a canary Ingress carries; no canary Ingress carries none (0)."""
    if canary_ingress is None:
        return 0
    ann = (canary_ingress.get("metadata") or {}).get("annotations") or {}
    if ann.get(f"{prefix}/canary") != "true":
        return 0
    w = ann.get(f"{prefix}/canary-weight", "0")
    return int(w) if isinstance(w, str) and w.isdigit() else None


class NginxRouter:
    """The canary Ingresses of one Rollout (one per stable Ingress)."""

    def __init__(self, objects: ObjectCache, cfg: NginxConfig, *,
                 max_traffic_weight: int | None = None) -> None:
        self.objects = objects
        self.cfg = cfg
        self.max_weight = max_traffic_weight

    def _paths(self, ns: str, target: Target, stable: str) -> tuple[str, str]:
        return (INGRESSES.path(ns, stable),
                INGRESSES.path(ns, canary_ingress_name(target.rollout, stable)))

    async def check(self, ns: str, target: Target, *,
                    header_routes: tuple[HeaderRoute, ...] = (),
                    mirror_routes: tuple[MirrorRoute, ...] = ()) -> list[str]:
        """Every stable Ingress exists and reaches the stable Service; no canary Ingress of
        our name belongs to someone else; the header routes fit in one canary-by-header."""
        errors: list[str] = []
        for stable in self.cfg.stable_ingresses:
            s_path, c_path = self._paths(ns, target, stable)
            obj = await self.objects.get(s_path)
            if obj is None:
                errors.append(f"Ingress {stable} (trafficRouting.nginx.stableIngress) not found")
                continue
            errors += plan_canary_ingress(obj, cfg=self.cfg, target=target, canary_weight=0,
                                          header_routes=header_routes)[1]
            err = ownership_error(await self.objects.get(c_path), target,
                                  f"canary Ingress {canary_ingress_name(target.rollout, stable)}")
            if err:
                errors.append(err)
        return errors

    async def current_weight(self, ns: str, target: Target) -> int | None:
        """The canary weight all canary Ingresses carry (None: they disagree or one is
        unreadable)."""
        seen = set()
        for stable in self.cfg.stable_ingresses:
            seen.add(weight_of(await self.objects.get(self._paths(ns, target, stable)[1]),
                               self.cfg.annotation_prefix))
        return seen.pop() if len(seen) == 1 else None

    async def apply(self, ns: str, target: Target, *, canary_weight: int,
                    header_routes: tuple[HeaderRoute, ...] = (),
                    mirror_routes: tuple[MirrorRoute, ...] = ()) -> list[str]:
        """Create or update every canary Ingress to carry ``canary_weight`` and the active
        header routes (mirror routes cannot be expressed: ignored). Returns one note per
        canary Ingress that had been edited by hand and was put back (for an Event). Raises
        (KubeError) when a write fails or the objects do not fit: nothing is reported as
        done that was not."""
        notes: list[str] = []
        for stable in self.cfg.stable_ingresses:
            s_path, c_path = self._paths(ns, target, stable)
            stable_obj = await self.objects.must(s_path)

            def build(stable_obj: JSON = stable_obj) -> JSON:
                body, errors = plan_canary_ingress(
                    stable_obj, cfg=self.cfg, target=target, canary_weight=canary_weight,
                    max_weight=self.max_weight, header_routes=header_routes)
                if body is None:
                    raise KubeError(422, "; ".join(errors))
                return body

            desired = build()
            current = await self.objects.get(c_path)
            if current is None:
                current = await create(self.objects, INGRESSES.path(ns), c_path, desired)
            err = ownership_error(current, target, f"canary Ingress {desired['metadata']['name']}")
            if err:
                raise KubeError(409, err)
            hand: list[CanaryIngressUpdate] = []

            def plan(actual: JSON, desired: JSON = desired,
                     hand: list[CanaryIngressUpdate] = hand) -> list[JSON]:
                u = plan_update(actual, desired)
                hand.append(u)
                return u.ops

            await self.objects.patch_guarded(c_path, plan)
            if hand and hand[-1].edited_by_hand:
                notes.append(f"canary Ingress {desired['metadata']['name']} was edited by hand "
                             f"({', '.join(hand[-1].differs)}); put back")
        return notes

    async def remove(self, ns: str, target: Target) -> list[str]:
        """Delete the canary Ingresses (all traffic back on the stable Ingresses); the names
        deleted."""
        gone = []
        for stable in self.cfg.stable_ingresses:
            c_path = self._paths(ns, target, stable)[1]
            if await delete(self.objects, c_path, uid=target.uid):
                gone.append(canary_ingress_name(target.rollout, stable))
        return gone

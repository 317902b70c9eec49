"""Pure routing logic for the routers beyond Istio: raw objects -> RoutePlans.

- **NGINX ingress**: an Ingress is an entry point; an Ingress annotated ``canary: "true"``
  with a rule for the same host and path is merged into it as its canary backend, as
  ingress-nginx does (one alternative backend per location). A client carrying the
  ``canary-by-header`` header goes to the canary when its value equals
  ``canary-by-header-value``, matches ``canary-by-header-pattern`` (searched, as
  ``ngx.re.match``) or, with neither, is ``always`` (``never``: the stable backend);
  everyone else is split by ``canary-weight`` over ``canary-weight-total`` (100 unless
  larger). Requests feed ingress-nginx's series: ``ingress`` and ``service`` name the
  location's (stable) Ingress and Service whoever answers, ``canary`` the upstream
  (``<namespace>-<service>-<port>``) when the canary answered, else empty.
- **AWS ALB**: a path whose backend port is ``{name: use-annotation}`` reads the forward
  action ``<alb prefix>/actions.<service>`` (target group weights; JSON keys are read
  case-insensitively, as the load balancer controller does); one with
  ``conditions.<service>`` (http-header) takes only the clients whose header matches
  (values with ``*``/``?`` wildcards, header names case-insensitive). Paths are tried in
  order; requests feed ingress-nginx's series with ``service`` the target group's Service
  (a test-bed stand-in: a real ALB reports to CloudWatch).
- **SMI**: a TrafficSplit splits the calls to its root Service (``spec.service``) by its
  backends' weights (a v1alpha1 quantity such as ``500m`` is read as a number).
  Requests feed Istio's series, as the mesh that carries them would.
- **Gateway API**: an HTTPRoute's rules, those with header matches the client satisfies
  first, then those with no header match, each in order; the rule's backendRefs split
  by weight (default 1, namespace the route's). Path, method and query matches, filters
  (mirroring included), GRPCRoutes and TCPRoutes are not simulated. Istio's series.

Each route object sends ``rps`` requests per second (its ``simulator.rollouts.dev/rps``
annotation, else the default; for SMI the root Service's annotation, else the split's).
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .model import (
    CLUSTER_DOMAIN,
    RPS_ANNOTATION,
    ClusterState,
    DestinationPlan,
    Obj,
    PlanBuilder,
    RoutePlan,
    annotations_of,
    key_of,
    parse_rps,
)

NGINX_PREFIX = "nginx.ingress.kubernetes.io"
ALB_PREFIX = "alb.ingress.kubernetes.io"
USE_ANNOTATION = "use-annotation"

# ingress-nginx's request labels (internal/ingress/metric/collectors/socket.go,
# requestTags, plus "host" with --metrics-per-host, the default), in exposition order.
NGINX_LABEL_NAMES: tuple[str, ...] = (
    "status", "method", "path", "namespace", "ingress", "service", "canary", "host",
)  # fmt: skip
# Its constant labels (controller_namespace, _class, _pod), as a default install sets them.
NGINX_CONST_LABELS: dict[str, str] = {
    "controller_class": "k8s.io/ingress-nginx",
    "controller_namespace": "ingress-nginx",
    "controller_pod": "ingress-nginx-controller-0",
}

Labels = tuple[tuple[str, str], ...]
Target = tuple[str, str, float, str]  # (service, namespace, weight, canary label value)


def _ci(d: Any, key: str) -> Any:
    """A JSON key read case-insensitively, as the AWS load balancer controller decodes."""
    if not isinstance(d, Mapping):
        return None
    return next((v for k, v in d.items() if isinstance(k, str) and k.lower() == key.lower()), None)


def _header(headers: Labels, name: str) -> str | None:
    """The client's value of header ``name`` (HTTP header names are case-insensitive)."""
    return next((v for k, v in headers if k.lower() == name.lower()), None)


def _quantity(raw: object) -> float | None:
    """A weight: an integer, or a Kubernetes quantity such as "500m" (SMI v1alpha1)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw) if math.isfinite(raw) and raw >= 0 else None
    text = str(raw).strip()
    scale = 1.0
    if text.endswith("m"):
        text, scale = text[:-1], 1e-3
    try:
        value = float(text) * scale
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


# --------------------------------------------------------------------------- Ingress


def _paths(ingress: Obj) -> tuple[str, list[Mapping[str, Any]]]:
    """The host and paths of the Ingress's first rule (the simulated client's request)."""
    rules = (ingress.get("spec") or {}).get("rules") or []
    rule = rules[0] if rules and isinstance(rules[0], Mapping) else {}
    paths = [p for p in ((rule.get("http") or {}).get("paths") or []) if isinstance(p, Mapping)]
    return str(rule.get("host") or ""), paths


def _backend(path: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    svc = (path.get("backend") or {}).get("service")
    if not isinstance(svc, Mapping) or not isinstance(svc.get("name"), str):
        return None
    port = svc.get("port")
    return svc["name"], port if isinstance(port, Mapping) else {}


def _port_text(port: Mapping[str, Any]) -> str:
    return str(port.get("number") or port.get("name") or "")


def is_nginx_canary(ingress: Obj) -> bool:
    return annotations_of(ingress).get(f"{NGINX_PREFIX}/canary") == "true"


def nginx_canary_for(state: ClusterState, ns: str, host: str, path: str) -> Obj | None:
    """The canary Ingress merged into (host, path) of namespace ``ns``; the first by name when
    several claim it (ingress-nginx shapes traffic to one alternative backend only)."""
    for (c_ns, _), ing in sorted(state.ingresses.items()):
        if c_ns != ns or not is_nginx_canary(ing):
            continue
        for rule in (ing.get("spec") or {}).get("rules") or []:
            if not isinstance(rule, Mapping) or str(rule.get("host") or "") != host:
                continue
            for p in (rule.get("http") or {}).get("paths") or []:
                if isinstance(p, Mapping) and str(p.get("path") or "/") == path and _backend(p):
                    return ing
    return None


def nginx_canary_route(canary: Obj, headers: Labels | None) -> tuple[bool, float]:
    """(decided by header, canary share) for one kind of client of a canary location:
    ingress-nginx's route_to_alternative_balancer (header, then weight; cookies unused)."""
    ann = annotations_of(canary)
    name = ann.get(f"{NGINX_PREFIX}/canary-by-header")
    sent = _header(headers, name) if headers and name else None
    if sent is not None:
        value = ann.get(f"{NGINX_PREFIX}/canary-by-header-value")
        pattern = ann.get(f"{NGINX_PREFIX}/canary-by-header-pattern")
        if value:
            if sent == value:
                return True, 1.0
        elif pattern:
            try:
                if re.search(pattern, sent):
                    return True, 1.0
            except re.error:
                pass  # ingress-nginx logs the bad pattern and goes on to the weight
        elif sent == "always":
            return True, 1.0
        elif sent == "never":
            return True, 0.0
    weight = _quantity(ann.get(f"{NGINX_PREFIX}/canary-weight", "0")) or 0.0
    total = _quantity(ann.get(f"{NGINX_PREFIX}/canary-weight-total", "100")) or 100.0
    total = max(total, 100.0)  # balancer.lua uses the total only when it exceeds 100
    return False, min(weight / total, 1.0)


def _alb_conditions_match(raw: str, headers: Labels | None) -> bool:
    """Whether a client satisfies every http-header condition of ``conditions.<name>``."""
    try:
        conds = json.loads(raw)
    except ValueError:
        return False
    if not isinstance(conds, list):
        return False
    for c in conds:
        if str(_ci(c, "field") or "") != "http-header":
            return False  # host, path, query... conditions: not simulated, never matched
        cfg = _ci(c, "httpHeaderConfig")
        name = _ci(cfg, "httpHeaderName")
        values = _ci(cfg, "values")
        sent = _header(headers or (), str(name)) if name else None
        if sent is None or not isinstance(values, list):
            return False
        if not any(fnmatch.fnmatchcase(sent.lower(), str(v).lower()) for v in values):
            return False
    return True


def _alb_targets(ingress: Obj, action_name: str, ns: str) -> list[Target] | None:
    raw = annotations_of(ingress).get(f"{ALB_PREFIX}/actions.{action_name}")
    try:
        action = json.loads(raw) if raw else None
    except ValueError:
        return None
    groups = _ci(_ci(action, "forwardConfig"), "targetGroups")
    if str(_ci(action, "type") or "").lower() != "forward" or not isinstance(groups, list):
        return None
    out: list[Target] = []
    for g in groups:
        svc = _ci(g, "serviceName")
        weight = _quantity(_ci(g, "weight"))
        if isinstance(svc, str) and weight is not None:
            out.append((svc, ns, weight, ""))
    return out


def ingress_targets(
    state: ClusterState, ingress: Obj, headers: Labels | None
) -> tuple[str, str, list[Target]]:
    """(host, path, weighted targets) of one kind of client entering through ``ingress``."""
    ns, _ = key_of(ingress)
    host, paths = _paths(ingress)
    ann = annotations_of(ingress)
    for p in paths:
        backend = _backend(p)
        if backend is None:
            continue
        svc, port = backend
        path = str(p.get("path") or "/")
        if port.get("name") == USE_ANNOTATION:
            cond = ann.get(f"{ALB_PREFIX}/conditions.{svc}")
            if cond is not None and not _alb_conditions_match(cond, headers):
                continue
            return host, path, _alb_targets(ingress, svc, ns) or []
        canary = nginx_canary_for(state, ns, host, path)
        if canary is None:
            return host, path, [(svc, ns, 1.0, "")]
        c_backend = next(
            (b for b in (_backend(q) for q in _paths_for(canary, host, path)) if b), None
        )
        _, share = nginx_canary_route(canary, headers)
        if c_backend is None or share <= 0:
            return host, path, [(svc, ns, 1.0, "")]
        c_svc, c_port = c_backend
        upstream = f"{ns}-{c_svc}-{_port_text(c_port)}"
        return host, path, [(svc, ns, 1.0 - share, ""), (c_svc, ns, share, upstream)]
    return host, "/", []


def _paths_for(ingress: Obj, host: str, path: str) -> list[Mapping[str, Any]]:
    out = []
    for rule in (ingress.get("spec") or {}).get("rules") or []:
        if isinstance(rule, Mapping) and str(rule.get("host") or "") == host:
            out += [p for p in (rule.get("http") or {}).get("paths") or []
                    if isinstance(p, Mapping) and str(p.get("path") or "/") == path]
    return out


def _nginx_destinations(
    builder: PlanBuilder,
    state: ClusterState,
    pods_by_ns: Mapping[str, list[Obj]],
    ingress: Obj,
    headers: Labels | None,
) -> tuple[DestinationPlan, ...]:
    ns, name = key_of(ingress)
    host, path, targets = ingress_targets(state, ingress, headers)
    alb = any(b[1].get("name") == USE_ANNOTATION
              for b in (_backend(p) for p in _paths(ingress)[1]) if b)
    location_service = next((s for s, _, _, c in targets if not c), "")
    out = []
    for svc, svc_ns, weight, canary in targets:
        labels = {"method": "GET", "path": path, "namespace": ns, "ingress": name,
                  # ingress-nginx names the location's Service; the ALB stand-in the target's
                  "service": svc if alb or not canary else location_service,
                  "canary": canary, "host": host}
        out.append(builder.service_destination(state, pods_by_ns, (svc, svc_ns), weight,
                                                tuple(labels.items())))
    if not out or sum(d.weight for d in out) <= 0:
        labels = {"method": "GET", "path": path, "namespace": ns, "ingress": name,
                  "service": "", "canary": "", "host": host}
        return (DestinationPlan(tuple(labels.items()), 1.0, (), "NR"),)
    return tuple(d for d in out if d.weight > 0)


# --------------------------------------------------------------------------- mesh


def _mesh_labels(svc: str, ns: str) -> Labels:
    return (("destination_service", f"{svc}.{ns}.{CLUSTER_DOMAIN}"),
            ("destination_service_name", svc), ("destination_service_namespace", ns))


def split_targets(split: Obj) -> tuple[str, list[Target]]:
    """(root Service, weighted backends) of a TrafficSplit."""
    ns, _ = key_of(split)
    spec = split.get("spec") or {}
    out: list[Target] = []
    for b in spec.get("backends") or []:
        if isinstance(b, Mapping) and isinstance(b.get("service"), str):
            w = _quantity(b.get("weight", 0))
            out.append((b["service"], ns, w or 0.0, ""))
    return str(spec.get("service") or ""), out


def _header_match(match: Mapping[str, Any], headers: Labels | None) -> bool:
    for h in match.get("headers") or []:
        if not isinstance(h, Mapping):
            return False
        sent = _header(headers or (), str(h.get("name") or ""))
        if sent is None:
            return False
        value = str(h.get("value") or "")
        if h.get("type", "Exact") == "RegularExpression":
            try:
                if not re.fullmatch(value, sent):
                    return False
            except re.error:
                return False
        elif sent != value:
            return False
    return True


def route_rule(route: Obj, headers: Labels | None) -> Mapping[str, Any] | None:
    """The HTTPRoute rule a client takes: one whose match with header conditions it meets
    (more specific, so first), else one with a match without headers (or no match)."""
    rules = [r for r in (route.get("spec") or {}).get("rules") or [] if isinstance(r, Mapping)]

    def matches(rule: Mapping[str, Any], with_headers: bool) -> bool:
        ms = [m for m in rule.get("matches") or [] if isinstance(m, Mapping)]
        if not ms:
            return not with_headers
        return any(bool(m.get("headers")) == with_headers and _header_match(m, headers) for m in ms)

    for with_headers in (True, False):
        for rule in rules:
            if matches(rule, with_headers):
                return rule
    return None


def route_targets(route: Obj, headers: Labels | None) -> list[Target]:
    ns, _ = key_of(route)
    rule = route_rule(route, headers)
    out: list[Target] = []
    for ref in (rule or {}).get("backendRefs") or []:
        if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str):
            continue
        if ref.get("kind", "Service") != "Service" or ref.get("group", "") not in ("", "core"):
            continue
        w = _quantity(ref.get("weight", 1))
        out.append((ref["name"], str(ref.get("namespace") or ns), w or 0.0, ""))
    return out


def _mesh_destinations(
    builder: PlanBuilder,
    state: ClusterState,
    pods_by_ns: Mapping[str, list[Obj]],
    targets: list[Target],
) -> tuple[DestinationPlan, ...]:
    live = [t for t in targets if t[2] > 0]
    if not live:
        # no backend to send to (none, or every weight 0): the proxy answers 500
        svc, ns = (targets[0][0], targets[0][1]) if targets else ("unknown", "unknown")
        return (DestinationPlan(_mesh_labels(svc, ns), 1.0, (), "NR", "500"),)
    return tuple(builder.service_destination(state, pods_by_ns, (s, n), w, _mesh_labels(s, n))
                 for s, n, w, _ in live)


# --------------------------------------------------------------------------- plans


def router_plans(
    builder: PlanBuilder, state: ClusterState, pods_by_ns: Mapping[str, list[Obj]]
) -> list[RoutePlan]:
    """Plans for every Ingress (but NGINX canaries), TrafficSplit and HTTPRoute."""
    clients = builder.clients
    headers = clients.headers if clients.share > 0 and clients.headers else None
    plans: list[RoutePlan] = []

    def add(obj: Obj, kind: str, family: str, rps: float,
            dests: tuple[DestinationPlan, ...], hdests: tuple[DestinationPlan, ...]) -> None:
        ns, name = key_of(obj)
        share = clients.share if headers is not None and hdests != dests else 0.0
        plans.append(RoutePlan(ns, name, rps, dests, builder.per_pod, family, kind,
                               share, hdests if share else ()))

    for (ns, name), ing in sorted(state.ingresses.items()):
        if is_nginx_canary(ing):
            continue
        rps = parse_rps(annotations_of(ing), builder.default_rps, f"Ingress {ns}/{name}", builder.warn)
        dests = _nginx_destinations(builder, state, pods_by_ns, ing, None)
        hdests = _nginx_destinations(builder, state, pods_by_ns, ing, headers) if headers else dests
        add(ing, "Ingress", "nginx", rps, dests, hdests)

    for (ns, name), split in sorted(state.traffic_splits.items()):
        root, targets = split_targets(split)
        root_svc = state.services.get((ns, root))
        source = root_svc if root_svc is not None and RPS_ANNOTATION in annotations_of(root_svc) else split
        rps = parse_rps(annotations_of(source), builder.default_rps, f"TrafficSplit {ns}/{name}",
                        builder.warn)
        dests = _mesh_destinations(builder, state, pods_by_ns, targets)
        add(split, "TrafficSplit", "istio", rps, dests, dests)

    for (ns, name), route in sorted(state.http_routes.items()):
        rps = parse_rps(annotations_of(route), builder.default_rps, f"HTTPRoute {ns}/{name}",
                        builder.warn)
        dests = _mesh_destinations(builder, state, pods_by_ns, route_targets(route, None))
        hdests = (_mesh_destinations(builder, state, pods_by_ns, route_targets(route, headers))
                  if headers else dests)
        add(route, "HTTPRoute", "istio", rps, dests, hdests)
    return plans

"""Traffic routers beyond Istio: typed, validated ``trafficRouting`` sections and the
``setHeaderRoute`` / ``setMirrorRoute`` step payloads (Argo Rollouts' field names).

Every parse function appends errors naming the field (``<path>.<field> ...``) and never
raises; a section with errors parses to None, so nothing is written from half a config.

Field names:

- ``nginx``: ``stableIngress`` or ``stableIngresses`` (exactly one), ``annotationPrefix``
  (default ``nginx.ingress.kubernetes.io``), ``additionalIngressAnnotations`` (keys get the
  prefix unless they carry it), ``canaryIngressAnnotations`` (written as given).
- ``alb``: ``ingress`` or ``ingresses`` (exactly one), ``servicePort`` (required),
  ``rootService`` (default: the stable Service), ``annotationPrefix`` (default
  ``alb.ingress.kubernetes.io``), ``stickinessConfig`` {``enabled``, ``durationSeconds``}.
- ``smi``: ``rootService`` (default: the stable Service), ``trafficSplitName`` (default:
  the Rollout's name).
- ``gatewayAPI`` (built in here; Argo ships it as the gateway-api plugin, whose config
  names these are): ``httpRoute`` / ``httpRoutes``, ``grpcRoute`` / ``grpcRoutes``,
  ``tcpRoute`` / ``tcpRoutes``, ``namespace`` (default: the Rollout's). A single name is a
  string; a list holds ``{name, useHeaderRoutes}`` objects (``useHeaderRoutes``: the
  route receives the ``setHeaderRoute`` rules; a single ``httpRoute``/``grpcRoute`` does).
- ``managedRoutes``: ``[{name}]``, the routes steps may create, in precedence order.
- ``maxTrafficWeight``: the total weight (default 100).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from rollouts.api.readers import obj, opt_int, opt_str, required_str

DEFAULT_NGINX_PREFIX = "nginx.ingress.kubernetes.io"
DEFAULT_ALB_PREFIX = "alb.ingress.kubernetes.io"
STICKINESS_MAX_S = 604800  # the AWS TargetGroupStickinessConfig range is 1..7 days


@dataclass(frozen=True)
class NginxConfig:
    stable_ingresses: tuple[str, ...]
    annotation_prefix: str = DEFAULT_NGINX_PREFIX
    additional_ingress_annotations: tuple[tuple[str, str], ...] = ()
    canary_ingress_annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Stickiness:
    enabled: bool
    duration_seconds: int


@dataclass(frozen=True)
class ALBConfig:
    ingresses: tuple[str, ...]
    service_port: int
    root_service: str | None = None
    annotation_prefix: str = DEFAULT_ALB_PREFIX
    stickiness: Stickiness | None = None


@dataclass(frozen=True)
class SMIConfig:
    root_service: str | None = None
    traffic_split_name: str | None = None


@dataclass(frozen=True)
class GatewayRouteRef:
    name: str
    use_header_routes: bool = False


@dataclass(frozen=True)
class GatewayAPIConfig:
    http_routes: tuple[GatewayRouteRef, ...] = ()
    grpc_routes: tuple[GatewayRouteRef, ...] = ()
    tcp_routes: tuple[GatewayRouteRef, ...] = ()
    namespace: str | None = None


@dataclass(frozen=True)
class RoutersConfig:
    """The routers of ``trafficRouting`` other than Istio (each None when absent or invalid)."""

    nginx: NginxConfig | None = None
    alb: ALBConfig | None = None
    smi: SMIConfig | None = None
    gateway_api: GatewayAPIConfig | None = None
    managed_routes: tuple[str, ...] = ()
    max_traffic_weight: int | None = None

    @property
    def any(self) -> bool:
        return any(r is not None for r in (self.nginx, self.alb, self.smi, self.gateway_api))


@dataclass(frozen=True)
class StringMatch:
    """Exactly one of exact, prefix, regex (Argo's StringMatch)."""

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None


@dataclass(frozen=True)
class HeaderMatch:
    header_name: str
    header_value: StringMatch


@dataclass(frozen=True)
class HeaderRoute:
    """``setHeaderRoute``: requests matching every header go to the canary. No match: the
    step removes the route of that name."""

    name: str
    match: tuple[HeaderMatch, ...] = ()


@dataclass(frozen=True)
class RouteMatch:
    method: StringMatch | None = None
    path: StringMatch | None = None
    headers: tuple[tuple[str, StringMatch], ...] = ()


@dataclass(frozen=True)
class MirrorRoute:
    """``setMirrorRoute``: a copy of matching requests (``percentage`` of them, default
    100) goes to the canary. No match: the step removes the route of that name."""

    name: str
    match: tuple[RouteMatch, ...] = ()
    percentage: int = 100


# --- small typed readers -------------------------------------------------------------------


def _names(d: dict[str, Any], key: str, path: str, errors: list[str]) -> tuple[str, ...] | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        errors.append(f"{path}.{key} must be a list of names, got {v!r}")
        return None
    if len(set(v)) != len(v):
        errors.append(f"{path}.{key} names an object twice")
        return None
    return tuple(v)


def _one_of(d: dict[str, Any], single: str, many: str, path: str,
            errors: list[str]) -> tuple[str, ...] | None:
    one = opt_str(d, single, path, errors)
    lst = _names(d, many, path, errors)
    if one is not None and lst is not None:
        errors.append(f"{path}: set {single} or {many}, not both")
        return None
    if one is None and not lst:
        errors.append(f"{path}.{single} is required (or {path}.{many})")
        return None
    return (one,) if one is not None else lst


def _string_map(d: dict[str, Any], key: str, path: str,
                errors: list[str]) -> tuple[tuple[str, str], ...]:
    v = d.get(key)
    if v is None:
        return ()
    if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(x, str)
                                          for k, x in v.items()):
        errors.append(f"{path}.{key} must map strings to strings")
        return ()
    return tuple(sorted(v.items()))


def _prefix(d: dict[str, Any], default: str, path: str, errors: list[str]) -> str:
    p = opt_str(d, "annotationPrefix", path, errors) or default
    if "/" in p or " " in p:
        errors.append(f"{path}.annotationPrefix must be a DNS prefix without '/', got {p!r}")
        return default
    return p


# --- the routers ---------------------------------------------------------------------------


def parse_nginx(raw: Any, errors: list[str], *, path: str) -> NginxConfig | None:
    n = len(errors)
    d = obj(raw, path, errors)
    if d is None:
        return None
    ingresses = _one_of(d, "stableIngress", "stableIngresses", path, errors)
    prefix = _prefix(d, DEFAULT_NGINX_PREFIX, path, errors)
    additional = _string_map(d, "additionalIngressAnnotations", path, errors)
    canary = _string_map(d, "canaryIngressAnnotations", path, errors)
    if len(errors) > n or ingresses is None:
        return None
    return NginxConfig(ingresses, prefix, additional, canary)


def parse_alb(raw: Any, errors: list[str], *, path: str) -> ALBConfig | None:
    n = len(errors)
    d = obj(raw, path, errors)
    if d is None:
        return None
    ingresses = _one_of(d, "ingress", "ingresses", path, errors)
    port = opt_int(d, "servicePort", path, errors, 1, 65535)
    if port is None and d.get("servicePort") is None:
        errors.append(f"{path}.servicePort is required")
    root = opt_str(d, "rootService", path, errors)
    prefix = _prefix(d, DEFAULT_ALB_PREFIX, path, errors)
    sticky = None
    s = obj(d.get("stickinessConfig"), f"{path}.stickinessConfig", errors)
    if s is not None:
        sp = f"{path}.stickinessConfig"
        enabled = s.get("enabled", False)
        if not isinstance(enabled, bool):
            errors.append(f"{sp}.enabled must be true or false, got {enabled!r}")
        duration = opt_int(s, "durationSeconds", sp, errors, 1, STICKINESS_MAX_S)
        if enabled is True and duration is None and s.get("durationSeconds") is None:
            errors.append(f"{sp}.durationSeconds is required when enabled "
                          f"(1..{STICKINESS_MAX_S})")
        sticky = Stickiness(enabled is True, duration or 0)
    if len(errors) > n or ingresses is None or port is None:
        return None
    return ALBConfig(ingresses, port, root, prefix, sticky)


def parse_smi(raw: Any, errors: list[str], *, path: str) -> SMIConfig | None:
    n = len(errors)
    d = obj(raw, path, errors)
    if d is None:
        return None
    cfg = SMIConfig(opt_str(d, "rootService", path, errors),
                    opt_str(d, "trafficSplitName", path, errors))
    return cfg if len(errors) == n else None


def _route_refs(d: dict[str, Any], single: str, many: str, path: str, errors: list[str],
                *, header_default: bool) -> tuple[GatewayRouteRef, ...]:
    one = opt_str(d, single, path, errors)
    lst = d.get(many)
    if one is not None and lst is not None:
        errors.append(f"{path}: set {single} or {many}, not both")
        return ()
    if one is not None:
        return (GatewayRouteRef(one, header_default),)
    if lst is None:
        return ()
    if not isinstance(lst, list):
        errors.append(f"{path}.{many} must be a list")
        return ()
    refs: list[GatewayRouteRef] = []
    for i, item in enumerate(lst):
        p = f"{path}.{many}[{i}]"
        if not isinstance(item, dict):
            errors.append(f"{p} must be an object with a name")
            continue
        name = required_str(item, "name", p, errors)
        if name is None:
            continue
        use = item.get("useHeaderRoutes", False)
        if not isinstance(use, bool):
            errors.append(f"{p}.useHeaderRoutes must be true or false, got {use!r}")
            continue
        if any(r.name == name for r in refs):
            errors.append(f"{p}.name {name!r} is listed twice")
            continue
        refs.append(GatewayRouteRef(name, use))
    return tuple(refs)


def parse_gateway_api(raw: Any, errors: list[str], *, path: str) -> GatewayAPIConfig | None:
    n = len(errors)
    d = obj(raw, path, errors)
    if d is None:
        return None
    cfg = GatewayAPIConfig(
        http_routes=_route_refs(d, "httpRoute", "httpRoutes", path, errors, header_default=True),
        grpc_routes=_route_refs(d, "grpcRoute", "grpcRoutes", path, errors, header_default=True),
        tcp_routes=_route_refs(d, "tcpRoute", "tcpRoutes", path, errors, header_default=False),
        namespace=opt_str(d, "namespace", path, errors))
    if len(errors) > n:
        return None
    if not (cfg.http_routes or cfg.grpc_routes or cfg.tcp_routes):
        errors.append(f"{path} names no route: set httpRoute(s), grpcRoute(s) or tcpRoute(s)")
        return None
    return cfg


def parse_managed_routes(raw: Any, errors: list[str], *, path: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        errors.append(f"{path} must be a list of {{name}} objects")
        return ()
    names: list[str] = []
    for i, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            errors.append(f"{path}[{i}].name is required")
        elif name in names:
            errors.append(f"{path}[{i}].name {name!r} is listed twice")
        else:
            names.append(name)
    return tuple(names)


def parse_routers(tr: dict[str, Any], errors: list[str], *, path: str) -> RoutersConfig:
    """The non-Istio routers of one ``trafficRouting`` object (``path`` names it). Two
    routers writing one Ingress would undo each other's writes: an error."""
    cfg = RoutersConfig(
        nginx=parse_nginx(tr.get("nginx"), errors, path=f"{path}.nginx"),
        alb=parse_alb(tr.get("alb"), errors, path=f"{path}.alb"),
        smi=parse_smi(tr.get("smi"), errors, path=f"{path}.smi"),
        gateway_api=parse_gateway_api(tr.get("gatewayAPI"), errors, path=f"{path}.gatewayAPI"),
        managed_routes=parse_managed_routes(tr.get("managedRoutes"), errors,
                                            path=f"{path}.managedRoutes"),
        max_traffic_weight=opt_int(tr, "maxTrafficWeight", path, errors, 1, 2**31 - 1))
    if cfg.nginx is not None and cfg.alb is not None:
        both = sorted(set(cfg.nginx.stable_ingresses) & set(cfg.alb.ingresses))
        for name in both:
            errors.append(f"{path}: nginx and alb both name Ingress {name}; one router per Ingress")
        if both:
            return replace(cfg, nginx=None, alb=None)
    return cfg


# --- the step payloads ---------------------------------------------------------------------


def parse_string_match(raw: Any, errors: list[str], *, path: str) -> StringMatch | None:
    d = obj(raw, path, errors)
    if d is None:
        if raw is None:
            errors.append(f"{path} is required (one of exact, prefix, regex)")
        return None
    set_keys = [k for k in ("exact", "prefix", "regex") if d.get(k) not in (None, "")]
    if len(set_keys) != 1:
        errors.append(f"{path} must set exactly one of exact, prefix, regex")
        return None
    key = set_keys[0]
    v = d[key]
    if not isinstance(v, str):
        errors.append(f"{path}.{key} must be a string, got {v!r}")
        return None
    return StringMatch(**{key: v})


def _route_name(d: dict[str, Any], path: str, errors: list[str],
                managed: tuple[str, ...]) -> str | None:
    """A route step's name: required, and one of trafficRouting.managedRoutes."""
    name = required_str(d, "name", path, errors)
    if name is not None and name not in managed:
        errors.append(f"{path}.name {name!r} must be listed in trafficRouting.managedRoutes")
    return name


def _match_items(d: dict[str, Any], path: str, errors: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """A route step's ``match`` list: each object with its path (others are errors)."""
    raw_match = d.get("match")
    if raw_match is None:
        return []
    if not isinstance(raw_match, list):
        errors.append(f"{path}.match must be a list")
        return []
    items = ((f"{path}.match[{i}]", m) for i, m in enumerate(raw_match))
    return [(p, md) for p, m in items if (md := obj(m, p, errors)) is not None]


def parse_header_route(raw: Any, errors: list[str], *, path: str,
                       managed_routes: tuple[str, ...]) -> HeaderRoute | None:
    n = len(errors)
    d = obj(raw, path, errors)
    if d is None:
        return None
    name = _route_name(d, path, errors, managed_routes)
    matches: list[HeaderMatch] = []
    for p, md in _match_items(d, path, errors):
        header = required_str(md, "headerName", p, errors)
        value = parse_string_match(md.get("headerValue"), errors, path=f"{p}.headerValue")
        if header is not None and value is not None:
            matches.append(HeaderMatch(header, value))
    if len(errors) > n or name is None:
        return None
    return HeaderRoute(name, tuple(matches))


def parse_mirror_route(raw: Any, errors: list[str], *, path: str,
                       managed_routes: tuple[str, ...]) -> MirrorRoute | None:
    n = len(errors)
    d = obj(raw, path, errors)
    if d is None:
        return None
    name = _route_name(d, path, errors, managed_routes)
    percentage = opt_int(d, "percentage", path, errors, 0, 100)
    matches: list[RouteMatch] = []
    for p, md in _match_items(d, path, errors):
        method = (parse_string_match(md["method"], errors, path=f"{p}.method")
                  if md.get("method") is not None else None)
        mpath = (parse_string_match(md["path"], errors, path=f"{p}.path")
                 if md.get("path") is not None else None)
        headers: list[tuple[str, StringMatch]] = []
        hd = obj(md.get("headers"), f"{p}.headers", errors) or {}
        for h, hv in sorted(hd.items()):
            sm = parse_string_match(hv, errors, path=f"{p}.headers.{h}")
            if sm is not None:
                headers.append((h, sm))
        if method is None and mpath is None and not headers:
            errors.append(f"{p} must match a method, path or headers")
            continue
        matches.append(RouteMatch(method, mpath, tuple(headers)))
    if len(errors) > n or name is None:
        return None
    return MirrorRoute(name, tuple(matches), 100 if percentage is None else percentage)


def route_support(cfg: RoutersConfig) -> tuple[bool, bool]:
    """(a configured router beyond Istio expresses setHeaderRoute, one expresses
    setMirrorRoute): header routes on NGINX, ALB and the Gateway API, mirrors on the
    Gateway API (Istio expresses both)."""
    header = any(r is not None for r in (cfg.nginx, cfg.alb, cfg.gateway_api))
    return header, cfg.gateway_api is not None

"""The Rollout spec as typed, validated values (Argo Rollouts' field names and meaning).

``parse_spec`` never raises on a malformed object: it returns the errors a user must fix,
which the controller reports in the ``InvalidSpec`` condition. The CRD schema rejects most
of these already; this is the second line for objects created before the schema or
fields the schema cannot check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rollouts.api.constants import (
    DEFAULT_ABORT_SCALE_DOWN_DELAY_S,
    DEFAULT_PROGRESS_DEADLINE_S,
    DEFAULT_REVISION_HISTORY_LIMIT,
    DEFAULT_SCALE_DOWN_DELAY_S,
    POD_TEMPLATE_HASH_LABEL,
)
from rollouts.api.duration import parse_duration
from rollouts.api.readers import as_dict, bool_field, int_field, opt_str
from rollouts.api.routing import (
    HeaderRoute,
    MirrorRoute,
    RoutersConfig,
    parse_header_route,
    parse_mirror_route,
    parse_routers,
    route_support,
)
from rollouts.api.status import parse_time
from rollouts.api.unsupported import UNSUPPORTED_STEP_KINDS, unsupported_fields


@dataclass(frozen=True)
class CanaryScale:
    """Argo's ``setCanaryScale``: the canary's pod count apart from its traffic weight."""

    replicas: int | None = None  # an absolute pod count
    weight: int | None = None  # a percentage of spec.replicas
    match_traffic_weight: bool = False  # back to the pod count the traffic weight needs

    def describe(self) -> str:
        if self.match_traffic_weight:
            return "setCanaryScale matchTrafficWeight"
        if self.replicas is not None:
            return f"setCanaryScale replicas {self.replicas}"
        return f"setCanaryScale weight {self.weight}"


@dataclass(frozen=True)
class Step:
    index: int
    set_weight: int | None = None
    # pause: None when the step is not a pause; math.inf for ``pause: {}`` (until promoted)
    pause_seconds: float | None = None
    analysis: dict[str, Any] | None = None
    set_canary_scale: CanaryScale | None = None
    experiment: dict[str, Any] | None = None
    set_header_route: HeaderRoute | None = None
    set_mirror_route: MirrorRoute | None = None

    @property
    def is_pause(self) -> bool:
        return self.pause_seconds is not None

    def describe(self) -> str:
        if self.set_weight is not None:
            return f"setWeight {self.set_weight}"
        if self.pause_seconds is not None:
            return "pause (until promoted)" if math.isinf(self.pause_seconds) else (
                f"pause {self.pause_seconds:g}s")
        if self.set_canary_scale is not None:
            return self.set_canary_scale.describe()
        if self.experiment is not None:
            return "experiment"
        if self.set_header_route is not None:
            return f"setHeaderRoute {self.set_header_route.name}" + (
                "" if self.set_header_route.match else " (removed)")
        if self.set_mirror_route is not None:
            return f"setMirrorRoute {self.set_mirror_route.name}" + (
                "" if self.set_mirror_route.match else " (removed)")
        return "analysis"


@dataclass(frozen=True)
class PodMetadata:
    """Ephemeral labels and annotations on the pods of one role (canary/stable, active/preview)."""

    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AntiAffinity:
    """Argo's ``antiAffinity``: keep new pods off the nodes of the previous revision's pods."""

    required: bool = False  # requiredDuringSchedulingIgnoredDuringExecution
    weight: int = 1  # preferredDuringSchedulingIgnoredDuringExecution.weight (1..100)


@dataclass(frozen=True)
class TLSRouteRef:
    """A ``tls[]`` route of a VirtualService, found by its match (Argo's ``tlsRoutes``)."""

    port: int = 0  # 0: the route's match names no port
    sni_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class TCPRouteRef:
    """A ``tcp[]`` route of a VirtualService, found by its match port (Argo's ``tcpRoutes``)."""

    port: int = 0


@dataclass(frozen=True)
class VirtualServiceRef:
    name: str
    routes: tuple[str, ...] = ()
    tls_routes: tuple[TLSRouteRef, ...] = ()
    tcp_routes: tuple[TCPRouteRef, ...] = ()


@dataclass(frozen=True)
class DestinationRuleRef:
    name: str
    canary_subset: str
    stable_subset: str


@dataclass(frozen=True)
class IstioRouting:
    virtual_services: tuple[VirtualServiceRef, ...]
    destination_rule: DestinationRuleRef | None = None


@dataclass(frozen=True)
class CanaryStrategy:
    canary_service: str | None
    stable_service: str | None
    steps: tuple[Step, ...]
    # None: no traffic router; the canary's share is its share of the pods (basic canary)
    istio: IstioRouting | None
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"
    scale_down_delay_seconds: int = DEFAULT_SCALE_DOWN_DELAY_S
    abort_scale_down_delay_seconds: int = DEFAULT_ABORT_SCALE_DOWN_DELAY_S
    dynamic_stable_scale: bool = False
    background_analysis: dict[str, Any] | None = None
    canary_metadata: PodMetadata | None = None
    stable_metadata: PodMetadata | None = None
    anti_affinity: AntiAffinity | None = None
    # the routers beyond Istio (NGINX, ALB, SMI, Gateway API); several may serve one Rollout
    routers: RoutersConfig = field(default_factory=RoutersConfig)

    @property
    def traffic_routed(self) -> bool:
        return self.istio is not None or self.routers.any


@dataclass(frozen=True)
class BlueGreenStrategy:
    active_service: str
    preview_service: str | None = None
    auto_promotion_enabled: bool = True
    auto_promotion_seconds: int = 0
    preview_replica_count: int | None = None
    scale_down_delay_seconds: int = DEFAULT_SCALE_DOWN_DELAY_S
    scale_down_delay_revision_limit: int | None = None
    abort_scale_down_delay_seconds: int = DEFAULT_ABORT_SCALE_DOWN_DELAY_S
    pre_promotion_analysis: dict[str, Any] | None = None
    post_promotion_analysis: dict[str, Any] | None = None
    active_metadata: PodMetadata | None = None
    preview_metadata: PodMetadata | None = None
    anti_affinity: AntiAffinity | None = None


@dataclass(frozen=True)
class WorkloadRef:
    kind: str
    name: str
    api_version: str = "apps/v1"


@dataclass(frozen=True)
class RolloutSpec:
    replicas: int
    selector: dict[str, str]
    template: dict[str, Any] | None
    workload_ref: WorkloadRef | None
    # exactly one of the two strategies is set
    canary: CanaryStrategy | None
    min_ready_seconds: int = 0
    revision_history_limit: int = DEFAULT_REVISION_HISTORY_LIMIT
    paused: bool = False
    progress_deadline_seconds: int = DEFAULT_PROGRESS_DEADLINE_S
    progress_deadline_abort: bool = False
    restart_at: str | None = None
    blue_green: BlueGreenStrategy | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def canary_strategy(self) -> CanaryStrategy:
        """The canary strategy, for code that runs only for it."""
        if self.canary is None:
            raise ValueError("not a canary rollout")
        return self.canary

    @property
    def scale_down_delay_seconds(self) -> int:
        s = self.canary or self.blue_green
        return s.scale_down_delay_seconds if s is not None else DEFAULT_SCALE_DOWN_DELAY_S


def _int_or_percent(d: dict[str, Any], key: str, default: int | str, path: str,
                    errors: list[str]) -> int | str:
    v = d.get(key, default)
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    if isinstance(v, str) and v.endswith("%") and v[:-1].isascii() and v[:-1].isdigit():
        return v
    errors.append(f"{path}.{key} must be a non-negative integer or a percentage, got {v!r}")
    return default


def _parse_steps(raw: Any, errors: list[str], managed_routes: tuple[str, ...] = ()) -> tuple[Step, ...]:
    path = "spec.strategy.canary.steps"
    if raw is None:
        return ()
    if not isinstance(raw, list):
        errors.append(f"{path} must be a list")
        return ()
    steps: list[Step] = []
    for i, s in enumerate(raw):
        p = f"{path}[{i}]"
        if not isinstance(s, dict):
            errors.append(f"{p} must be an object")
            continue
        kinds = [k for k in STEP_KINDS if k in s]
        unknown = [k for k in s if k not in STEP_KINDS]
        if unknown:
            # Argo's step kinds we lack are reported (by name) with the other gaps
            other = sorted(str(k) for k in unknown if k not in UNSUPPORTED_STEP_KINDS)
            if other:
                errors.append(f"{p}: unknown step kind {', '.join(other)}")
            continue
        if len(kinds) != 1:
            errors.append(f"{p} must have exactly one of {', '.join(STEP_KINDS)}")
            continue
        if "setWeight" in s:
            if s["setWeight"] is None:
                errors.append(f"{p}.setWeight must be an integer 0..100, got null")
                continue
            steps.append(Step(i, set_weight=int_field(s, "setWeight", 0, errors, p, 0, 100)))
        elif "pause" in s:
            pause = as_dict(s["pause"], f"{p}.pause", errors)
            if pause.get("duration") is None:
                steps.append(Step(i, pause_seconds=math.inf))
            else:
                try:
                    steps.append(Step(i, pause_seconds=parse_duration(pause["duration"])))
                except ValueError as e:
                    errors.append(f"{p}.pause.duration: {e}")
        elif "setCanaryScale" in s:
            scale = _canary_scale(s["setCanaryScale"], f"{p}.setCanaryScale", errors)
            if scale is not None:
                steps.append(Step(i, set_canary_scale=scale))
        elif "setHeaderRoute" in s:
            hr = parse_header_route(s["setHeaderRoute"], errors, path=f"{p}.setHeaderRoute",
                                    managed_routes=managed_routes)
            if hr is not None:
                steps.append(Step(i, set_header_route=hr))
        elif "setMirrorRoute" in s:
            mr = parse_mirror_route(s["setMirrorRoute"], errors, path=f"{p}.setMirrorRoute",
                                    managed_routes=managed_routes)
            if mr is not None:
                steps.append(Step(i, set_mirror_route=mr))
        elif "experiment" in s:
            exp = _experiment(s["experiment"], f"{p}.experiment", errors)
            if exp is not None:
                steps.append(Step(i, experiment=exp))
        else:
            steps.append(Step(i, analysis=as_dict(s["analysis"], f"{p}.analysis", errors)))
    return tuple(steps)


STEP_KINDS = ("setWeight", "pause", "analysis", "setCanaryScale", "experiment", "setHeaderRoute",
              "setMirrorRoute")


def _canary_scale(raw: Any, p: str, errors: list[str]) -> CanaryScale | None:
    d = as_dict(raw, p, errors)
    set_keys = [k for k in ("replicas", "weight", "matchTrafficWeight") if d.get(k) is not None]
    if len(set_keys) != 1:
        errors.append(f"{p} must set exactly one of replicas, weight, matchTrafficWeight")
        return None
    n = len(errors)
    if "replicas" in set_keys:
        scale = CanaryScale(replicas=int_field(d, "replicas", 0, errors, p))
    elif "weight" in set_keys:
        scale = CanaryScale(weight=int_field(d, "weight", 0, errors, p, 0, 100))
    else:
        if d["matchTrafficWeight"] is not True:
            errors.append(f"{p}.matchTrafficWeight must be true when set")
        scale = CanaryScale(match_traffic_weight=True)
    return scale if len(errors) == n else None


def _experiment(raw: Any, p: str, errors: list[str]) -> dict[str, Any] | None:
    """The experiment step is kept as written; here only what would make it unrunnable."""
    d = as_dict(raw, p, errors)
    n = len(errors)
    templates = d.get("templates")
    if not isinstance(templates, list) or not templates:
        errors.append(f"{p}.templates must be a non-empty list")
        templates = []
    names: set[str] = set()
    for j, t in enumerate(templates):
        tp = f"{p}.templates[{j}]"
        if not isinstance(t, dict):
            errors.append(f"{tp} must be an object")
            continue
        name = t.get("name")
        if not isinstance(name, str) or not name:
            errors.append(f"{tp}.name is required")
        elif name in names:
            errors.append(f"{tp}.name {name!r} is used twice")
        else:
            names.add(name)
        if t.get("specRef") not in ("stable", "canary"):
            errors.append(f"{tp}.specRef must be stable or canary, got {t.get('specRef')!r}")
        if t.get("replicas") is not None:
            int_field(t, "replicas", 1, errors, tp)
        if t.get("weight") is not None:
            int_field(t, "weight", 0, errors, tp, 0, 100)
    if d.get("duration") is not None:
        try:
            parse_duration(d["duration"])
        except ValueError as e:
            errors.append(f"{p}.duration: {e}")
    analyses = d.get("analyses")
    if analyses is not None:
        if not isinstance(analyses, list):
            errors.append(f"{p}.analyses must be a list")
        else:
            for j, a in enumerate(analyses):
                ap = f"{p}.analyses[{j}]"
                if not isinstance(a, dict) or not a.get("name") or not (
                        a.get("templateName") or a.get("clusterScope")):
                    errors.append(f"{ap} needs name and templateName")
    return d if len(errors) == n else None


def _metadata(raw: Any, p: str, errors: list[str]) -> PodMetadata | None:
    if raw is None:
        return None
    d = as_dict(raw, p, errors)
    out: dict[str, dict[str, str]] = {}
    for key in ("labels", "annotations"):
        m = as_dict(d.get(key), f"{p}.{key}", errors)
        bad = [k for k, v in m.items() if not isinstance(v, str)]
        if bad:
            errors.append(f"{p}.{key} values must be strings (see {', '.join(map(str, bad))})")
        out[key] = {str(k): v for k, v in m.items() if isinstance(v, str)}
    return PodMetadata(out["labels"], out["annotations"])


def _anti_affinity(raw: Any, p: str, errors: list[str]) -> AntiAffinity | None:
    if raw is None:
        return None
    d = as_dict(raw, p, errors)
    pref = d.get("preferredDuringSchedulingIgnoredDuringExecution")
    req = d.get("requiredDuringSchedulingIgnoredDuringExecution")
    if (pref is None) == (req is None):
        errors.append(f"{p}: set exactly one of preferredDuringSchedulingIgnoredDuringExecution "
                      "and requiredDuringSchedulingIgnoredDuringExecution")
        return None
    if req is not None:
        return AntiAffinity(required=True)
    pd = as_dict(pref, f"{p}.preferredDuringSchedulingIgnoredDuringExecution", errors)
    return AntiAffinity(weight=int_field(pd, "weight", 1, errors,
                                    f"{p}.preferredDuringSchedulingIgnoredDuringExecution", 1, 100))


def _route_list(rd: dict[str, Any], key: str, rp: str, errors: list[str]) -> list[dict[str, Any]]:
    raw = rd.get(key)
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        errors.append(f"{rp}.{key} must be a list of objects")
        return []
    return raw


def _tls_routes(rd: dict[str, Any], rp: str, errors: list[str]) -> tuple[TLSRouteRef, ...]:
    out = []
    for i, r in enumerate(_route_list(rd, "tlsRoutes", rp, errors)):
        p = f"{rp}.tlsRoutes[{i}]"
        hosts = r.get("sniHosts") or []
        if not isinstance(hosts, list) or not all(isinstance(x, str) and x for x in hosts):
            errors.append(f"{p}.sniHosts must be a list of host names")
            continue
        out.append(TLSRouteRef(int_field(r, "port", 0, errors, p, 0, 65535), tuple(hosts)))
    return tuple(out)


def _tcp_routes(rd: dict[str, Any], rp: str, errors: list[str]) -> tuple[TCPRouteRef, ...]:
    return tuple(TCPRouteRef(int_field(r, "port", 0, errors, f"{rp}.tcpRoutes[{i}]", 0, 65535))
                 for i, r in enumerate(_route_list(rd, "tcpRoutes", rp, errors)))


def _parse_istio(canary: dict[str, Any], errors: list[str]) -> IstioRouting:
    """``trafficRouting.istio`` (the caller checks it is set)."""
    path = "spec.strategy.canary.trafficRouting"
    tr = as_dict(canary.get("trafficRouting"), path, errors)
    istio = as_dict(tr.get("istio"), f"{path}.istio", errors)
    refs: list[VirtualServiceRef] = []
    single, many = istio.get("virtualService"), istio.get("virtualServices")
    if (single is None) == (many is None):
        errors.append(f"{path}.istio: set exactly one of virtualService and virtualServices")
    if many is not None and (not isinstance(many, list) or not many):
        errors.append(f"{path}.istio.virtualServices must be a non-empty list")
    raw_refs = [single] if single is not None else (many if isinstance(many, list) else [])
    for j, r in enumerate(raw_refs):
        rp = f"{path}.istio.virtualService" if single is not None else f"{path}.istio.virtualServices[{j}]"
        rd = as_dict(r, rp, errors)
        name = opt_str(rd, "name", rp, errors)
        routes = rd.get("routes") or []
        if not name:
            errors.append(f"{rp}.name is required")
            continue
        if not isinstance(routes, list) or not all(isinstance(x, str) and x for x in routes):
            errors.append(f"{rp}.routes must be a list of route names")
            routes = []
        refs.append(VirtualServiceRef(name, tuple(routes), _tls_routes(rd, rp, errors),
                                      _tcp_routes(rd, rp, errors)))
    dr: DestinationRuleRef | None = None
    if istio.get("destinationRule") is not None:
        dp = f"{path}.istio.destinationRule"
        dd = as_dict(istio["destinationRule"], dp, errors)
        n, c, s = (opt_str(dd, k, dp, errors) for k in ("name", "canarySubsetName", "stableSubsetName"))
        if not (n and c and s):
            errors.append(f"{dp} needs name, canarySubsetName and stableSubsetName")
        elif c == s:
            errors.append(f"{dp}: canarySubsetName and stableSubsetName must differ")
        else:
            dr = DestinationRuleRef(n, c, s)
    return IstioRouting(tuple(refs), dr)


def _parse_canary(canary_raw: dict[str, Any], errors: list[str]) -> CanaryStrategy:
    cp = "spec.strategy.canary"
    tr = as_dict(canary_raw.get("trafficRouting"), f"{cp}.trafficRouting", errors)
    istio = _parse_istio(canary_raw, errors) if tr.get("istio") is not None else None
    routers = parse_routers(tr, errors, path=f"{cp}.trafficRouting")
    steps = _parse_steps(canary_raw.get("steps"), errors, routers.managed_routes)
    header_ok, mirror_ok = route_support(routers)
    for st in steps:
        kind = ("setHeaderRoute" if st.set_header_route is not None
                else "setMirrorRoute" if st.set_mirror_route is not None else None)
        header = kind == "setHeaderRoute"
        if kind is not None and istio is None and not (header_ok if header else mirror_ok):
            which = "istio, nginx, alb or gatewayAPI" if header else "istio or gatewayAPI"
            errors.append(f"{cp}.steps[{st.index}].{kind} needs a traffic router that can "
                          f"express it ({which})")
    routed = canary_raw.get("trafficRouting") is not None
    if istio is None and not routers.any and routed and not unsupported_fields(
            {"strategy": {"canary": {"trafficRouting": tr}}}) and not any(
            tr.get(k) is not None for k in ("nginx", "alb", "smi", "gatewayAPI")):
        errors.append(f"{cp}.trafficRouting names no traffic router: set istio, nginx, alb, smi "
                      "or gatewayAPI, or remove trafficRouting for a canary weighted by pod counts")
    canary_svc = opt_str(canary_raw, "canaryService", cp, errors)
    stable_svc = opt_str(canary_raw, "stableService", cp, errors)
    named = [k for k, v in (("nginx", routers.nginx), ("alb", routers.alb), ("smi", routers.smi),
                            ("gatewayAPI", routers.gateway_api)) if v is not None]
    if named and not (canary_svc and stable_svc):
        errors.append(f"{cp}: trafficRouting.{named[0]} needs canaryService and stableService")
    if istio is not None and istio.destination_rule is None and not (canary_svc and stable_svc):
        errors.append(f"{cp}: host-level splitting needs canaryService and stableService "
                      "(or set trafficRouting.istio.destinationRule for subset-level splitting)")
    if canary_svc and canary_svc == stable_svc:
        errors.append(f"{cp}: canaryService and stableService must be different Services")
    if istio is None and not routers.any and bool_field(canary_raw, "dynamicStableScale", [], cp):
        errors.append(f"{cp}.dynamicStableScale needs trafficRouting (as in Argo): without a router "
                      "the stable's pods are the traffic split")
    if istio is None and not routers.any:
        for st in steps:
            if st.set_canary_scale is not None:
                errors.append(f"{cp}.steps[{st.index}].setCanaryScale needs trafficRouting: "
                              "without a router the canary's share of traffic is its share of pods")
    return CanaryStrategy(
        canary_service=canary_svc,
        stable_service=stable_svc,
        steps=steps,
        istio=istio,
        max_surge=_int_or_percent(canary_raw, "maxSurge", "25%", cp, errors),
        max_unavailable=_int_or_percent(canary_raw, "maxUnavailable", "25%", cp, errors),
        scale_down_delay_seconds=int_field(canary_raw, "scaleDownDelaySeconds",
                                      DEFAULT_SCALE_DOWN_DELAY_S, errors, cp),
        abort_scale_down_delay_seconds=int_field(canary_raw, "abortScaleDownDelaySeconds",
                                            DEFAULT_ABORT_SCALE_DOWN_DELAY_S, errors, cp),
        dynamic_stable_scale=bool_field(canary_raw, "dynamicStableScale", errors, cp),
        background_analysis=canary_raw.get("analysis"),
        canary_metadata=_metadata(canary_raw.get("canaryMetadata"), f"{cp}.canaryMetadata", errors),
        stable_metadata=_metadata(canary_raw.get("stableMetadata"), f"{cp}.stableMetadata", errors),
        anti_affinity=_anti_affinity(canary_raw.get("antiAffinity"), f"{cp}.antiAffinity", errors),
        routers=routers,
    )


def _parse_blue_green(raw: dict[str, Any], replicas: int, errors: list[str]) -> BlueGreenStrategy:
    bp = "spec.strategy.blueGreen"
    active = opt_str(raw, "activeService", bp, errors)
    preview = opt_str(raw, "previewService", bp, errors)
    if not active:
        errors.append(f"{bp}.activeService is required")
    if active and active == preview:
        errors.append(f"{bp}: activeService and previewService must be different Services")
    preview_count: int | None = None
    if raw.get("previewReplicaCount") is not None:
        preview_count = int_field(raw, "previewReplicaCount", 0, errors, bp)
        if preview_count > replicas:
            errors.append(f"{bp}.previewReplicaCount ({preview_count}) must not exceed "
                          f"spec.replicas ({replicas})")
    limit: int | None = None
    if raw.get("scaleDownDelayRevisionLimit") is not None:
        limit = int_field(raw, "scaleDownDelayRevisionLimit", 0, errors, bp)
    auto = raw.get("autoPromotionEnabled", True)
    if not isinstance(auto, bool):
        errors.append(f"{bp}.autoPromotionEnabled must be true or false, got {auto!r}")
        auto = True
    analyses = {}
    for key in ("prePromotionAnalysis", "postPromotionAnalysis"):
        v = raw.get(key)
        analyses[key] = as_dict(v, f"{bp}.{key}", errors) if v is not None else None
    return BlueGreenStrategy(
        active_service=active or "",
        preview_service=preview,
        auto_promotion_enabled=auto,
        auto_promotion_seconds=int_field(raw, "autoPromotionSeconds", 0, errors, bp),
        preview_replica_count=preview_count,
        scale_down_delay_seconds=int_field(raw, "scaleDownDelaySeconds", DEFAULT_SCALE_DOWN_DELAY_S,
                                      errors, bp),
        scale_down_delay_revision_limit=limit,
        abort_scale_down_delay_seconds=int_field(raw, "abortScaleDownDelaySeconds",
                                            DEFAULT_ABORT_SCALE_DOWN_DELAY_S, errors, bp),
        pre_promotion_analysis=analyses["prePromotionAnalysis"],
        post_promotion_analysis=analyses["postPromotionAnalysis"],
        active_metadata=_metadata(raw.get("activeMetadata"), f"{bp}.activeMetadata", errors),
        preview_metadata=_metadata(raw.get("previewMetadata"), f"{bp}.previewMetadata", errors),
        anti_affinity=_anti_affinity(raw.get("antiAffinity"), f"{bp}.antiAffinity", errors),
    )


def _role_metadata(canary: CanaryStrategy | None, bg: BlueGreenStrategy | None
                   ) -> list[tuple[str, PodMetadata]]:
    out = []
    if canary is not None:
        for name, md in (("canaryMetadata", canary.canary_metadata),
                         ("stableMetadata", canary.stable_metadata)):
            if md is not None:
                out.append((f"spec.strategy.canary.{name}", md))
    if bg is not None:
        for name, md in (("activeMetadata", bg.active_metadata), ("previewMetadata", bg.preview_metadata)):
            if md is not None:
                out.append((f"spec.strategy.blueGreen.{name}", md))
    return out


def parse_selector(raw: Any, errors: list[str]) -> dict[str, str]:
    sel = as_dict(raw, "spec.selector", errors)  # matchExpressions: a gap (unsupported.py)
    labels = as_dict(sel.get("matchLabels"), "spec.selector.matchLabels", errors)
    if not labels:
        errors.append("spec.selector.matchLabels is required and must not be empty")
    return {str(k): str(v) for k, v in labels.items()}


def parse_spec(raw_spec: Any) -> tuple[RolloutSpec | None, list[str]]:
    """Typed spec and the list of errors; the spec is None when errors is not empty."""
    errors: list[str] = []
    spec = as_dict(raw_spec, "spec", errors)
    errors += unsupported_fields(spec)
    replicas = int_field(spec, "replicas", 1, errors, "spec")
    selector = parse_selector(spec.get("selector"), errors)
    template = spec.get("template")
    wref: WorkloadRef | None = None
    if spec.get("workloadRef") is not None:
        wr = as_dict(spec["workloadRef"], "spec.workloadRef", errors)
        kind, name = wr.get("kind"), wr.get("name")
        if kind != "Deployment" or not isinstance(name, str) or not name:
            errors.append("spec.workloadRef must name a Deployment (kind: Deployment, name: ...)")
        else:
            wref = WorkloadRef(kind, name, str(wr.get("apiVersion") or "apps/v1"))
    if (template is None) == (wref is None):
        errors.append("set exactly one of spec.template and spec.workloadRef")
    if template is not None:
        tmpl = as_dict(template, "spec.template", errors)
        labels = as_dict(as_dict(tmpl.get("metadata"), "spec.template.metadata", errors).get("labels"),
                       "spec.template.metadata.labels", errors)
        missing = {k: v for k, v in selector.items() if labels.get(k) != v}
        if selector and missing:
            errors.append(
                "spec.selector does not match spec.template.metadata.labels "
                f"(missing or different: {', '.join(f'{k}={v}' for k, v in sorted(missing.items()))})")
        if not as_dict(tmpl.get("spec"), "spec.template.spec", errors).get("containers"):
            errors.append("spec.template.spec.containers must not be empty")
    strategy = as_dict(spec.get("strategy"), "spec.strategy", errors)
    canary: CanaryStrategy | None = None
    blue_green: BlueGreenStrategy | None = None
    if ("canary" in strategy) == ("blueGreen" in strategy):
        errors.append("spec.strategy: set exactly one of canary and blueGreen")
    if "canary" in strategy:
        canary = _parse_canary(as_dict(strategy.get("canary"), "spec.strategy.canary", errors), errors)
    elif "blueGreen" in strategy:
        blue_green = _parse_blue_green(
            as_dict(strategy.get("blueGreen"), "spec.strategy.blueGreen", errors), replicas, errors)
    restart_at = spec.get("restartAt")
    if restart_at is not None and parse_time(restart_at) is None:
        errors.append(f"spec.restartAt must be an RFC 3339 time, got {restart_at!r}")
        restart_at = None
    for path, md in _role_metadata(canary, blue_green):
        clash = sorted(k for k in md.labels if k in selector or k == POD_TEMPLATE_HASH_LABEL)
        if clash:
            errors.append(f"{path}.labels must not set the selector's or the controller's labels "
                          f"({', '.join(clash)})")
    result = RolloutSpec(
        replicas=replicas,
        selector=selector,
        template=template if isinstance(template, dict) else None,
        workload_ref=wref,
        canary=canary,
        blue_green=blue_green,
        min_ready_seconds=int_field(spec, "minReadySeconds", 0, errors, "spec"),
        revision_history_limit=int_field(spec, "revisionHistoryLimit", DEFAULT_REVISION_HISTORY_LIMIT,
                                    errors, "spec"),
        paused=bool_field(spec, "paused", errors, "spec"),
        progress_deadline_seconds=int_field(spec, "progressDeadlineSeconds",
                                       DEFAULT_PROGRESS_DEADLINE_S, errors, "spec", lo=1),
        progress_deadline_abort=bool_field(spec, "progressDeadlineAbort", errors, "spec"),
        restart_at=restart_at,
        raw=spec,
    )
    return (None, errors) if errors else (result, [])

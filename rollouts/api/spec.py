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
)
from rollouts.api.duration import parse_duration
from rollouts.api.status import parse_time
from rollouts.api.unsupported import UNSUPPORTED_STEP_KINDS, unsupported_fields

INT32_MAX = 2**31 - 1  # every integer field is an int32 in the CRD (and in Argo)


@dataclass(frozen=True)
class Step:
    index: int
    set_weight: int | None = None
    # pause: None when the step is not a pause; math.inf for ``pause: {}`` (until promoted)
    pause_seconds: float | None = None
    analysis: dict[str, Any] | None = None

    @property
    def is_pause(self) -> bool:
        return self.pause_seconds is not None

    def describe(self) -> str:
        if self.set_weight is not None:
            return f"setWeight {self.set_weight}"
        if self.pause_seconds is not None:
            return "pause (until promoted)" if math.isinf(self.pause_seconds) else (
                f"pause {self.pause_seconds:g}s")
        return "analysis"


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
    istio: IstioRouting
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"
    scale_down_delay_seconds: int = DEFAULT_SCALE_DOWN_DELAY_S
    abort_scale_down_delay_seconds: int = DEFAULT_ABORT_SCALE_DOWN_DELAY_S
    dynamic_stable_scale: bool = False
    background_analysis: dict[str, Any] | None = None


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
    canary: CanaryStrategy
    min_ready_seconds: int = 0
    revision_history_limit: int = DEFAULT_REVISION_HISTORY_LIMIT
    paused: bool = False
    progress_deadline_seconds: int = DEFAULT_PROGRESS_DEADLINE_S
    progress_deadline_abort: bool = False
    restart_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _int(d: dict[str, Any], key: str, default: int, errors: list[str], path: str,
         lo: int = 0, hi: int = INT32_MAX) -> int:
    v = d.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        errors.append(f"{path}.{key} must be an integer, got {v!r}")
        return default
    if v < lo or v > hi:
        rng = f">= {lo}" if v < lo and hi == INT32_MAX else f"{lo}..{hi}"
        errors.append(f"{path}.{key} must be {rng}, got {v}")
        return default
    return v


def _bool(d: dict[str, Any], key: str, errors: list[str], path: str) -> bool:
    v = d.get(key, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        errors.append(f"{path}.{key} must be true or false, got {v!r}")
        return False
    return v


def _dict(v: Any, path: str, errors: list[str]) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        errors.append(f"{path} must be an object, got {type(v).__name__}")
        return {}
    return v


def _str(d: dict[str, Any], key: str, path: str, errors: list[str]) -> str | None:
    v = d.get(key)
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        errors.append(f"{path}.{key} must be a string, got {v!r}")
        return None
    return v


def _int_or_percent(d: dict[str, Any], key: str, default: int | str, path: str,
                    errors: list[str]) -> int | str:
    v = d.get(key, default)
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    if isinstance(v, str) and v.endswith("%") and v[:-1].isascii() and v[:-1].isdigit():
        return v
    errors.append(f"{path}.{key} must be a non-negative integer or a percentage, got {v!r}")
    return default


def _parse_steps(raw: Any, errors: list[str]) -> tuple[Step, ...]:
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
        kinds = [k for k in ("setWeight", "pause", "analysis") if k in s]
        unknown = [k for k in s if k not in ("setWeight", "pause", "analysis")]
        if unknown:
            # Argo's step kinds we lack are reported (by name) with the other gaps
            other = sorted(str(k) for k in unknown if k not in UNSUPPORTED_STEP_KINDS)
            if other:
                errors.append(f"{p}: unknown step kind {', '.join(other)}")
            continue
        if len(kinds) != 1:
            errors.append(f"{p} must have exactly one of setWeight, pause, analysis")
            continue
        if "setWeight" in s:
            if s["setWeight"] is None:
                errors.append(f"{p}.setWeight must be an integer 0..100, got null")
                continue
            steps.append(Step(i, set_weight=_int(s, "setWeight", 0, errors, p, 0, 100)))
        elif "pause" in s:
            pause = _dict(s["pause"], f"{p}.pause", errors)
            if pause.get("duration") is None:
                steps.append(Step(i, pause_seconds=math.inf))
            else:
                try:
                    steps.append(Step(i, pause_seconds=parse_duration(pause["duration"])))
                except ValueError as e:
                    errors.append(f"{p}.pause.duration: {e}")
        else:
            steps.append(Step(i, analysis=_dict(s["analysis"], f"{p}.analysis", errors)))
    return tuple(steps)


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
        out.append(TLSRouteRef(_int(r, "port", 0, errors, p, 0, 65535), tuple(hosts)))
    return tuple(out)


def _tcp_routes(rd: dict[str, Any], rp: str, errors: list[str]) -> tuple[TCPRouteRef, ...]:
    return tuple(TCPRouteRef(_int(r, "port", 0, errors, f"{rp}.tcpRoutes[{i}]", 0, 65535))
                 for i, r in enumerate(_route_list(rd, "tcpRoutes", rp, errors)))


def _parse_istio(canary: dict[str, Any], errors: list[str]) -> IstioRouting:
    path = "spec.strategy.canary.trafficRouting"
    tr = _dict(canary.get("trafficRouting"), path, errors)
    istio = _dict(tr.get("istio"), f"{path}.istio", errors)
    if tr.get("istio") is None:
        errors.append(f"{path}.istio is required: this controller routes traffic through Istio")
        return IstioRouting(())
    refs: list[VirtualServiceRef] = []
    single, many = istio.get("virtualService"), istio.get("virtualServices")
    if (single is None) == (many is None):
        errors.append(f"{path}.istio: set exactly one of virtualService and virtualServices")
    if many is not None and (not isinstance(many, list) or not many):
        errors.append(f"{path}.istio.virtualServices must be a non-empty list")
    raw_refs = [single] if single is not None else (many if isinstance(many, list) else [])
    for j, r in enumerate(raw_refs):
        rp = f"{path}.istio.virtualService" if single is not None else f"{path}.istio.virtualServices[{j}]"
        rd = _dict(r, rp, errors)
        name = _str(rd, "name", rp, errors)
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
        dd = _dict(istio["destinationRule"], dp, errors)
        n, c, s = (_str(dd, k, dp, errors) for k in ("name", "canarySubsetName", "stableSubsetName"))
        if not (n and c and s):
            errors.append(f"{dp} needs name, canarySubsetName and stableSubsetName")
        elif c == s:
            errors.append(f"{dp}: canarySubsetName and stableSubsetName must differ")
        else:
            dr = DestinationRuleRef(n, c, s)
    return IstioRouting(tuple(refs), dr)


def parse_selector(raw: Any, errors: list[str]) -> dict[str, str]:
    sel = _dict(raw, "spec.selector", errors)  # matchExpressions: a gap (unsupported.py)
    labels = _dict(sel.get("matchLabels"), "spec.selector.matchLabels", errors)
    if not labels:
        errors.append("spec.selector.matchLabels is required and must not be empty")
    return {str(k): str(v) for k, v in labels.items()}


def parse_spec(raw_spec: Any) -> tuple[RolloutSpec | None, list[str]]:
    """Typed spec and the list of errors; the spec is None when errors is not empty."""
    errors: list[str] = []
    spec = _dict(raw_spec, "spec", errors)
    errors += unsupported_fields(spec)
    replicas = _int(spec, "replicas", 1, errors, "spec")
    selector = parse_selector(spec.get("selector"), errors)
    template = spec.get("template")
    wref: WorkloadRef | None = None
    if spec.get("workloadRef") is not None:
        wr = _dict(spec["workloadRef"], "spec.workloadRef", errors)
        kind, name = wr.get("kind"), wr.get("name")
        if kind != "Deployment" or not isinstance(name, str) or not name:
            errors.append("spec.workloadRef must name a Deployment (kind: Deployment, name: ...)")
        else:
            wref = WorkloadRef(kind, name, str(wr.get("apiVersion") or "apps/v1"))
    if (template is None) == (wref is None):
        errors.append("set exactly one of spec.template and spec.workloadRef")
    if template is not None:
        tmpl = _dict(template, "spec.template", errors)
        labels = _dict(_dict(tmpl.get("metadata"), "spec.template.metadata", errors).get("labels"),
                       "spec.template.metadata.labels", errors)
        missing = {k: v for k, v in selector.items() if labels.get(k) != v}
        if selector and missing:
            errors.append(
                "spec.selector does not match spec.template.metadata.labels "
                f"(missing or different: {', '.join(f'{k}={v}' for k, v in sorted(missing.items()))})")
        if not _dict(tmpl.get("spec"), "spec.template.spec", errors).get("containers"):
            errors.append("spec.template.spec.containers must not be empty")
    strategy = _dict(spec.get("strategy"), "spec.strategy", errors)
    canary_raw = _dict(strategy.get("canary"), "spec.strategy.canary", errors)
    if "canary" not in strategy:
        errors.append("spec.strategy.canary is required")
    cp = "spec.strategy.canary"
    steps = _parse_steps(canary_raw.get("steps"), errors)
    istio = _parse_istio(canary_raw, errors) if "canary" in strategy else IstioRouting(())
    canary_svc = _str(canary_raw, "canaryService", cp, errors)
    stable_svc = _str(canary_raw, "stableService", cp, errors)
    if istio.destination_rule is None and "canary" in strategy and not (canary_svc and stable_svc):
        errors.append(f"{cp}: host-level splitting needs canaryService and stableService "
                      "(or set trafficRouting.istio.destinationRule for subset-level splitting)")
    if canary_svc and canary_svc == stable_svc:
        errors.append(f"{cp}: canaryService and stableService must be different Services")
    canary = CanaryStrategy(
        canary_service=canary_svc,
        stable_service=stable_svc,
        steps=steps,
        istio=istio,
        max_surge=_int_or_percent(canary_raw, "maxSurge", "25%", cp, errors),
        max_unavailable=_int_or_percent(canary_raw, "maxUnavailable", "25%", cp, errors),
        scale_down_delay_seconds=_int(canary_raw, "scaleDownDelaySeconds",
                                      DEFAULT_SCALE_DOWN_DELAY_S, errors, cp),
        abort_scale_down_delay_seconds=_int(canary_raw, "abortScaleDownDelaySeconds",
                                            DEFAULT_ABORT_SCALE_DOWN_DELAY_S, errors, cp),
        dynamic_stable_scale=_bool(canary_raw, "dynamicStableScale", errors, cp),
        background_analysis=canary_raw.get("analysis"),
    )
    restart_at = spec.get("restartAt")
    if restart_at is not None and parse_time(restart_at) is None:
        errors.append(f"spec.restartAt must be an RFC 3339 time, got {restart_at!r}")
        restart_at = None
    result = RolloutSpec(
        replicas=replicas,
        selector=selector,
        template=template if isinstance(template, dict) else None,
        workload_ref=wref,
        canary=canary,
        min_ready_seconds=_int(spec, "minReadySeconds", 0, errors, "spec"),
        revision_history_limit=_int(spec, "revisionHistoryLimit", DEFAULT_REVISION_HISTORY_LIMIT,
                                    errors, "spec"),
        paused=_bool(spec, "paused", errors, "spec"),
        progress_deadline_seconds=_int(spec, "progressDeadlineSeconds",
                                       DEFAULT_PROGRESS_DEADLINE_S, errors, "spec", lo=1),
        progress_deadline_abort=_bool(spec, "progressDeadlineAbort", errors, "spec"),
        restart_at=restart_at,
        raw=spec,
    )
    return (None, errors) if errors else (result, [])

"""Pure routing logic: raw Kubernetes/Istio objects -> a routing plan.

Nothing here talks to the API server or draws random numbers, so it is unit-tested
with plain dicts. The plan is rebuilt only when a watched object changes; each tick
then just draws requests against it (see ``traffic.py``).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)

Obj = Mapping[str, Any]
Warn = Callable[[str], None]

ANNOTATION_PREFIX = "simulator.rollouts.dev/"
RPS_ANNOTATION = ANNOTATION_PREFIX + "rps"
RESTARTS_ANNOTATION = ANNOTATION_PREFIX + "restarts"
CLUSTER_DOMAIN = "svc.cluster.local"

# Istio's standard metric labels, in exposition order. Source labels are fixed: all
# traffic enters through the ingress gateway.
LABEL_NAMES: tuple[str, ...] = (
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "response_flags",
    "connection_security_policy",
)
# With per-pod series (the default of the Simulator), one more label names the pod, as
# Prometheus' kubernetes-pods scrape job adds it to each sidecar's series.
POD_LABEL = "pod"
LABEL_NAMES_PER_POD: tuple[str, ...] = (*LABEL_NAMES, POD_LABEL)
# Requests no pod answered (503 UH/NC) are reported only by the client side, here the
# ingress gateway: with per-pod series they carry reporter="source" and its pod.
GATEWAY_POD = "istio-ingressgateway"

SOURCE_LABELS: dict[str, str] = {
    "reporter": "destination",
    "source_workload": "istio-ingressgateway",
    "source_workload_namespace": "istio-system",
    "source_principal": ("spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"),
    "source_app": "istio-ingressgateway",
    "source_version": "unknown",
    "source_canonical_service": "istio-ingressgateway",
    "source_canonical_revision": "latest",
    "source_cluster": "Kubernetes",
    "destination_cluster": "Kubernetes",
    "request_protocol": "http",
    "connection_security_policy": "mutual_tls",
}

UNKNOWN_WORKLOAD: dict[str, str] = {
    "destination_workload": "unknown",
    "destination_workload_namespace": "unknown",
    "destination_principal": "unknown",
    "destination_app": "unknown",
    "destination_version": "unknown",
    "destination_canonical_service": "unknown",
    "destination_canonical_revision": "unknown",
}


# --------------------------------------------------------------------------- behaviour


@dataclass(frozen=True)
class Behaviour:
    """How a pod answers, declared by ``simulator.rollouts.dev/*`` pod annotations."""

    error_rate: float = 0.0
    latency_ms: float = 50.0
    latency_sigma: float = 0.5
    tail_fraction: float = 0.0
    tail_extra_ms: float = 0.0
    # A slow start: for warmup_s after the pod became Ready, latency is multiplied by
    # warmup_latency_factor and errors occur at warmup_error_rate (None: error_rate).
    warmup_s: float = 0.0
    warmup_latency_factor: float = 1.0
    warmup_error_rate: float | None = None

    def at_age(self, age_s: float | None) -> Behaviour:
        """The behaviour of a pod ``age_s`` seconds after it became Ready (None: unknown, warm)."""
        if self.warmup_s <= 0 or age_s is None or age_s >= self.warmup_s:
            return self
        err = self.error_rate if self.warmup_error_rate is None else self.warmup_error_rate
        return Behaviour(
            error_rate=err,
            latency_ms=self.latency_ms * self.warmup_latency_factor,
            latency_sigma=self.latency_sigma,
            tail_fraction=self.tail_fraction,
            tail_extra_ms=self.tail_extra_ms,
        )


# annotation suffix -> (field, lower bound, upper bound); bounds inclusive
_BEHAVIOUR_FIELDS: dict[str, tuple[str, float, float]] = {
    "error-rate": ("error_rate", 0.0, 1.0),
    "latency-ms": ("latency_ms", 0.0, math.inf),
    "latency-sigma": ("latency_sigma", 0.0, 10.0),
    "tail-fraction": ("tail_fraction", 0.0, 1.0),
    "tail-extra-ms": ("tail_extra_ms", 0.0, math.inf),
    "warmup-seconds": ("warmup_s", 0.0, math.inf),
    "warmup-latency-factor": ("warmup_latency_factor", 0.0, 1e6),
    "warmup-error-rate": ("warmup_error_rate", 0.0, 1.0),
}


def parse_float(raw: object, lo: float, hi: float) -> float | None:
    """A finite float in [lo, hi], or None when ``raw`` is not one."""
    try:
        value = float(str(raw).strip())
    except ValueError:
        return None
    if not math.isfinite(value) or value < lo or value > hi:
        return None
    return value


def parse_behaviour(annotations: Mapping[str, str] | None, where: str, warn: Warn) -> Behaviour:
    """Behaviour from annotations; invalid values are reported and replaced by defaults."""
    values: dict[str, float] = {}
    for suffix, (attr, lo, hi) in _BEHAVIOUR_FIELDS.items():
        raw = (annotations or {}).get(ANNOTATION_PREFIX + suffix)
        if raw is None:
            continue
        value = parse_float(raw, lo, hi)
        if value is None:
            warn(
                f"{where}: invalid {ANNOTATION_PREFIX}{suffix}={raw!r} "
                f"(want a number in [{lo:g}, {hi:g}]), using the default"
            )
            continue
        values[attr] = value
    return Behaviour(**values)


def parse_rps(annotations: Mapping[str, str] | None, default: float, where: str, warn: Warn) -> float:
    raw = (annotations or {}).get(RPS_ANNOTATION)
    if raw is None:
        return default
    value = parse_float(raw, 0.0, 1e7)
    if value is None:
        warn(f"{where}: invalid {RPS_ANNOTATION}={raw!r}, using {default:g}")
        return default
    return value


# --------------------------------------------------------------------------- objects


def meta(obj: Obj) -> Mapping[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, Mapping) else {}


def _str_map(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def labels_of(obj: Obj) -> dict[str, str]:
    return _str_map(meta(obj).get("labels"))


def annotations_of(obj: Obj) -> dict[str, str]:
    return _str_map(meta(obj).get("annotations"))


def key_of(obj: Obj) -> tuple[str, str]:
    m = meta(obj)
    return str(m.get("namespace") or ""), str(m.get("name") or "")


def pod_is_ready(pod: Obj) -> bool:
    """Ready=True and not terminating: what Envoy's EDS would list as healthy."""
    if meta(pod).get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _epoch(raw: object) -> float | None:
    try:
        return datetime.fromisoformat(str(raw)).timestamp()
    except ValueError:
        return None


def ready_since(pod: Obj) -> float | None:
    """When the pod last became Ready (epoch seconds): its Ready condition's
    lastTransitionTime, else status.startTime, else creationTimestamp; None if none parses."""
    status = pod.get("status") or {}
    candidates: list[object] = [
        c.get("lastTransitionTime")
        for c in status.get("conditions") or []
        if isinstance(c, Mapping) and c.get("type") == "Ready"
    ]
    candidates += [status.get("startTime"), meta(pod).get("creationTimestamp")]
    for raw in candidates:
        if raw:
            t = _epoch(raw)
            if t is not None:
                return t
    return None


def restart_token(pod: Obj) -> str:
    """Changes whenever the pod restarts: its containers' restartCount total and the
    ``simulator.rollouts.dev/restarts`` annotation (a test's way to restart a kwok pod)."""
    status = pod.get("status") or {}
    count = 0
    for cs in status.get("containerStatuses") or []:
        if isinstance(cs, Mapping) and isinstance(cs.get("restartCount"), int):
            count += int(cs["restartCount"])
    return f"{count}/{annotations_of(pod).get(RESTARTS_ANNOTATION, '')}"


def workload_name(pod: Obj) -> str:
    """Istio's destination_workload: the Deployment/Rollout name behind a pod.

    A ReplicaSet is named ``<workload>-<hash>`` and its pods carry the same hash label
    (``rollouts-pod-template-hash`` for Argo-style Rollouts, ``pod-template-hash`` for
    Deployments), copied from the ReplicaSet template, so no ReplicaSet watch is needed.
    """
    m = meta(pod)
    owners = [o for o in m.get("ownerReferences") or [] if isinstance(o, Mapping)]
    owner = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    if owner is None:
        return str(m.get("name") or "unknown")
    name = str(owner.get("name") or "unknown")
    if owner.get("kind") == "ReplicaSet":
        labels = labels_of(pod)
        for hash_label in ("rollouts-pod-template-hash", "pod-template-hash"):
            h = labels.get(hash_label)
            if h and name.endswith("-" + h):
                return name[: -len(h) - 1]
    return name


def workload_labels(pod: Obj) -> dict[str, str]:
    """The destination_* labels Istio derives from a pod."""
    ns, _ = key_of(pod)
    labels = labels_of(pod)
    workload = workload_name(pod)
    sa = str((pod.get("spec") or {}).get("serviceAccountName") or "default")
    canonical_service = (
        labels.get("service.istio.io/canonical-name")
        or labels.get("app.kubernetes.io/name")
        or labels.get("app")
        or workload
    )
    canonical_revision = (
        labels.get("service.istio.io/canonical-revision")
        or labels.get("app.kubernetes.io/version")
        or labels.get("version")
        or "latest"
    )
    return {
        "destination_workload": workload,
        "destination_workload_namespace": ns,
        "destination_principal": f"spiffe://cluster.local/ns/{ns}/sa/{sa}",
        "destination_app": labels.get("app") or "unknown",
        "destination_version": labels.get("version") or "unknown",
        "destination_canonical_service": canonical_service,
        "destination_canonical_revision": canonical_revision,
    }


def resolve_host(host: str, namespace: str) -> tuple[str, str] | None:
    """(service, namespace) for ``svc``, ``svc.ns``, ``svc.ns.svc`` or the FQDN.

    A short name is relative to the VirtualService's namespace, as in Istio. Anything
    else (an external host, a wildcard) is not a cluster Service: None.
    """
    host = host.strip().rstrip(".")
    if not host or "*" in host:
        return None
    parts = host.split(".")
    if len(parts) == 1:
        return parts[0], namespace
    if len(parts) == 2 or (len(parts) == 3 and parts[2] == "svc"):
        return parts[0], parts[1]
    if len(parts) == 5 and ".".join(parts[2:]) == CLUSTER_DOMAIN:
        return parts[0], parts[1]
    return None


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class RouteDestination:
    host: str
    subset: str | None
    weight: float


def _string_match(rule: object, value: str) -> bool:
    """Istio's StringMatch (exact, prefix, regex: fully matched, as Envoy's safe_regex)."""
    if not isinstance(rule, Mapping):
        return False
    if "exact" in rule:
        return value == str(rule["exact"])
    if "prefix" in rule:
        return value.startswith(str(rule["prefix"]))
    if "regex" in rule:
        try:
            return re.fullmatch(str(rule["regex"]), value) is not None
        except re.error:
            return False
    return False


def _route_matches(route: Mapping[str, Any], headers: Mapping[str, str] | None) -> bool:
    """Whether the simulated client's request takes this http route: a route without
    ``match`` takes everyone; a match entry's ``headers`` must all be sent (names are
    lower case in Istio; compared case-insensitively); its other conditions (uri,
    method...) are taken to hold."""
    entries = [m for m in route.get("match") or [] if isinstance(m, Mapping)]
    if not entries:
        return True
    sent = {k.lower(): v for k, v in (headers or {}).items()}
    for m in entries:
        conds = m.get("headers") or {}
        if not isinstance(conds, Mapping):
            continue
        if all(str(k).lower() in sent and _string_match(c, sent[str(k).lower()])
               for k, c in conds.items()):
            return True
    return False


def first_route_destinations(vs: Obj, headers: Mapping[str, str] | None = None) -> list[RouteDestination]:
    """Destinations of the first ``http`` route the client's request takes, with effective
    weights.

    A client sending no headers (``headers`` None) takes the first route without a header
    condition (a header route, e.g. a ``setHeaderRoute`` step's, is skipped); one sending
    ``headers`` the first route whose header conditions it meets. One destination without
    a weight gets everything; with several, a missing weight is 0 (Istio's rule), and if
    all are 0 the split is even.
    """
    http = [r for r in (vs.get("spec") or {}).get("http") or [] if isinstance(r, Mapping)]
    route = next((r for r in http if _route_matches(r, headers)), None)
    if route is None:
        return []
    out: list[RouteDestination] = []
    for entry in route.get("route") or []:
        if not isinstance(entry, Mapping):
            continue
        dest = entry.get("destination") or {}
        host = dest.get("host")
        if not host:
            continue
        subset = dest.get("subset") or None
        w = parse_float(entry.get("weight", 0), 0.0, math.inf)
        out.append(RouteDestination(str(host), str(subset) if subset else None, w or 0.0))
    if not out:
        return out
    if len(out) == 1 or all(d.weight == 0 for d in out):
        # Both cases: traffic is shared evenly (one destination gets it all).
        return [RouteDestination(d.host, d.subset, 1.0) for d in out]
    return out


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class PodGroup:
    """Ready pods with identical metric labels and behaviour; weighted by pod count."""

    labels: tuple[tuple[str, str], ...]  # destination workload labels
    behaviour: Behaviour
    pods: int
    pod: str = ""  # the pod's name when series are per pod (the group is that one pod)
    # When its pods became Ready (epoch s), kept only for a behaviour with a warm-up.
    ready_since: float | None = None
    restarts: str = ""  # restart_token() of the pod, per-pod groups only


@dataclass(frozen=True)
class DestinationPlan:
    service_labels: tuple[tuple[str, str], ...]  # destination_service* labels
    weight: float
    groups: tuple[PodGroup, ...]
    # Envoy's response flag when there is nothing to send to: "NC" (no cluster:
    # unknown Service or subset) or "UH" (no healthy upstream: no ready pod).
    failure_flag: str | None = None
    failure_code: str = "503"  # the status answered then (500: a route with no usable backend)


@dataclass(frozen=True)
class RoutePlan:
    namespace: str
    name: str
    rps: float
    destinations: tuple[DestinationPlan, ...]
    per_pod: bool = False  # series per pod (PodGroup.pod set; failures from the gateway)
    # Which metrics the requests feed: "istio" (a mesh: VirtualService, TrafficSplit,
    # HTTPRoute) or "nginx" (an Ingress: ingress-nginx's series; service_labels then hold
    # ingress-nginx's labels).
    family: str = "istio"
    kind: str = "VirtualService"  # the object that routes (for logs and tests)
    # The share of clients sending the simulator's headers, and where their requests go
    # (a header route); 0 or no destinations: every client takes ``destinations``.
    header_share: float = 0.0
    header_destinations: tuple[DestinationPlan, ...] = ()


@dataclass(frozen=True)
class Clients:
    """The simulated clients: a share of them send ``headers`` (a header route's target)."""

    headers: tuple[tuple[str, str], ...] = ()
    share: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"header share must be in [0, 1], got {self.share}")


@dataclass
class ClusterState:
    """Raw objects by kind, keyed (namespace, name); filled by the watches."""

    virtual_services: dict[tuple[str, str], Obj] = field(default_factory=dict)
    destination_rules: dict[tuple[str, str], Obj] = field(default_factory=dict)
    services: dict[tuple[str, str], Obj] = field(default_factory=dict)
    pods: dict[tuple[str, str], Obj] = field(default_factory=dict)
    ingresses: dict[tuple[str, str], Obj] = field(default_factory=dict)
    traffic_splits: dict[tuple[str, str], Obj] = field(default_factory=dict)
    http_routes: dict[tuple[str, str], Obj] = field(default_factory=dict)


def _service_labels(host: str, resolved: tuple[str, str] | None, vs_ns: str) -> dict[str, str]:
    if resolved is None:
        name, _, rest = host.partition(".")
        return {
            "destination_service": host,
            "destination_service_name": name or host,
            "destination_service_namespace": rest.partition(".")[0] or vs_ns,
        }
    svc, ns = resolved
    return {
        "destination_service": f"{svc}.{ns}.{CLUSTER_DOMAIN}",
        "destination_service_name": svc,
        "destination_service_namespace": ns,
    }


def find_subset(state: ClusterState, svc: str, ns: str, subset: str) -> dict[str, str] | None:
    """Labels of ``subset`` from the DestinationRule for svc.ns (the oldest, as Istio)."""
    fqdn = f"{svc}.{ns}.{CLUSTER_DOMAIN}"
    rules = []
    for (dr_ns, _), dr in state.destination_rules.items():
        host = str((dr.get("spec") or {}).get("host") or "")
        resolved = resolve_host(host, dr_ns)
        if resolved and f"{resolved[0]}.{resolved[1]}.{CLUSTER_DOMAIN}" == fqdn:
            # Prefer a rule in the service's own namespace, then the oldest.
            rules.append((dr_ns != ns, str(meta(dr).get("creationTimestamp") or ""), dr))
    for _, _, dr in sorted(rules, key=lambda r: (r[0], r[1])):
        for s in (dr.get("spec") or {}).get("subsets") or []:
            if isinstance(s, Mapping) and s.get("name") == subset:
                return _str_map(s.get("labels"))
    return None


class PlanBuilder:
    """Turns a ClusterState into RoutePlans; warns once per distinct problem."""

    def __init__(self, default_rps: float, warn: Warn | None = None, *, per_pod: bool = False,
                 clients: Clients | None = None) -> None:
        self.default_rps = default_rps
        self.per_pod = per_pod
        self.clients = clients or Clients()
        self._group_cache: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[PodGroup, ...]] = {}
        self._labels_cache: dict[int, dict[str, str]] = {}  # id(pod) -> labels, per build
        self._warned: set[str] = set()
        self._warn_sink = warn or log.warning

    def warn(self, message: str) -> None:
        # Plans are rebuilt on every change; repeat warnings would flood the log.
        if message not in self._warned:
            if len(self._warned) > 10_000:  # bounded under pod churn
                self._warned.clear()
            self._warned.add(message)
            self._warn_sink(message)

    def build(self, state: ClusterState) -> list[RoutePlan]:
        # (namespace, selector) -> pod groups, for this build: a Service reached by several
        # routes (or by the header clients too) is resolved once
        self._group_cache = {}
        self._labels_cache = {}
        pods_by_ns: dict[str, list[Obj]] = {}
        for (ns, _), pod in sorted(state.pods.items()):
            if pod_is_ready(pod):
                pods_by_ns.setdefault(ns, []).append(pod)
        plans = []
        for (ns, name), vs in sorted(state.virtual_services.items()):
            rps = parse_rps(annotations_of(vs), self.default_rps, f"VirtualService {ns}/{name}", self.warn)
            dests = tuple(self._destination(state, pods_by_ns, d, ns) for d in first_route_destinations(vs))
            share, hdests = 0.0, dests
            if self.clients.share > 0 and self.clients.headers:
                hdests = tuple(self._destination(state, pods_by_ns, d, ns)
                               for d in first_route_destinations(vs, dict(self.clients.headers)))
                share = self.clients.share if hdests != dests else 0.0
            plans.append(RoutePlan(ns, name, rps, dests, self.per_pod, header_share=share,
                                   header_destinations=hdests if share else ()))
        # the other routers (imported here: routers.py builds on this module)
        from .routers import router_plans

        plans += router_plans(self, state, pods_by_ns)
        return plans

    def service_destination(
        self,
        state: ClusterState,
        pods_by_ns: Mapping[str, list[Obj]],
        service: tuple[str, str],
        weight: float,
        labels: tuple[tuple[str, str], ...],
    ) -> DestinationPlan:
        """The ready pods behind Service (name, namespace), as a destination with ``labels``."""
        svc_name, svc_ns = service
        obj = state.services.get((svc_ns, svc_name))
        if obj is None:
            return DestinationPlan(labels, weight, (), "NC")
        selector = _str_map((obj.get("spec") or {}).get("selector"))
        if not selector:
            return DestinationPlan(labels, weight, (), "UH")
        groups = self._cached_groups(pods_by_ns, svc_ns, selector)
        return DestinationPlan(labels, weight, groups, None if groups else "UH")

    def _destination(
        self,
        state: ClusterState,
        pods_by_ns: Mapping[str, list[Obj]],
        dest: RouteDestination,
        vs_ns: str,
    ) -> DestinationPlan:
        resolved = resolve_host(dest.host, vs_ns)
        svc_labels = tuple(_service_labels(dest.host, resolved, vs_ns).items())
        if resolved is None:
            return DestinationPlan(svc_labels, dest.weight, (), "NC")
        svc_name, svc_ns = resolved
        service = state.services.get((svc_ns, svc_name))  # stores are keyed (ns, name)
        if service is None:
            return DestinationPlan(svc_labels, dest.weight, (), "NC")
        selector = _str_map((service.get("spec") or {}).get("selector"))
        if not selector:
            # A Service without a selector has hand-made Endpoints; not simulated.
            return DestinationPlan(svc_labels, dest.weight, (), "UH")
        if dest.subset is not None:
            subset_labels = find_subset(state, svc_name, svc_ns, dest.subset)
            if subset_labels is None:
                return DestinationPlan(svc_labels, dest.weight, (), "NC")
            if any(selector.get(k, v) != v for k, v in subset_labels.items()):
                # Contradicts the Service selector: the AND selects no pod.
                return DestinationPlan(svc_labels, dest.weight, (), "UH")
            selector = {**selector, **subset_labels}
        groups = self._cached_groups(pods_by_ns, svc_ns, selector)
        return DestinationPlan(svc_labels, dest.weight, groups, None if groups else "UH")

    def _cached_groups(
        self, pods_by_ns: Mapping[str, list[Obj]], ns: str, selector: Mapping[str, str]
    ) -> tuple[PodGroup, ...]:
        key = (ns, tuple(sorted(selector.items())))
        groups = self._group_cache.get(key)
        if groups is None:
            groups = self._group_cache[key] = self._groups(pods_by_ns.get(ns, []), selector)
        return groups

    def _labels(self, pod: Obj) -> dict[str, str]:
        labels = self._labels_cache.get(id(pod))
        if labels is None:
            labels = self._labels_cache[id(pod)] = labels_of(pod)
        return labels

    def _groups(self, pods: Iterable[Obj], selector: Mapping[str, str]) -> tuple[PodGroup, ...]:
        if self.per_pod:
            return tuple(self._pod_group(p) for p in pods if selector_matches(selector, self._labels(p)))
        counts: dict[tuple[tuple[tuple[str, str], ...], Behaviour, float | None], int] = {}
        for pod in pods:
            if not selector_matches(selector, self._labels(pod)):
                continue
            ns, name = key_of(pod)
            behaviour = parse_behaviour(annotations_of(pod), f"pod {ns}/{name}", self.warn)
            # Pods warming up differ by age; others share a group whatever their age.
            since = ready_since(pod) if behaviour.warmup_s > 0 else None
            key = (tuple(workload_labels(pod).items()), behaviour, since)
            counts[key] = counts.get(key, 0) + 1
        return tuple(PodGroup(lbl, b, n, ready_since=t) for (lbl, b, t), n in counts.items())

    def _pod_group(self, pod: Obj) -> PodGroup:
        ns, name = key_of(pod)
        behaviour = parse_behaviour(annotations_of(pod), f"pod {ns}/{name}", self.warn)
        since = ready_since(pod) if behaviour.warmup_s > 0 else None
        return PodGroup(tuple(workload_labels(pod).items()), behaviour, 1, name, since, restart_token(pod))

"""parse_spec: Argo Rollouts manifests parse; every error names the field to fix; never raises."""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from rollouts.api.constants import (
    DEFAULT_ABORT_SCALE_DOWN_DELAY_S,
    DEFAULT_PROGRESS_DEADLINE_S,
    DEFAULT_REVISION_HISTORY_LIMIT,
    DEFAULT_SCALE_DOWN_DELAY_S,
)
from rollouts.api.spec import RolloutSpec, parse_spec

ARGO_MANIFEST = """
apiVersion: rollouts.dev/v1alpha1   # was argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: reviews
spec:
  replicas: 5
  revisionHistoryLimit: 3
  minReadySeconds: 10
  progressDeadlineSeconds: 300
  progressDeadlineAbort: true
  selector:
    matchLabels:
      app: reviews
  template:
    metadata:
      labels:
        app: reviews
    spec:
      containers:
      - name: reviews
        image: reviews:2.0
  strategy:
    canary:
      canaryService: reviews-canary
      stableService: reviews-stable
      maxSurge: "25%"
      maxUnavailable: 0
      scaleDownDelaySeconds: 60
      abortScaleDownDelaySeconds: 10
      dynamicStableScale: true
      trafficRouting:
        istio:
          virtualService:
            name: reviews
            routes:
            - primary
      steps:
      - setWeight: 10
      - pause: {duration: 30s}
      - setWeight: 20
      - pause: {duration: 5m}
      - setWeight: 40
      - pause: {duration: 600}
      - setWeight: 60
      - pause: {duration: "600"}
      - setWeight: 80
      - pause: {duration: 1h}
      - pause: {}
"""


_ARGO: dict[str, Any] = yaml.safe_load(ARGO_MANIFEST)["spec"]


def argo() -> dict[str, Any]:
    return copy.deepcopy(_ARGO)


def ok(raw: Any) -> RolloutSpec:
    spec, errors = parse_spec(raw)
    assert errors == [] and spec is not None
    return spec


def test_argo_manifest_parses() -> None:
    spec = ok(argo())
    assert spec.replicas == 5 and spec.revision_history_limit == 3 and spec.min_ready_seconds == 10
    assert spec.progress_deadline_seconds == 300 and spec.progress_deadline_abort
    assert spec.selector == {"app": "reviews"}
    assert spec.template is not None and spec.workload_ref is None
    c = spec.canary
    assert (c.canary_service, c.stable_service) == ("reviews-canary", "reviews-stable")
    assert (c.max_surge, c.max_unavailable) == ("25%", 0)
    assert (c.scale_down_delay_seconds, c.abort_scale_down_delay_seconds) == (60, 10)
    assert c.dynamic_stable_scale
    assert [v.name for v in c.istio.virtual_services] == ["reviews"]
    assert c.istio.virtual_services[0].routes == ("primary",)
    assert c.istio.destination_rule is None
    weights = [s.set_weight for s in c.steps if s.set_weight is not None]
    pauses = [s.pause_seconds for s in c.steps if s.is_pause]
    assert weights == [10, 20, 40, 60, 80]
    assert pauses == [30, 300, 600, 600, 3600, math.inf]
    assert [s.index for s in c.steps] == list(range(11))
    assert c.steps[1].describe() == "pause 30s"
    assert c.steps[-1].describe() == "pause (until promoted)"
    assert c.steps[0].describe() == "setWeight 10"


def test_defaults_are_argos() -> None:
    raw = argo()
    for k in ("replicas", "revisionHistoryLimit", "minReadySeconds", "progressDeadlineSeconds",
              "progressDeadlineAbort"):
        del raw[k]
    for k in ("maxSurge", "maxUnavailable", "scaleDownDelaySeconds", "abortScaleDownDelaySeconds",
              "dynamicStableScale", "steps"):
        del raw["strategy"]["canary"][k]
    spec = ok(raw)
    assert spec.replicas == 1 and spec.min_ready_seconds == 0 and not spec.paused
    assert spec.revision_history_limit == DEFAULT_REVISION_HISTORY_LIMIT
    assert spec.progress_deadline_seconds == DEFAULT_PROGRESS_DEADLINE_S
    assert not spec.progress_deadline_abort
    c = spec.canary
    assert c.steps == () and (c.max_surge, c.max_unavailable) == ("25%", "25%")
    assert c.scale_down_delay_seconds == DEFAULT_SCALE_DOWN_DELAY_S
    assert c.abort_scale_down_delay_seconds == DEFAULT_ABORT_SCALE_DOWN_DELAY_S
    assert not c.dynamic_stable_scale


def test_several_virtual_services_and_a_destination_rule() -> None:
    raw = argo()
    canary = raw["strategy"]["canary"]
    del canary["canaryService"], canary["stableService"]
    canary["trafficRouting"] = {"istio": {
        "virtualServices": [{"name": "reviews", "routes": ["primary"]}, {"name": "reviews-internal"}],
        "destinationRule": {"name": "reviews", "canarySubsetName": "canary", "stableSubsetName": "stable"},
    }}
    spec = ok(raw)
    vss = spec.canary.istio.virtual_services
    assert [(v.name, v.routes) for v in vss] == [("reviews", ("primary",)), ("reviews-internal", ())]
    dr = spec.canary.istio.destination_rule
    assert dr is not None and (dr.name, dr.canary_subset, dr.stable_subset) == ("reviews", "canary", "stable")
    assert spec.canary.canary_service is None  # subset-level splitting needs no Services


def test_workload_ref_instead_of_template() -> None:
    raw = argo()
    del raw["template"]
    raw["workloadRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "reviews"}
    spec = ok(raw)
    assert spec.template is None and spec.workload_ref is not None
    assert (spec.workload_ref.kind, spec.workload_ref.name) == ("Deployment", "reviews")


def test_pause_without_braces_and_null_duration_wait_for_promote() -> None:
    raw = argo()
    steps = "- pause:\n- pause: {duration: null}\n- pause: {duration: 0}"
    raw["strategy"]["canary"]["steps"] = yaml.safe_load(steps)
    assert [s.pause_seconds for s in ok(raw).canary.steps] == [math.inf, math.inf, 0]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Mutation setting a dotted path (list indexes as numbers); value DELETE removes it."""
    def mutate(raw: dict[str, Any]) -> None:
        keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
        obj: Any = raw
        for k in keys[:-1]:
            obj = obj[k]
        if value is DELETE:
            del obj[keys[-1]]
        else:
            obj[keys[-1]] = value
    return mutate


DELETE = object()
C = "strategy.canary"
ISTIO = f"{C}.trafficRouting.istio"
SC = f"spec.{C}"  # as messages name them
SI = f"spec.{ISTIO}"

ERRORS: list[tuple[str, Any, str]] = [
    ("replicas", -1, "spec.replicas must be >= 0"),
    ("replicas", "3", "spec.replicas must be an integer"),
    ("replicas", True, "spec.replicas must be an integer"),
    ("replicas", 2**31, "spec.replicas must be 0..2147483647"),
    ("revisionHistoryLimit", 1.5, "spec.revisionHistoryLimit must be an integer"),
    ("progressDeadlineSeconds", 0, "spec.progressDeadlineSeconds must be >= 1"),
    ("progressDeadlineAbort", "yes", "spec.progressDeadlineAbort must be true or false"),
    ("paused", 1, "spec.paused must be true or false"),
    ("restartAt", "tomorrow", "spec.restartAt must be an RFC 3339 time"),
    ("restartAt", 5, "spec.restartAt must be an RFC 3339 time"),
    ("selector", DELETE, "spec.selector.matchLabels is required"),
    ("selector", "app=reviews", "spec.selector must be an object"),
    ("selector.matchExpressions", [{"key": "app"}], "spec.selector.matchExpressions is not supported"),
    ("selector.matchLabels.app", "other", "spec.selector does not match spec.template.metadata.labels"),
    ("template", DELETE, "set exactly one of spec.template and spec.workloadRef"),
    ("template", [], "spec.template must be an object"),
    ("template.spec.containers", [], "spec.template.spec.containers must not be empty"),
    ("template.metadata", "x", "spec.template.metadata must be an object"),
    ("workloadRef", {"kind": "StatefulSet", "name": "x"}, "spec.workloadRef must name a Deployment"),
    ("strategy", DELETE, "spec.strategy: set exactly one of canary and blueGreen"),
    ("strategy.blueGreen", {}, "spec.strategy: set exactly one of canary and blueGreen"),
    (C, "canary", f"{SC} must be an object"),
    (f"{C}.canaryService", DELETE, f"{SC}: host-level splitting needs canaryService"),
    (f"{C}.canaryService", "reviews-stable", "canaryService and stableService must be different"),
    (f"{C}.stableService", 7, f"{SC}.stableService must be a string"),
    (f"{C}.maxSurge", "a lot", f"{SC}.maxSurge must be a non-negative integer or a percentage"),
    (f"{C}.maxUnavailable", -1, f"{SC}.maxUnavailable must be"),
    (f"{C}.scaleDownDelaySeconds", -5, f"{SC}.scaleDownDelaySeconds must be >= 0"),
    (f"{C}.abortScaleDownDelaySeconds", "30s", f"{SC}.abortScaleDownDelaySeconds must be an integer"),
    (f"{C}.dynamicStableScale", "true", f"{SC}.dynamicStableScale must be true or false"),
    (f"{C}.steps", {"setWeight": 5}, f"{SC}.steps must be a list"),
    (f"{C}.steps.0", "setWeight: 10", f"{SC}.steps[0] must be an object"),
    (f"{C}.steps.0.setWeight", 101, f"{SC}.steps[0].setWeight must be 0..100, got 101"),
    (f"{C}.steps.0.setWeight", -1, f"{SC}.steps[0].setWeight must be 0..100"),
    (f"{C}.steps.0.setWeight", "10", f"{SC}.steps[0].setWeight must be an integer"),
    (f"{C}.steps.0.setWeight", None, f"{SC}.steps[0].setWeight must be an integer 0..100"),
    (f"{C}.steps.0.pause", {}, f"{SC}.steps[0] must have exactly one of setWeight, pause"),
    (f"{C}.steps.2", {}, f"{SC}.steps[2] must have exactly one of"),
    (f"{C}.steps.2", {"experiment": {}}, f"{SC}.steps[2].experiment.templates must be a non-empty"),
    (f"{C}.steps.2", {"experiment": {"templates": [{"name": "a", "specRef": "nightly"}]}},
     f"{SC}.steps[2].experiment.templates[0].specRef must be stable or canary"),
    (f"{C}.steps.2", {"setCanaryScale": {}},
     f"{SC}.steps[2].setCanaryScale must set exactly one of replicas, weight, matchTrafficWeight"),
    (f"{C}.steps.2", {"setCanaryScale": {"weight": 150}}, f"{SC}.steps[2].setCanaryScale.weight must"),
    (f"{C}.canaryMetadata", {"labels": {"role": 1}}, f"{SC}.canaryMetadata.labels values must be"),
    (f"{C}.antiAffinity", {}, f"{SC}.antiAffinity: set exactly one of"),
    (f"{C}.canaryMetadata", {"labels": {"app": "other"}}, f"{SC}.canaryMetadata.labels must not set"),
    (f"{C}.stableMetadata", {"labels": {"rollouts-pod-template-hash": "x"}},
     f"{SC}.stableMetadata.labels must not set"),
    (f"{C}.steps.2", {"bogus": 1}, f"{SC}.steps[2]: unknown step kind bogus"),
    (f"{C}.trafficRouting", {"traefik": {"weightedTraefikServiceName": "x"}},
     f"{SC}.trafficRouting.traefik is not supported by this controller"),
    (f"{C}.trafficRouting", {"nginx": {}}, f"{SC}.trafficRouting.nginx"),
    (f"{C}.trafficRouting", {"smi": {"rootService": 5}}, f"{SC}.trafficRouting.smi"),
    (f"{C}.steps.1.pause.duration", "30 seconds", f"{SC}.steps[1].pause.duration: invalid duration"),
    (f"{C}.steps.1.pause.duration", -30, f"{SC}.steps[1].pause.duration: invalid duration"),
    (f"{C}.steps.1.pause.duration", "1m30s", f"{SC}.steps[1].pause.duration"),
    (f"{C}.steps.1.pause.duration", "99999999999h", f"{SC}.steps[1].pause.duration"),
    (f"{C}.steps.1.pause", "30s", f"{SC}.steps[1].pause must be an object"),
    (f"{C}.trafficRouting", {}, f"{SC}.trafficRouting names no traffic router"),
    (ISTIO, {"virtualService": {"name": "a"}, "virtualServices": [{"name": "b"}]},
     f"{SI}: set exactly one of virtualService and virtualServices"),
    (ISTIO, {"destinationRule": {"name": "d", "canarySubsetName": "c", "stableSubsetName": "s"}},
     f"{SI}: set exactly one of virtualService and virtualServices"),
    (f"{ISTIO}.virtualService", DELETE, "set exactly one of virtualService and virtualServices"),
    (f"{ISTIO}.virtualService.name", DELETE, f"{SI}.virtualService.name is required"),
    (f"{ISTIO}.virtualService.routes", "primary", f"{SI}.virtualService.routes must be a list"),
    (f"{ISTIO}.virtualService.routes", [""], f"{SI}.virtualService.routes must be a list"),
    (f"{ISTIO}.virtualService", "reviews", f"{SI}.virtualService must be an object"),
    (f"{ISTIO}.destinationRule", {"name": "d"},
     f"{SI}.destinationRule needs name, canarySubsetName and stableSubsetName"),
    (f"{ISTIO}.destinationRule", {"name": "d", "canarySubsetName": "x", "stableSubsetName": "x"},
     f"{SI}.destinationRule: canarySubsetName and stableSubsetName must differ"),
]


@pytest.mark.parametrize(("path", "value", "message"), ERRORS, ids=[f"{p}={v!r}"[:60] for p, v, _ in ERRORS])
def test_every_error_names_the_field(path: str, value: Any, message: str) -> None:
    raw = argo()
    _set(path, value)(raw)
    spec, errors = parse_spec(raw)
    assert spec is None
    assert any(message in e for e in errors), errors
    for e in errors:  # every message names a spec field
        assert "spec." in e or "spec:" in e, e


def test_virtual_services_must_be_a_non_empty_list() -> None:
    bads: list[Any] = [[], {"name": "reviews"}, "reviews"]
    for bad in bads:
        raw = argo()
        raw["strategy"]["canary"]["trafficRouting"]["istio"] = {"virtualServices": bad}
        _, errors = parse_spec(raw)
        assert any(f"{SI}.virtualServices must be a non-empty list" in e for e in errors), (bad, errors)
    raw = argo()
    raw["strategy"]["canary"]["trafficRouting"]["istio"] = {"virtualServices": [{"routes": ["a"]}]}
    assert f"{SI}.virtualServices[0].name is required" in parse_spec(raw)[1]


def test_all_errors_are_reported_at_once() -> None:
    raw = argo()
    raw["replicas"] = -2
    raw["strategy"]["canary"]["steps"][0]["setWeight"] = 120
    raw["strategy"]["canary"]["steps"][1]["pause"]["duration"] = "soon"
    spec, errors = parse_spec(raw)
    assert spec is None and len(errors) == 3
    assert errors[0].startswith("spec.replicas")


@pytest.mark.parametrize("raw", [None, "spec", 5, [], {}, {"strategy": None}, {"strategy": {"canary": None}}])
def test_nonsense_specs_are_errors_not_exceptions(raw: Any) -> None:
    spec, errors = parse_spec(raw)
    assert spec is None and errors


GARBAGE: list[Any] = [None, "", "x", -1, 0, 1.5, True, [], [None], {}, {"x": 1}, 2**40, "5%", "30s"]


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def test_random_corruption_never_raises() -> None:
    rng = random.Random(42)
    paths = _paths(argo())
    for _ in range(1500):
        raw = argo()
        for p in rng.sample(paths, rng.randint(1, 4)):
            obj: Any = raw
            try:
                for k in p[:-1]:
                    obj = obj[k]
                obj[p[-1]] = rng.choice(GARBAGE)
            except (KeyError, IndexError, TypeError):
                continue  # an earlier corruption removed the parent
        spec, errors = parse_spec(copy.deepcopy(raw))
        assert (spec is None) == bool(errors)
        assert all(isinstance(e, str) and e for e in errors)

"""Every field of Argo's Rollout is either implemented or a listed gap: the CRD keeps it
(never prunes it), and a gap is an InvalidSpec error naming the field and a lint error."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollouts.api.spec import parse_spec
from rollouts.api.unsupported import GAPS, STEP
from rollouts.cli.lint import CONTROLLER, lint_text, schemas

REPO = Path(__file__).resolve().parents[2]
ARGO_FIELDS = [ln for ln in (REPO / "tests/unit/data/argo_rollout_spec_fields.txt").read_text()
               .splitlines() if ln and not ln.startswith("#")]

C = "spec.strategy.canary"
R = f"{C}.trafficRouting"
VS = f"{R}.istio.virtualService"
BG = "spec.strategy.blueGreen"
# what this controller implements: exact paths, and whole subtrees
SUPPORTED = {
    "spec.replicas", "spec.selector", "spec.minReadySeconds", "spec.paused",
    "spec.progressDeadlineAbort", "spec.progressDeadlineSeconds", "spec.restartAt",
    "spec.revisionHistoryLimit", "spec.template", "spec.workloadRef", "spec.workloadRef.apiVersion",
    "spec.workloadRef.kind", "spec.workloadRef.name", "spec.strategy", C,
    f"{C}.abortScaleDownDelaySeconds", f"{C}.canaryService", f"{C}.stableService",
    f"{C}.dynamicStableScale", f"{C}.scaleDownDelaySeconds", f"{C}.steps", f"{STEP}.setWeight",
    f"{STEP}.pause", f"{STEP}.pause.duration", f"{STEP}.analysis", f"{C}.analysis",
    f"{C}.analysis.startingStep", R, f"{R}.istio", f"{R}.istio.destinationRule",
    f"{R}.istio.destinationRule.name", f"{R}.istio.destinationRule.canarySubsetName",
    f"{R}.istio.destinationRule.stableSubsetName", f"{R}.istio.virtualServices",
    f"{C}.maxSurge", f"{C}.maxUnavailable", f"{STEP}.setCanaryScale", f"{C}.canaryMetadata",
    f"{C}.stableMetadata", f"{C}.antiAffinity",
}
SUPPORTED_TREES = {
    "spec.selector.matchLabels", f"{C}.analysis.templates", f"{C}.analysis.args",
    f"{STEP}.analysis.templates", f"{STEP}.analysis.args", VS, f"{R}.istio.virtualServices[]",
    BG, f"{STEP}.experiment", f"{R}.alb", f"{R}.nginx", f"{R}.smi",
    f"{STEP}.setHeaderRoute", f"{STEP}.setMirrorRoute", f"{R}.managedRoutes",
    f"{STEP}.setCanaryScale", f"{C}.canaryMetadata", f"{C}.stableMetadata", f"{C}.antiAffinity",
}


def _under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree + ".") or path.startswith(tree + "[]")


def _gap(path: str) -> bool:
    return any(_under(path, g.path) for g in GAPS)


def _supported(path: str) -> bool:
    return path in SUPPORTED or any(_under(path, t) for t in SUPPORTED_TREES)


def test_every_argo_field_is_implemented_or_a_listed_gap() -> None:
    assert len(ARGO_FIELDS) > 200
    undecided = [p for p in ARGO_FIELDS if not _gap(p) and not _supported(p)]
    assert undecided == [], "decide: implement or add to rollouts/api/unsupported.py"
    both = [p for p in ARGO_FIELDS if _gap(p) and p in SUPPORTED]  # trees may carve out gaps
    assert both == []
    assert all(g.path in ARGO_FIELDS for g in GAPS), "a gap that is no Argo field"


def _schema_at(schema: dict[str, Any], path: str) -> dict[str, Any] | None:
    """Our CRD's schema for an Argo path; None where the server would prune it."""
    node = schema["properties"]["spec"]
    for seg in re.findall(r"[^.\[\]]+|\[\]", path.removeprefix("spec.")):
        if node.get("x-kubernetes-preserve-unknown-fields"):
            return node
        if seg == "[]":
            node = node.get("items") or {}
        elif seg in (node.get("properties") or {}):
            node = node["properties"][seg]
        else:
            return None
    return node


def test_the_crd_keeps_every_argo_field() -> None:
    schema = schemas()[("rollouts.dev/v1alpha1", "Rollout")]
    pruned = [p for p in ARGO_FIELDS if _schema_at(schema, p) is None]
    assert pruned == []


GOOD = """\
apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata: {name: demo}
spec:
  replicas: 3
  selector: {matchLabels: {app: demo}}
  template:
    metadata: {labels: {app: demo}}
    spec: {containers: [{name: app, image: demo:1}]}
  strategy:
    canary:
      canaryService: demo-canary
      stableService: demo-stable
      trafficRouting:
        istio:
          virtualService: {name: demo}
          destinationRule: {name: demo, canarySubsetName: canary, stableSubsetName: stable}
      analysis: {templates: [{templateName: errors}]}
      steps:
        - setWeight: 20
        - analysis: {templates: [{templateName: errors}]}
"""
# a value an Argo user would write for each gap
SAMPLES: dict[str, Any] = {
    "spec.analysis": {"successfulRunHistoryLimit": 3},
    "spec.rollbackWindow": {"revisions": 2},
    "spec.selector.matchExpressions": [{"key": "tier", "operator": "Exists"}],
    "spec.workloadRef.scaleDown": "onsuccess",
    f"{BG}.maxUnavailable": 1,
    **{f"{BG}.{a}.{k}": v for a in ("prePromotionAnalysis", "postPromotionAnalysis")
       for k, v in (("analysisRunMetadata", {"labels": {"team": "shop"}}),
                    ("dryRun", [{"metricName": "errors"}]),
                    ("measurementRetention", [{"metricName": "errors", "limit": 5}]))},
    f"{C}.minPodsPerReplicaSet": 2,
    f"{C}.pingPong": {"pingService": "ping", "pongService": "pong"},
    f"{C}.replicaProgressThreshold": {"type": "Percent", "value": 90},
    f"{C}.scaleDownDelayRevisionLimit": 1,
    f"{C}.analysis.analysisRunMetadata": {"labels": {"team": "shop"}},
    f"{C}.analysis.dryRun": [{"metricName": "errors"}],
    f"{C}.analysis.measurementRetention": [{"metricName": "errors", "limit": 5}],
    f"{STEP}.analysis.analysisRunMetadata": {"labels": {"team": "shop"}},
    f"{STEP}.analysis.dryRun": [{"metricName": "errors"}],
    f"{STEP}.analysis.measurementRetention": [{"metricName": "errors", "limit": 5}],
    f"{STEP}.experiment.templates[].weight": 10,
    f"{STEP}.plugin": {"name": "acme/step", "config": {"a": 1}},
    f"{R}.ambassador": {"mappings": ["demo"]},
    f"{R}.apisix": {"route": {"name": "demo"}},
    f"{R}.appMesh": {"virtualService": {"name": "demo"}},
    f"{R}.traefik": {"weightedTraefikServiceName": "demo"},
    f"{R}.plugins": {"acme/router": {"a": 1}},
    f"{R}.maxTrafficWeight": 1000,
    f"{R}.istio.destinationRule.additionalSubsetNames": ["extra"],
}


def with_gap(path: str, value: Any) -> dict[str, Any]:
    doc = yaml.safe_load(GOOD)
    segs = path.removeprefix("spec.").split(".")
    node = doc["spec"]
    if segs[:3] == ["strategy", "canary", "steps[]"]:
        rest = segs[3:]
        step: dict[str, Any] = copy.deepcopy(doc["spec"]["strategy"]["canary"]["steps"][1]) \
            if rest[0] == "analysis" else {}
        if rest[0] == "analysis":
            step["analysis"][rest[1]] = value
        elif rest[0] == "experiment":
            step["experiment"] = {"duration": "1m", "templates": [
                {"name": "b", "specRef": "canary", "weight": value}]}
        else:
            step[rest[0]] = value
        node["strategy"]["canary"]["steps"].append(step)
        return doc
    if segs[0] == "workloadRef":
        del node["template"]
        node["workloadRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo"}
    if segs[:2] == ["strategy", "blueGreen"]:
        node["strategy"] = {"blueGreen": {"activeService": "demo-active",
                                          "prePromotionAnalysis": {"templates": [
                                              {"templateName": "errors"}]}}}
    for s in segs[:-1]:
        node = node.setdefault(s, {})
    node[segs[-1]] = value
    return doc


def test_every_gap_has_a_sample() -> None:
    assert set(SAMPLES) == {g.path for g in GAPS}


@pytest.mark.parametrize("path", [g.path for g in GAPS])
def test_a_gap_is_accepted_by_the_crd_and_named_by_invalid_spec_and_lint(path: str) -> None:
    doc = with_gap(path, SAMPLES[path])
    where = path.replace("[]", "[2]", 1).replace("[]", "[0]")
    _spec, errors = parse_spec(doc["spec"])
    assert any(e.startswith(f"{where} is not supported by this controller") for e in errors), errors
    findings, ours = lint_text(yaml.safe_dump(doc, sort_keys=False), "gap.yaml")
    assert ours == 1
    assert [f for f in findings if f.source != CONTROLLER] == [], "the API server accepts it"
    assert any(f.message.startswith(where) for f in findings), findings


def test_an_allowed_value_is_no_gap() -> None:
    doc = with_gap("spec.workloadRef.scaleDown", "never")
    spec, errors = parse_spec(doc["spec"])
    assert errors == [] and spec is not None


def test_the_readme_lists_exactly_the_gaps() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Known gaps", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`(spec\.[A-Za-z.\[\]]+)`", section))
    assert listed == {g.path for g in GAPS}

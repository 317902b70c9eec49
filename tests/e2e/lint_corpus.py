"""Manifests, good and bad, each with whether the API server refuses it (with the shipped
CRDs, a strict create as kubectl does). ``rollouts lint`` must say the same: the unit
tests check lint against ``refused``, tests/e2e/test_lint_server.py checks both against the
real API server."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rollouts.cli.lint import schemas

JSON = dict[str, Any]


@dataclass(frozen=True)
class Case:
    id: str
    doc: JSON
    refused: bool  # by the API server
    # for manifests the server accepts: a field the controller refuses (InvalidSpec), which
    # must survive the server (not be pruned) and be named by lint
    gap: str | None = None


def rollout() -> JSON:
    return {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "demo"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "demo"}},
            "template": {"metadata": {"labels": {"app": "demo"}},
                         "spec": {"containers": [{"name": "app", "image": "demo:1"}]}},
            "strategy": {"canary": {
                "canaryService": "demo-canary", "stableService": "demo-stable",
                "trafficRouting": {"istio": {"virtualService": {"name": "demo",
                                                                "routes": ["primary"]}}},
                "steps": [{"setWeight": 20}, {"pause": {"duration": "30s"}}, {"pause": {}}],
            }},
        },
    }


def template(kind: str = "AnalysisTemplate") -> JSON:
    return {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": kind, "metadata": {"name": "errors"},
        "spec": {
            "args": [{"name": "service"}],
            "metrics": [{
                "name": "error-rate", "interval": "30s", "count": 5, "failureLimit": 1,
                "successCondition": "result[0] < 0.01",
                "provider": {"prometheus": {"address": "http://prometheus:9090",
                                            "query": "sum(rate(errors{svc='{{args.service}}'}[1m]))"}},
            }],
        },
    }


def _mut(base: Callable[[], JSON], f: Callable[[JSON], Any]) -> JSON:
    doc = copy.deepcopy(base())
    f(doc)
    return doc


def _canary(d: JSON) -> JSON:
    c: JSON = d["spec"]["strategy"]["canary"]
    return c


def _steps(d: JSON) -> list[JSON]:
    s: list[JSON] = _canary(d)["steps"]
    return s


def _metric(d: JSON) -> JSON:
    m: JSON = d["spec"]["metrics"][0]
    return m


def rollout_cases() -> list[Case]:
    r = rollout
    cases = [
        Case("good", r(), False),
        Case("setWeight-150", _mut(r, lambda d: _steps(d).append({"setWeight": 150})), True),
        Case("setWeight-null", _mut(r, lambda d: _steps(d).append({"setWeight": None})), True),
        Case("pause-soon", _mut(r, lambda d: _steps(d).append({"pause": {"duration": "soon"}})),
             True),
        Case("pause-600", _mut(r, lambda d: _steps(d).append({"pause": {"duration": 600}})), False),
        Case("pause-negative", _mut(r, lambda d: _steps(d).append({"pause": {"duration": -5}})),
             True),
        Case("two-kinds", _mut(r, lambda d: _steps(d).append({"setWeight": 5, "pause": {}})), True),
        Case("empty-step", _mut(r, lambda d: _steps(d).append({})), True),
        Case("unknown-step-field", _mut(r, lambda d: _steps(d).append({"setWeight": 5, "bogus": 1})),
             True),
        Case("too-many-steps", _mut(r, lambda d: _canary(d).update(
            steps=[{"setWeight": 1}] * 101)), True),
        Case("replicas-negative", _mut(r, lambda d: d["spec"].update(replicas=-1)), True),
        Case("replicas-string", _mut(r, lambda d: d["spec"].update(replicas="3")), True),
        Case("replicas-null", _mut(r, lambda d: d["spec"].update(replicas=None)), False),
        # the scale subresource reads replicas as an int32; beyond 64 bits is no integer
        Case("replicas-2^31", _mut(r, lambda d: d["spec"].update(replicas=2**31)), True),
        Case("deadline-2^63", _mut(r, lambda d: d["spec"].update(progressDeadlineSeconds=2**63)),
             True),
        Case("deadline-2^31", _mut(r, lambda d: d["spec"].update(progressDeadlineSeconds=2**31)),
             False),
        # a create ignores status (the status subresource)
        Case("status-garbage", _mut(r, lambda d: d.update(status="x")), False),
        Case("paused-yes", _mut(r, lambda d: d["spec"].update(paused="yes")), True),
        Case("deadline-0", _mut(r, lambda d: d["spec"].update(progressDeadlineSeconds=0)), True),
        Case("maxSurge-lots", _mut(r, lambda d: _canary(d).update(maxSurge="lots")), True),
        Case("maxSurge-negative", _mut(r, lambda d: _canary(d).update(maxSurge=-1)), True),
        Case("maxSurge-float", _mut(r, lambda d: _canary(d).update(maxSurge=1.5)), True),
        Case("maxSurge-percent", _mut(r, lambda d: _canary(d).update(maxSurge="50%",
                                                                     maxUnavailable=0)), False),
        Case("same-services", _mut(r, lambda d: _canary(d).update(canaryService="demo-stable")),
             True),
        Case("no-canary-service", _mut(r, lambda d: _canary(d).pop("canaryService")), True),
        Case("subsets-without-services", _mut(r, lambda d: (
            _canary(d).pop("canaryService"), _canary(d).pop("stableService"),
            _canary(d)["trafficRouting"]["istio"].update(destinationRule={
                "name": "demo", "canarySubsetName": "canary", "stableSubsetName": "stable"}))),
             False),
        Case("destination-rule-incomplete", _mut(r, lambda d: _canary(d)["trafficRouting"]["istio"]
                                                 .update(destinationRule={"name": "demo"})), True),
        Case("vs-and-vss", _mut(r, lambda d: _canary(d)["trafficRouting"]["istio"].update(
            virtualServices=[{"name": "other"}])), True),
        Case("vss-empty", _mut(r, lambda d: _canary(d)["trafficRouting"].update(
            istio={"virtualServices": []})), True),
        Case("template-and-workloadRef", _mut(r, lambda d: d["spec"].update(
            workloadRef={"kind": "Deployment", "name": "demo"})), True),
        Case("neither-template-nor-workloadRef", _mut(r, lambda d: d["spec"].pop("template")), True),
        Case("workloadRef-statefulset", _mut(r, lambda d: (d["spec"].pop("template"), d["spec"].update(
            workloadRef={"kind": "StatefulSet", "name": "demo"}))), True),
        Case("workloadRef-scaleDown-sometimes", _mut(r, lambda d: (
            d["spec"].pop("template"), d["spec"].update(workloadRef={
                "kind": "Deployment", "name": "demo", "scaleDown": "sometimes"}))), True),
        Case("workloadRef-scaleDown-never", _mut(r, lambda d: (
            d["spec"].pop("template"), d["spec"].update(workloadRef={
                "apiVersion": "apps/v1", "kind": "Deployment", "name": "demo",
                "scaleDown": "never"}))), False),
        Case("no-strategy", _mut(r, lambda d: d["spec"].pop("strategy")), True),
        Case("empty-strategy", _mut(r, lambda d: d["spec"].update(strategy={})), True),
        Case("canary-and-blueGreen", _mut(r, lambda d: d["spec"]["strategy"].update(
            blueGreen={"activeService": "x"})), True),
        Case("no-spec", _mut(r, lambda d: d.pop("spec")), True),
        Case("unknown-spec-field", _mut(r, lambda d: d["spec"].update(foo=1)), True),
        Case("selector-operator", _mut(r, lambda d: d["spec"]["selector"].update(
            matchExpressions=[{"key": "app", "operator": "Maybe"}])), True),
        Case("restartAt-yesterday", _mut(r, lambda d: d["spec"].update(restartAt="yesterday")), True),
        Case("restartAt-time", _mut(r, lambda d: d["spec"].update(restartAt="2024-05-01T12:00:00Z")),
             False),
        Case("name-uppercase", _mut(r, lambda d: d["metadata"].update(name="Bad_Name")), True),
        Case("name-dots", _mut(r, lambda d: d["metadata"].update(name="shop.api-v2")), False),
        # the server accepts these; the controller refuses them (lint says so, as controller)
        Case("selector-mismatch", _mut(r, lambda d: d["spec"]["selector"]["matchLabels"].update(
            app="other")), False),
        Case("no-traffic-routing", _mut(r, lambda d: _canary(d).pop("trafficRouting")), False),
    ]
    gaps: list[tuple[str, Callable[[JSON], Any], str]] = [
        ("blueGreen-maxUnavailable", lambda d: d["spec"].update(strategy={"blueGreen": {
            "activeService": "a", "maxUnavailable": 1}}), "spec.strategy.blueGreen.maxUnavailable"),
        ("minPodsPerReplicaSet", lambda d: _canary(d).update(minPodsPerReplicaSet=2),
         "spec.strategy.canary.minPodsPerReplicaSet"),
        ("scaleDownDelayRevisionLimit", lambda d: _canary(d).update(scaleDownDelayRevisionLimit=1),
         "spec.strategy.canary.scaleDownDelayRevisionLimit"),
        ("maxTrafficWeight", lambda d: _canary(d)["trafficRouting"].update(maxTrafficWeight=1000),
         "spec.strategy.canary.trafficRouting.maxTrafficWeight"),
        ("traefik", lambda d: _canary(d)["trafficRouting"].update(traefik={
            "weightedTraefikServiceName": "demo"}), "spec.strategy.canary.trafficRouting.traefik"),
        ("plugin-step", lambda d: _steps(d).append({"plugin": {"name": "acme/step"}}),
         "spec.strategy.canary.steps[3].plugin"),
        ("analysis-dryRun", lambda d: _canary(d).update(analysis={
            "templates": [{"templateName": "errors"}], "dryRun": [{"metricName": "x"}]}),
         "spec.strategy.canary.analysis.dryRun"),
        ("rollbackWindow", lambda d: d["spec"].update(rollbackWindow={"revisions": 2}),
         "spec.rollbackWindow"),
        ("workloadRef-scaleDown-onsuccess", lambda d: (d["spec"].pop("template"), d["spec"].update(
            workloadRef={"kind": "Deployment", "name": "demo", "scaleDown": "onsuccess"})),
         "spec.workloadRef.scaleDown"),
    ]
    cases += [Case(f"gap-{name}", _mut(r, f), False, gap) for name, f, gap in gaps]
    return cases


def template_cases() -> list[Case]:
    t = template
    cases = [
        Case("good", t(), False),
        Case("provider-nosuch", _mut(t, lambda d: _metric(d).update(
            provider={"nosuch": {"address": "http://x"}})), True),
        Case("provider-two", _mut(t, lambda d: _metric(d)["provider"].update(
            web={"url": "http://x"})), True),
        Case("provider-empty", _mut(t, lambda d: _metric(d).update(provider={})), True),
        Case("provider-null", _mut(t, lambda d: _metric(d).update(provider=None)), True),
        Case("provider-web", _mut(t, lambda d: _metric(d).update(
            provider={"web": {"url": "http://x", "jsonPath": "{$.ok}"}})), False),
        Case("no-metrics", _mut(t, lambda d: d["spec"].update(metrics=[])), True),
        Case("metric-without-name", _mut(t, lambda d: _metric(d).pop("name")), True),
        Case("metric-empty-name", _mut(t, lambda d: _metric(d).update(name="")), True),
        Case("interval-float", _mut(t, lambda d: _metric(d).update(interval=1.5)), True),
        Case("count-string", _mut(t, lambda d: _metric(d).update(count="5")), False),
        Case("condition-number", _mut(t, lambda d: _metric(d).update(successCondition=5)), True),
        Case("unknown-metric-field", _mut(t, lambda d: _metric(d).update(timeoutSeconds=5)), True),
        Case("retention-0", _mut(t, lambda d: d["spec"].update(
            measurementRetention=[{"metricName": "error-rate", "limit": 0}])), True),
        Case("dryRun-without-name", _mut(t, lambda d: d["spec"].update(dryRun=[{}])), True),
        Case("dryRun-ok", _mut(t, lambda d: d["spec"].update(dryRun=[{"metricName": "*"}])), False),
        Case("arg-without-name", _mut(t, lambda d: d["spec"]["args"].append({"value": "x"})), True),
        Case("secret-without-key", _mut(t, lambda d: d["spec"]["args"].append(
            {"name": "token", "valueFrom": {"secretKeyRef": {"name": "s"}}})), True),
        Case("name-uppercase", _mut(t, lambda d: d["metadata"].update(name="Errors")), True),
        # Argo's, not implemented: refused by name rather than pruned
        Case("consecutiveSuccessLimit", _mut(t, lambda d: _metric(d).update(
            consecutiveSuccessLimit=3)), True),
        Case("templates", _mut(t, lambda d: d["spec"].update(
            templates=[{"templateName": "other"}])), True),
        # accepted by the server; the controller's checks find these when a run starts
        Case("duplicate-metric", _mut(t, lambda d: d["spec"]["metrics"].append(
            copy.deepcopy(_metric(d)))), False),
    ]
    cases += [Case(f"cluster-{c.id}", {**c.doc, "kind": "ClusterAnalysisTemplate"}, c.refused)
              for c in cases if c.id in ("good", "provider-nosuch")]
    return cases


def all_cases() -> list[Case]:
    return [Case(f"rollout-{c.id}", c.doc, c.refused, c.gap) for c in rollout_cases()] + \
        [Case(f"template-{c.id}", c.doc, c.refused) for c in template_cases()]


# --- generated: every declared field of the CRDs along a good manifest, set to values of
# --- the wrong type, at and beyond its bounds, null, or removed

def rollout_variant() -> JSON:
    """The other shape: subsets instead of Services, a workloadRef, matchExpressions."""
    d = rollout()
    c = _canary(d)
    c.pop("canaryService")
    c.pop("stableService")
    c["trafficRouting"]["istio"]["destinationRule"] = {
        "name": "demo", "canarySubsetName": "canary", "stableSubsetName": "stable"}
    c["analysis"] = {"templates": [{"templateName": "errors"}], "startingStep": 1}
    d["spec"].pop("template")
    d["spec"]["workloadRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo",
                                "scaleDown": "never"}
    d["spec"]["selector"]["matchExpressions"] = [{"key": "tier", "operator": "In",
                                                  "values": ["web"]}]
    return d


def _declared(schema: JSON, doc: Any, path: tuple[str | int, ...]
              ) -> Iterator[tuple[tuple[str | int, ...], JSON, bool]]:
    if isinstance(doc, dict):
        for k, sub in (schema.get("properties") or {}).items():
            yield (*path, k), sub, k in doc
            if k in doc:
                yield from _declared(sub, doc[k], (*path, k))
    elif isinstance(doc, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(doc[:2]):
            yield from _declared(schema["items"], item, (*path, i))


def _values(sub: JSON) -> list[Any]:
    out: list[Any] = [None]
    t = sub.get("type")
    if sub.get("x-kubernetes-int-or-string"):
        out += [1.5, True, [], {}, -1, 0, "x", "10%", "", "9" * 20]
    elif t == "integer":
        out += ["1", 1.5, True, -1, 0, 2**31, 2**63]
        out += [sub[k] + d for k, d in (("minimum", -1), ("minimum", 0), ("maximum", 0),
                                        ("maximum", 1)) if k in sub]
    elif t == "string":
        out += [5, True, "", "x" * 300, "2024-05-01T12:00:00Z", "2024-05-01", *sub.get("enum", [])]
    elif t == "boolean":
        out += ["true", 1, False]
    elif t == "object":
        out += ["x", [], {}, {"zz": 1}]
    elif t == "array":
        out += ["x", {}, [], [None], [{}], ["x"], [1]]
    return out


def _with(doc: JSON, path: tuple[str | int, ...], value: Any, delete: bool = False) -> JSON:
    d = copy.deepcopy(doc)
    cur: Any = d
    for p in path[:-1]:
        cur = cur[p]
    if delete:
        del cur[path[-1]]
    else:
        cur[path[-1]] = value
    return d


def schema_mutations() -> list[Case]:
    """Each declared field of the good manifests mutated, one at a time (about a thousand
    cases); the server's verdict is what it is: only lint's agreement is checked."""
    out: list[Case] = []
    for base_name, base in (("rollout", rollout()), ("rollout-variant", rollout_variant()),
                            ("template", template())):
        schema = schemas()[(base["apiVersion"], base["kind"])]
        for path, sub, present in _declared(schema, base, ()):
            if path[0] in ("apiVersion", "kind", "metadata") or \
                    (path[:2] == ("spec", "template") and len(path) > 3):
                continue
            name = f"{base_name}:" + ".".join(map(str, path))
            if present:
                out.append(Case(f"{name}=DELETE", _with(base, path, None, delete=True), False))
            out += [Case(f"{name}={v!r}"[:100], _with(base, path, v), False) for v in _values(sub)]
    return out

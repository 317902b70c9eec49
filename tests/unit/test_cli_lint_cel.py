"""`rollouts lint` applies the CRDs' own rules as the API server does: CEL included, on the
object after the server's pruning and defaulting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from rollouts.cli.lint import CONTROLLER, SERVER, lint_text
from rollouts.cli.schema import check, normalize, path_text

TEMPLATE = """\
apiVersion: rollouts.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: errors}
spec:
  metrics:
    - name: error-rate
      interval: 30s
      successCondition: result[0] < 0.01
      provider:
        PROVIDER
"""


def server_errors(text: str) -> list[str]:
    findings, ours = lint_text(text, "x.yaml")
    assert ours == 1
    return [f.message for f in findings if f.source == SERVER]


def test_unknown_analysis_provider_is_refused_like_the_server_does() -> None:
    ok = TEMPLATE.replace("PROVIDER", "prometheus: {address: 'http://p:9090', query: up}")
    assert lint_text(ok, "ok.yaml") == ([], 1)
    bad = TEMPLATE.replace("PROVIDER", "nosuch: {address: 'http://p:9090'}")
    (msg,) = server_errors(bad)
    assert msg == ("spec.metrics[0].provider: provider must set exactly one of prometheus, web, "
                   "job, judge, influxdb, graphite, datadog, newRelic, wavefront, cloudWatch, kayenta")
    two = TEMPLATE.replace("PROVIDER", "prometheus: {query: up}\n        web: {url: 'http://x'}")
    assert len(server_errors(two)) == 1


def test_int_or_percent_rule() -> None:
    base = """\
apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata: {name: demo}
spec:
  selector: {matchLabels: {app: demo}}
  template: {metadata: {labels: {app: demo}}, spec: {containers: [{name: app, image: a}]}}
  strategy:
    canary:
      canaryService: c
      stableService: s
      maxSurge: SURGE
      trafficRouting: {istio: {virtualService: {name: vs}}}
"""
    assert lint_text(base.replace("SURGE", "'25%'"), "x.yaml") == ([], 1)
    assert lint_text(base.replace("SURGE", "2"), "x.yaml") == ([], 1)
    assert server_errors(base.replace("SURGE", "lots")) == [
        "spec.strategy.canary.maxSurge: must be a non-negative integer or a percentage like 25%"]
    assert server_errors(base.replace("SURGE", "-1")) == [
        "spec.strategy.canary.maxSurge: must be a non-negative integer or a percentage like 25%"]


SCHEMA: dict[str, Any] = {
    "type": "object",
    "x-kubernetes-validations": [{"rule": "has(self.replicas)", "message": "replicas needed"},
                                 {"rule": "self.replicas == oldSelf.replicas", "message": "x"}],
    "properties": {
        "replicas": {"type": "integer", "default": 1},
        "name": {"type": "string"},
        "items": {"type": "array", "items": {
            "type": "object", "properties": {"w": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.w < 10", "message": "w below 10"}]}},
    },
}


def test_nulls_are_pruned_and_defaults_filled_before_cel() -> None:
    # the server drops `replicas: null` and defaults it to 1: the rule sees 1
    assert normalize({"replicas": None, "zz": 1}, SCHEMA) == {"replicas": 1}
    assert check({"replicas": None}, SCHEMA) == []
    errs = check({"items": [{"w": 3}, {"w": 12}]}, SCHEMA)
    assert [(path_text(p), m) for p, m in errs] == [("items[1]", "w below 10")]


def test_a_rule_that_cannot_be_evaluated_refuses_and_type_errors_skip_cel() -> None:
    (err,) = check({"items": [{}]}, SCHEMA)  # self.w of an item without w: an evaluation error
    assert err[0] == ("items", 0) and "could not be evaluated" in err[1]
    # a wrong type: the server reports it and checks no rule (it would fail on the type)
    assert check({"items": [{"w": "x"}]}, SCHEMA) == [(("items", 0, "w"),
                                                       "must be an integer, got string 'x'")]


def test_metadata_name_must_be_a_dns_subdomain() -> None:
    ok = TEMPLATE.replace("PROVIDER", "web: {url: 'http://x'}")
    bad = ok.replace("name: errors}", "name: Bad_Name}")
    (msg,) = server_errors(bad)
    assert "must be a DNS subdomain" in msg


def test_controller_findings_are_told_apart() -> None:
    text = TEMPLATE.replace("PROVIDER", "web: {url: 'http://x/{{args.who}}'}")
    (f,) = lint_text(text, "x.yaml")[0]
    assert f.source == CONTROLLER and "args.who" in f.message
    assert f.as_dict()["source"] == "controller"


def test_the_lint_command_fails_on_an_unknown_provider(tmp_path: Path) -> None:
    """What the user runs: it used to lint clean while the server refused it."""
    f = tmp_path / "template.yaml"
    f.write_text(TEMPLATE.replace("PROVIDER", "nosuch: {address: 'http://p:9090'}"))
    r = subprocess.run([sys.executable, "-m", "rollouts.cli.main", "lint", str(f)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{f}:9: error: AnalysisTemplate/errors: spec.metrics[0].provider: provider must set " \
           "exactly one of prometheus, web, job, judge" in r.stdout

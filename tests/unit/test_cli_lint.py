"""`rollouts lint`: schema and semantic errors with the line they are on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rollouts.cli.lint import lint_text
from rollouts.cli.schema import parse_path, path_text, validate

REPO = Path(__file__).resolve().parents[2]
BAD = (REPO / "tests/unit/data/lint/bad-rollout.yaml").read_text()

GOOD = """\
apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata:
  name: demo
spec:
  replicas: 3
  selector:
    matchLabels: {app: demo}
  template:
    metadata:
      labels: {app: demo}
    spec:
      containers: [{name: app, image: demo:1}]
  strategy:
    canary:
      canaryService: demo-canary
      stableService: demo-stable
      trafficRouting:
        istio:
          virtualService: {name: demo, routes: [primary]}
      steps:
        - setWeight: 20
        - pause: {duration: 30s}
"""


def test_good_rollout_passes() -> None:
    findings, ours = lint_text(GOOD, "good.yaml")
    assert ours == 1 and findings == []


def test_errors_are_located_and_not_repeated() -> None:
    findings, ours = lint_text(BAD, "bad.yaml")
    assert ours == 1
    got = [(f.line, f.message.split(":")[0].split(" ")[0]) for f in findings]
    assert got == [(26, "spec.strategy.canary.steps[0].setWeight"),
                   (27, "spec.strategy.canary.steps[1].pause.duration"),
                   (28, "spec.strategy.canary.steps[2]"),
                   (30, "spec.strategy.canary.steps[3].bogus"),
                   (30, "spec.strategy.canary.steps[3]")]  # the CEL rule: no step kind left
    assert str(findings[0]).startswith("bad.yaml:26: error: Rollout/demo: ")


def test_missing_fields_semantics_and_argo_api_group() -> None:
    text = GOOD.replace("      canaryService: demo-canary\n", "").replace("replicas: 3", "replicas: -1")
    msgs = [(f.line, f.message) for f in lint_text(text, "x.yaml")[0]]
    assert any(line == 6 and "must be >= 0" in m for line, m in msgs), msgs
    assert any("canaryService and stableService" in m for _, m in msgs), msgs
    argo = GOOD.replace("rollouts.dev/v1alpha1", "argoproj.io/v1alpha1")
    (f,) = lint_text(argo, "argo.yaml")[0]
    assert f.line == 1 and "use rollouts.dev/v1alpha1" in f.message


def test_yaml_syntax_error_has_a_line() -> None:
    (f,) = lint_text("kind: Rollout\nspec: [unclosed\n", "s.yaml")[0]
    assert f.message.startswith("invalid YAML") and f.line >= 2


def test_other_kinds_are_skipped() -> None:
    assert lint_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", "s.yaml") == ([], 0)


def test_analysis_template_semantics() -> None:
    text = """\
apiVersion: rollouts.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: t}
spec:
  metrics:
    - name: m
      provider: {prometheus: {address: "http://p", query: "up{job='{{args.job}}'}"}}
    - name: m
      provider: {prometheus: {address: "http://p", query: "up"}}
"""
    findings, ours = lint_text(text, "t.yaml")
    if ours == 0:  # the analysis CRD is not shipped in this tree
        return
    msgs = [f.message for f in findings]
    assert any("duplicate metric name 'm'" in m for m in msgs), msgs
    assert any("args.job" in m for m in msgs), msgs


def test_schema_validator() -> None:
    schema = {"type": "object", "required": ["a"], "properties": {
        "a": {"type": "integer", "minimum": 1},
        "b": {"x-kubernetes-int-or-string": True},
        "c": {"type": "array", "maxItems": 1, "items": {"type": "string", "enum": ["x"]}},
        "m": {"type": "object", "additionalProperties": {"type": "string"}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    errs = dict((path_text(p), m) for p, m in validate(
        {"a": True, "b": [1], "c": ["y", "x"], "m": {"k": 1}, "free": {"any": 1}, "zz": 1}, schema))
    assert set(errs) == {"a", "b", "c", "c[0]", "m.k", "zz"}
    assert "unknown field" in errs["zz"]
    assert list(validate({}, schema)) == [((), "missing required field 'a'")]
    assert parse_path("spec.steps[2].pause") == ("spec", "steps", 2, "pause")


def test_lint_command_exit_codes(tmp_path: Path) -> None:
    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    bad.write_text(BAD)
    good.write_text(GOOD)
    run = [sys.executable, "-m", "rollouts.cli.main", "lint"]
    r = subprocess.run([*run, str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stdout.startswith(f"{bad}:26: error:"), r.stdout
    r = subprocess.run([*run, str(good), "-o", "json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and '"findings": []' in r.stdout
    examples = sorted((REPO / "examples").glob("*.yaml"))
    if examples:  # the shipped examples are valid
        r = subprocess.run([*run, *map(str, examples)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr

"""`rollouts lint` reports invalid judge parameters, at their line, as the measurement would."""

from __future__ import annotations

from rollouts.cli.lint import lint_text

TEMPLATE = """\
apiVersion: rollouts.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  name: judged
spec:
  args:
    - name: alpha
  metrics:
    - name: canary-vs-stable
      interval: 15s
      provider:
        judge:
          address: http://prometheus:9090
          alpha: "{{args.alpha}}"
%s
          canary: {requests: "sum(a)", errors: "sum(b)"}
          baseline: {requests: "sum(c)", errors: "sum(d)"}
"""


def test_valid_judge_parameters_pass() -> None:
    extra = "          newPods: {policy: exclude, warmupSeconds: 90}\n          minRequests: 50"
    findings, n = lint_text(TEMPLATE % extra, "t.yaml")
    assert n == 1 and findings == [], [str(f) for f in findings]


def test_invalid_judge_parameters_are_errors_with_their_line() -> None:
    extra = ("          newPods: {policy: skip}\n"
             "          errorAlternatives: {min: 0.8, max: 3}\n"
             "          earlyPromotion: \"yes\"")
    findings, _ = lint_text(TEMPLATE % extra, "t.yaml")
    texts = [str(f) for f in findings]
    assert any("earlyPromotion must be true or false" in t for t in texts), texts
    assert all(f.severity == "error" for f in findings)
    assert all(f.line >= 11 for f in findings), texts  # at the judge provider
    findings, _ = lint_text(TEMPLATE % "          newPods: {policy: skip}", "t.yaml")
    assert any("newPods.policy must be one of exclude, include" in str(f) for f in findings)
    findings, _ = lint_text(TEMPLATE % "          errorAlternatives: {min: 0.8, max: 3}", "t.yaml")
    assert any("errorAlternatives must satisfy 1 < lo" in str(f) for f in findings)

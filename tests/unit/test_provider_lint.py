"""`rollouts lint` checks every provider's fields, and every template in docs/providers.md
lints clean (so the documented templates work as written)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from rollouts.cli.lint import lint_text
from rollouts.metrics.expr import condition
from rollouts.metrics.providers import REGISTRY

DOC = Path(__file__).parents[2] / "docs" / "providers.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)

TEMPLATE = """\
apiVersion: rollouts.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: t}
spec:
  metrics:
    - name: m
      successCondition: "true"
      provider:
        PROVIDER
"""


def test_docs_have_a_template_for_every_provider() -> None:
    documented = {k for b in BLOCKS for d in yaml.safe_load_all(b) if d and d["kind"] ==
                  "AnalysisTemplate" for m in d["spec"]["metrics"] for k in m["provider"]}
    assert set(REGISTRY) - {"prometheus", "web"} <= documented
    assert "judge" in documented


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_documented_templates_lint_clean(block: str) -> None:
    findings, count = lint_text(block, "providers.md")
    assert count >= 1
    assert [f.message for f in findings if f.severity == "error"] == []


def test_documented_conditions_parse() -> None:
    for b in BLOCKS:
        for d in yaml.safe_load_all(b):
            for m in (d or {}).get("spec", {}).get("metrics", []):
                if "successCondition" in m:
                    condition(m["successCondition"], _sample(m["provider"]))


def _sample(provider: dict[str, object]) -> object:
    """A value of the provider's documented shape, to evaluate the documented condition."""
    kind = next(iter(provider))
    return {"newRelic": {"rate": 0.5}, "graphite": [0.01, 0.02],
            "cloudWatch": [{"Id": "rate", "Values": [0.001]}]}.get(kind, 0.001)


@pytest.mark.parametrize(("provider", "message"), [
    ("influxdb: {profile: x}", "influxdb.query is required"),
    ("influxdb: {query: q, queryLanguage: sql}", "influxdb.queryLanguage must be one of flux, influxql"),
    ("graphite: {query: 'target=a'}", "graphite.address is required"),
    ("datadog: {apiVersion: v2, queries: {a: x, b: y}}", "datadog: several queries need a formula"),
    ("datadog: {query: x, interval: soon}", "datadog.interval: invalid duration"),
    ("newRelic: {query: q, timeout: -3}", "newRelic.timeout must be a number of seconds >= 0"),
    ("wavefront: {query: q}", "wavefront.address is required"),
    ("cloudWatch: {metricDataQueries: [{id: a, expression: x, metricStat: {}}]}",
     "set exactly one of expression and metricStat"),
    ("kayenta: {address: http://k}", "kayenta.application is required"),
    ("prometheus: {address: http://p}", "prometheus.query is required"),
    ("web: {jsonPath: '{$.a}'}", "web.url is required"),
])
def test_bad_fields_are_errors(provider: str, message: str) -> None:
    findings, _ = lint_text(TEMPLATE.replace("PROVIDER", provider), "t.yaml")
    msgs = [f.message for f in findings if f.severity == "error"]
    assert any(message in m for m in msgs), msgs


@pytest.mark.parametrize("provider", [
    "datadog: {query: x, interval: '{{args.window}}'}",
    "datadog: {query: x, apiVersion: '{{args.window}}', aggregator: '{{args.window}}'}",
    "influxdb: {query: x, queryLanguage: '{{args.window}}'}",
])
def test_templated_values_are_left_to_run_time(provider: str) -> None:
    findings, _ = lint_text(TEMPLATE.replace("PROVIDER", provider).replace(
        "spec:\n", "spec:\n  args: [{name: window}]\n"), "t.yaml")
    assert [f.message for f in findings if f.severity == "error"] == []

"""`rollouts lint` over the corpus of tests/e2e/lint_corpus.py: it refuses exactly what
the API server refuses (checked against the real server by tests/e2e/test_lint_server.py)."""

from __future__ import annotations

import pytest
import yaml

from rollouts.cli.lint import CONTROLLER, SERVER, lint_text
from tests.e2e.lint_corpus import Case, all_cases

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_lint_refuses_what_the_server_refuses(case: Case) -> None:
    findings, ours = lint_text(yaml.safe_dump(case.doc, sort_keys=False), f"{case.id}.yaml")
    assert ours == 1
    server = [f.message for f in findings if f.source == SERVER]
    assert bool(server) == case.refused, findings
    if case.gap is not None:
        assert any(f.source == CONTROLLER and f.message.startswith(case.gap) for f in findings), \
            findings

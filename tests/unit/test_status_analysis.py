"""status.analysis is typed (AnalysisProgress) and reads and writes the same JSON as before,
so a controller upgraded mid-rollout resumes with the same run names."""

from __future__ import annotations

from rollouts.api.status import AnalysisProgress, RolloutStatus, RunRecord


def test_the_stored_shape_reads_back_typed_and_writes_back_unchanged() -> None:
    stored = {"attempt": 2, "step": {"name": "web-abc-2-step1", "phase": "Running", "message": ""},
              "background": {"name": "web-abc-2-bg1", "phase": "Successful", "message": "ok"},
              "backgroundRestarts": 1, "phase": "Failed", "metrics": [{"name": "errors"}]}
    st = RolloutStatus.from_dict({"analysis": stored})
    assert st.analysis.attempt == 2
    assert st.analysis.runs["step"] == RunRecord("web-abc-2-step1", "Running", "")
    assert st.analysis.restarts == {"background": 1}
    assert st.to_dict()["analysis"] == stored  # others' keys (a run summary) carried through


def test_a_new_attempt_forgets_runs_and_replacements() -> None:
    a = AnalysisProgress.from_dict({"attempt": 1, "step": {"name": "x"}, "stepRestarts": 2})
    a.replace_run("background")
    assert a.restarts == {"step": 2, "background": 1}
    a.new_attempt()
    assert (a.attempt, a.runs, a.restarts) == (2, {}, {})
    assert a.to_dict() == {"attempt": 2}
    assert AnalysisProgress().to_dict() is None  # nothing written for a rollout without runs

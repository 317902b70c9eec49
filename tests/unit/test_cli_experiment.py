"""`rollouts get experiment`: what it shows of an Experiment (pure parts)."""

from __future__ import annotations

from rich.console import Console

from rollouts.cli.cmd_experiment import experiment_view, render

EXP = {
    "metadata": {"name": "exp", "namespace": "ns"},
    "spec": {"duration": "1h"},
    "status": {"phase": "Failed", "message": "metric m failed", "availableAt": "2026-01-01T00:00:00Z",
               "templateStatuses": [{"name": "canary", "status": "Running", "replicas": 2,
                                     "readyReplicas": 2, "availableReplicas": 2,
                                     "podTemplateHash": "abc123", "serviceName": "exp-canary"}],
               "analysisRuns": [{"name": "health", "analysisRun": "exp-health", "phase": "Failed",
                                 "message": "metric m failed"}]},
}


def test_view_carries_argos_status_fields() -> None:
    v = experiment_view(EXP)
    assert (v["phase"], v["message"], v["duration"]) == ("Failed", "metric m failed", "1h")
    assert v["templates"][0]["podTemplateHash"] == "abc123"
    assert v["analysisRuns"][0] == {"name": "health", "analysisRun": "exp-health", "phase": "Failed",
                                    "message": "metric m failed"}


def test_table_shows_phase_templates_and_analyses() -> None:
    console = Console(record=True, width=160)
    console.print(render(experiment_view(EXP)))
    text = console.export_text()
    assert "Status:       Failed (metric m failed)" in text
    assert "canary" in text and "2/2" in text and "exp-canary" in text
    assert "exp-health" in text


def test_a_new_experiment_reads_pending() -> None:
    v = experiment_view({"metadata": {"name": "e"}, "spec": {}})
    assert v["phase"] == "Pending" and v["templates"] == [] and v["analysisRuns"] == []


def test_durations_print_like_kubectl() -> None:
    for written, shown in (("5400", "1h30m"), ("300s", "5m"), ("1h", "1h")):
        console = Console(record=True, width=160)
        console.print(render(experiment_view({**EXP, "spec": {"duration": written}})))
        assert f"Duration:     {shown}\n" in console.export_text()

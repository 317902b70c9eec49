"""AnalysisRun bookkeeping shared by the strategies: names, observing a run (Events on its
verdict), aborting on a failed run, stopping runs that are no longer current.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rollouts.api.status import AnalysisProgress, RolloutStatus, RunRecord
from rollouts.controller.decision import (
    AnalysisRunObs,
    CreateAnalysisRun,
    Decision,
    TerminateAnalysisRun,
)
from rollouts.controller.lifecycle import mark_aborted

RUN_SUCCESSFUL, RUN_FAILED, RUN_INCONCLUSIVE, RUN_ERROR = "Successful", "Failed", "Inconclusive", "Error"

RUN_ACTIVE = ("", "Pending", "Running")

def analysis_state(st: RolloutStatus) -> AnalysisProgress:
    return st.analysis

def run_name(rollout: str, h: str, attempt: int, kind: str) -> str:
    return f"{rollout}-{h}-{attempt}-{kind}"

def observe_run(d: Decision, name: str, analysis: dict[str, Any], kind: str,
                 idx: int | None, h: str) -> AnalysisRunObs:
    run = d.analysis_runs.get(name)
    if run is None:
        d.actions.append(CreateAnalysisRun(name=name, analysis=analysis, kind=kind, step_index=idx,
                                           stable_hash=d.status.stable_rs or "", canary_hash=h))
        run = AnalysisRunObs(name, "Pending", "starting")
        d.analysis_runs[name] = run
    a = analysis_state(d.status)
    prev = a.runs.get(kind)
    a.runs[kind] = RunRecord(name, run.phase, run.message)
    if prev is not None and prev.name == name and prev.phase != run.phase \
            and run.phase not in RUN_ACTIVE:
        reason = {RUN_SUCCESSFUL: "AnalysisRunSuccessful", RUN_FAILED: "AnalysisRunFailed",
                  RUN_INCONCLUSIVE: "AnalysisRunInconclusive", RUN_ERROR: "AnalysisRunError"}.get(run.phase)
        if reason:
            text = f"analysis {name} {run.phase.lower()}: {run.message}"
            if run.phase == RUN_SUCCESSFUL:
                d.normal(reason, text)
            else:
                d.warning(reason, text)
    return run

def attempt(d: Decision) -> int:
    return analysis_state(d.status).attempt

def abort_for_analysis(d: Decision, run: AnalysisRunObs, now: datetime) -> None:
    if d.status.abort:
        return
    why = f"analysis {run.name} {run.phase.lower()}: {run.message}"
    mark_aborted(d, now, by="analysis", reason=why,
                 event=f"rollout aborted: {why}; traffic back to stable")

def sweep_runs(d: Decision, keep: set[str]) -> None:
    """Stop every run of this rollout still measuring that is not current (Argo cancels all
    but the current runs): a step promoted past, a superseded revision or attempt, an
    inconclusive run replaced, an abort, a promotion."""
    started = {a.name for a in d.actions if isinstance(a, CreateAnalysisRun)}
    stopping = {a.name for a in d.actions if isinstance(a, TerminateAnalysisRun)}
    for name in sorted(d.analysis_runs):
        run = d.analysis_runs[name]
        if name in keep or name in started or name in stopping:
            continue
        if run.phase in RUN_ACTIVE and not run.terminated:
            d.actions.append(TerminateAnalysisRun(name))

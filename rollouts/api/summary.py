"""What a person or a tool sees of a Rollout: one plain dict shared by the CLI and the HTTP API.

Pure: built from the raw object only, so ``rollouts get -o json`` and
``GET /api/v1/namespaces/{ns}/rollouts/{name}`` always say the same thing.
"""

from __future__ import annotations

import math
from typing import Any, Final

from rollouts.api.analysis_readout import analysis_runs
from rollouts.api.constants import Phase
from rollouts.api.spec import parse_spec
from rollouts.api.status import RolloutStatus

HEALTHY: Final = Phase.HEALTHY
DEGRADED: Final = Phase.DEGRADED


def _containers(raw_spec: Any) -> list[dict[str, str]]:
    try:
        cs = raw_spec["template"]["spec"]["containers"]
    except (KeyError, TypeError):
        return []
    if not isinstance(cs, list):
        return []
    return [{"name": str(c.get("name", "")), "image": str(c.get("image", ""))}
            for c in cs if isinstance(c, dict)]


def up_to_date(obj: dict[str, Any]) -> bool:
    """The status describes the current spec (a stale Healthy must not end a wait)."""
    md = obj.get("metadata") or {}
    st = obj.get("status") or {}
    gen = md.get("generation")
    return gen is None or st.get("observedGeneration") == gen


def settled_phase(obj: dict[str, Any]) -> str | None:
    """Healthy or Degraded once the controller has observed the current spec, else None."""
    phase = (obj.get("status") or {}).get("phase")
    if up_to_date(obj) and phase in (HEALTHY, DEGRADED):
        return str(phase)
    return None


def _revision_of_run(rollout: str, run: str) -> str | None:
    """The revision in a run name ``{rollout}-{hash}-{attempt}-{kind}`` (the controller's)."""
    rest = run[len(rollout) + 1:] if rollout and run.startswith(f"{rollout}-") else ""
    parts = rest.split("-")
    return parts[0] if len(parts) >= 3 and parts[0] else None


def _analysis(name: str, raw_status: Any, st: RolloutStatus) -> dict[str, Any] | None:
    """The AnalysisRuns status records (the controller's ``status.analysis``, Argo's
    ``status.canary.current*AnalysisRunStatus``), each marked as of the current revision and
    attempt or not: a run of a replaced revision must not read as the canary's verdict."""
    status = raw_status if isinstance(raw_status, dict) else {}
    a = status.get("analysis")
    attempt = a.get("attempt") if isinstance(a, dict) else None
    attempt = attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else 0
    runs = []
    seen: set[tuple[str, str]] = set()
    for r in analysis_runs(status):
        if (r.kind, r.name) in seen:  # the same run under Argo's key and ours
            continue
        seen.add((r.kind, r.name))
        rev = _revision_of_run(name, r.name)
        current = rev is not None and rev == st.current_pod_hash and \
            r.name.startswith(f"{name}-{rev}-{attempt}-")
        runs.append({"kind": r.kind, "name": r.name, "phase": r.phase, "message": r.message,
                     "revision": rev, "current": current})
    if not runs:
        return None
    return {"attempt": attempt, "runs": runs}


def _last_action(st: RolloutStatus) -> dict[str, Any] | None:
    """status.lastAction with ``current``: whether it was applied to the revision the
    rollout is on now (a promote of the previous canary is history, not this one's)."""
    a = st.last_action
    if a is None:
        return None
    rev = a.get("podHash")
    if not isinstance(rev, str) or not rev:
        return {**a, "current": None}  # recorded without its revision: unknown
    return {**a, "current": rev == st.current_pod_hash}


def _blue_green(spec: Any, st: RolloutStatus) -> dict[str, Any] | None:
    """A blue-green rollout's Services and the revision each selects (status.blueGreen, the
    selectors the controller wrote)."""
    bgs = getattr(spec, "blue_green", None)
    bg = st.blue_green
    if bgs is None and bg is None:
        return None
    return {
        "activeService": bgs.active_service if bgs is not None else None,
        "previewService": bgs.preview_service if bgs is not None else None,
        "activeSelector": bg.active_selector if bg is not None else None,
        "previewSelector": bg.preview_selector if bg is not None else None,
        "scaleUpPreviewCheckPoint": bg.scale_up_preview_check_point if bg is not None else False,
    }


def summarize(obj: dict[str, Any]) -> dict[str, Any]:
    md = obj.get("metadata") or {}
    raw_spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    spec, errors = parse_spec(raw_spec)
    st = RolloutStatus.from_dict(obj.get("status"))
    steps = spec.canary.steps if spec is not None and spec.canary is not None else ()
    idx = st.current_step_index
    canary_active = bool(st.current_pod_hash and st.stable_rs and st.current_pod_hash != st.stable_rs)
    step_rows = []
    for s in steps:
        kind = ("setWeight" if s.set_weight is not None else "pause" if s.is_pause
                else "setCanaryScale" if s.set_canary_scale is not None
                else "experiment" if s.experiment is not None else "analysis")
        state = ("done" if idx is not None and s.index < idx else
                 "current" if idx == s.index and canary_active else "pending")
        row: dict[str, Any] = {"index": s.index, "kind": kind, "description": s.describe(),
                               "state": state}
        if s.set_weight is not None:
            row["weight"] = s.set_weight
        if s.pause_seconds is not None and not math.isinf(s.pause_seconds):
            row["pauseSeconds"] = s.pause_seconds
        step_rows.append(row)
    return {
        "namespace": str(md.get("namespace") or ""),
        "name": str(md.get("name") or ""),
        "createdAt": md.get("creationTimestamp"),
        "generation": md.get("generation"),
        "observedGeneration": st.observed_generation,
        "upToDate": up_to_date(obj),
        "phase": st.phase or "Unknown",
        "message": st.message,
        "aborted": st.abort,
        "pausedBy": (st.user_pause or {}).get("user") if st.user_pause else None,
        "specPaused": bool(spec.paused) if spec is not None else False,
        "currentStepIndex": idx,
        "totalSteps": len(steps),
        "steps": step_rows,
        "strategy": "blueGreen" if (spec is not None and spec.blue_green is not None) or (
            spec is None and st.blue_green is not None) else "canary",
        "blueGreen": _blue_green(spec, st),
        "weights": {"canary": st.canary_weight, "stable": 100 - st.canary_weight},
        "revisions": {"canary": st.current_pod_hash, "stable": st.stable_rs},
        "replicas": {"desired": spec.replicas if spec is not None else None,
                     "current": st.replicas, "updated": st.updated_replicas,
                     "ready": st.ready_replicas, "available": st.available_replicas},
        "containers": _containers(raw_spec),
        "analysis": _analysis(str(md.get("name") or ""), obj.get("status"), st),
        "pendingAction": st.pending_action,
        "lastAction": _last_action(st),
        "conditions": st.conditions,
        "specErrors": errors,
    }


def list_row(obj: dict[str, Any]) -> dict[str, Any]:
    """The short form of ``summarize`` for lists."""
    s = summarize(obj)
    return {k: s[k] for k in ("namespace", "name", "phase", "message", "currentStepIndex",
                              "totalSteps", "weights", "replicas", "upToDate", "aborted",
                              "createdAt", "strategy")}

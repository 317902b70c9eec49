"""A tolerant reader of the analysis results a Rollout's status carries, for consumers
(notifications, exported metrics) that only look.

Reads Argo's ``status.canary.currentStepAnalysisRunStatus`` and
``currentBackgroundAnalysisRunStatus`` (``{name, status, message}``), its
``status.blueGreen.prePromotionAnalysisRunStatus`` and ``postPromotionAnalysisRunStatus``, and our
``status.analysis``: a dict with ``step`` and ``background`` runs (``{name, phase,
message}``), or ``phase`` and ``message`` itself, and ``metrics`` (or Argo's
``metricResults``), a list of ``{name, phase, value | lastValue | measurements[-1].value,
eValue (or in the last measurement or its metadata), message | explanation}``; a dict of
metric name -> result is accepted too. An AnalysisRun's own ``status`` has the same shape
(``metricResults``), so ``analysis_metrics({"analysis": run["status"]})`` reads it.
Anything else is ignored, never an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunObs:
    kind: str  # step | background | analysis | prePromotion | postPromotion
    name: str
    phase: str
    message: str


@dataclass(frozen=True)
class MetricObs:
    name: str
    phase: str
    value: float | None
    e_value: float | None
    message: str


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, str):
        try:
            f = float(v.strip().strip("[]").split(",")[0])
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _s(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _e_value(d: dict[str, Any]) -> float | None:
    return next((_num(d[k]) for k in ("eValue", "evalue", "e_value") if k in d), None)


def _metric(name: str, m: dict[str, Any]) -> MetricObs:
    value = next((_num(m[k]) for k in ("value", "lastValue") if k in m), None)
    meas = m.get("measurements")
    if value is None and isinstance(meas, list) and meas and isinstance(meas[-1], dict):
        value = _num(meas[-1].get("value"))
    e = _e_value(m)
    if e is None and isinstance(meas, list) and meas and isinstance(meas[-1], dict):
        last = meas[-1]
        md = last.get("metadata")
        e = _e_value(last) if _e_value(last) is not None else _e_value(md) if isinstance(md, dict) else None
    return MetricObs(name, _s(m.get("phase")), value, e,
                     _s(m.get("message")) or _s(m.get("explanation")))


def analysis_runs(status: dict[str, Any]) -> list[RunObs]:
    out: list[RunObs] = []
    canary = status.get("canary")
    if isinstance(canary, dict):
        for key, kind in (("currentStepAnalysisRunStatus", "step"),
                          ("currentBackgroundAnalysisRunStatus", "background")):
            r = canary.get(key)
            if isinstance(r, dict):
                out.append(RunObs(kind, _s(r.get("name")), _s(r.get("status")) or _s(r.get("phase")),
                                  _s(r.get("message"))))
    bg = status.get("blueGreen")
    if isinstance(bg, dict):
        for key, kind in (("prePromotionAnalysisRunStatus", "prePromotion"),
                          ("postPromotionAnalysisRunStatus", "postPromotion")):
            r = bg.get(key)
            if isinstance(r, dict):
                out.append(RunObs(kind, _s(r.get("name")), _s(r.get("status")) or _s(r.get("phase")),
                                  _s(r.get("message"))))
    a = status.get("analysis")
    if not isinstance(a, dict):
        return out
    if a.get("phase") or a.get("status"):
        out.append(RunObs("analysis", _s(a.get("name")), _s(a.get("phase")) or _s(a.get("status")),
                          _s(a.get("message")) or _s(a.get("explanation"))))
    # {attempt, step: {name, phase, message}, background: ...} (blue-green: pre/postPromotion)
    for kind in ("step", "background", "prePromotion", "postPromotion"):
        r = a.get(kind)
        if isinstance(r, dict) and (r.get("phase") or r.get("status")):
            out.append(RunObs(kind, _s(r.get("name")), _s(r.get("phase")) or _s(r.get("status")),
                              _s(r.get("message"))))
    return out


def analysis_metrics(status: dict[str, Any]) -> list[MetricObs]:
    a = status.get("analysis")
    if not isinstance(a, dict):
        return []
    raw = a.get("metrics", a.get("metricResults"))
    out: list[MetricObs] = []
    if isinstance(raw, list):
        for m in raw:
            if isinstance(m, dict) and isinstance(m.get("name"), str) and m["name"]:
                out.append(_metric(m["name"], m))
    elif isinstance(raw, dict):
        for name, m in raw.items():
            if isinstance(name, str) and name and isinstance(m, dict):
                out.append(_metric(name, m))
    return out

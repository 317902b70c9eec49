"""What the dashboard shows of an AnalysisRun: its metrics, their measurements and, for
the judge, its evidence over time.

The judge stores one cumulative-counter snapshot per measurement (``judgeSnapshots``,
thinned past 200) and only its latest evidence; the history is derived by replaying the
stored snapshots through a fresh judge, exactly as the controller recomputes its verdict
(``rollouts.metrics.judge.replay``). Pure: built from the AnalysisRun object alone.
"""

from __future__ import annotations

import math
from typing import Any

from rollouts.controller.analysisrun import substitute
from rollouts.metrics import judge
from rollouts.metrics.providers import ProviderError

MAX_MEASUREMENTS = 30  # per metric, newest kept: the page lists them, the charts use snapshots


def _num(x: Any) -> float | None:
    """A finite number, or None (JSON has no NaN; the judge writes "inf" as a string)."""
    if isinstance(x, bool):
        return None
    if isinstance(x, int | float):
        return float(x) if math.isfinite(x) else None
    if x == "inf":
        return math.inf
    return None


def _finite(x: Any) -> float | None:
    v = _num(x)
    return v if v is not None and math.isfinite(v) else None


def _rate(bad: Any, total: Any) -> float | None:
    b, n = _finite(bad), _finite(total)
    return b / n if b is not None and n else None


def _dict(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _plain_args(spec: dict[str, Any]) -> dict[str, str | None]:
    """The run's literal args; an arg from a Secret stays unresolved (the dashboard reads no
    Secret), so a judge parameter templated on one leaves the history unavailable."""
    out: dict[str, str | None] = {}
    for a in spec.get("args") or []:
        if isinstance(a, dict) and isinstance(a.get("name"), str):
            v = a.get("value")
            out[a["name"]] = str(v) if v is not None else None
    return out


def _judge_spec(run: dict[str, Any], metric: str) -> dict[str, Any] | None:
    spec = _dict(run.get("spec"))
    for m in spec.get("metrics") or []:
        if isinstance(m, dict) and m.get("name") == metric:
            j = (m.get("provider") or {}).get("judge")
            if isinstance(j, dict):
                return j
    return None


def _point(t: float, v: Any) -> dict[str, Any]:
    """One look of the judge: per metric (error-rate, latency) the e-value, its threshold,
    the confidence sequence of the ratio canary/stable, and the counts behind them."""
    tests: dict[str, Any] = {}
    arms: dict[str, Any] = {}
    for m in v.metrics:
        d = m.to_dict()
        lo, hi = d["interval"]
        tests[d["name"]] = {"eValue": _num(d["e_value"]), "threshold": _num(d["threshold"]),
                            "estimate": _num(d["estimate"]), "low": _num(lo), "high": _num(hi),
                            "decision": d["decision"]}
        c = d["counts"]
        if d["name"] == "error-rate":
            arms = {"canaryRequests": _finite(c.get("canary_requests")),
                    "baselineRequests": _finite(c.get("baseline_requests")),
                    "canaryErrorRate": _rate(c.get("canary_bad"), c.get("canary_requests")),
                    "baselineErrorRate": _rate(c.get("baseline_bad"), c.get("baseline_requests"))}
        elif not arms:
            arms = {"canaryRequests": _finite(c.get("canary_requests")),
                    "baselineRequests": _finite(c.get("baseline_requests"))}
    return {"t": t, "decision": v.decision.value, "tests": tests, **arms}


def judge_history(run: dict[str, Any], metric: str, result: dict[str, Any]) -> dict[str, Any]:
    """``{"points": [...]}`` (one per stored snapshot), or ``{"points": [], "error": why}``."""
    snaps = [s for s in result.get("judgeSnapshots") or [] if isinstance(s, dict)]
    raw = _judge_spec(run, metric)
    if raw is None:
        return {"points": [], "error": "the run's spec has no judge provider for this metric"}
    spec = _dict(run.get("spec"))
    try:
        resolved = substitute(raw, _plain_args(spec))
    except KeyError as e:
        return {"points": [], "error": f"args.{e.args[0]} has no literal value (from a Secret?): "
                                       "the evidence history cannot be replayed here"}
    try:
        verdicts = list(judge.replay(resolved, snaps)) if snaps else []
    except (ProviderError, ValueError, TypeError, KeyError, ArithmeticError) as e:
        return {"points": [], "error": f"the stored snapshots cannot be replayed: {e!r}"}
    points = []
    for s, v in zip(snaps, verdicts, strict=False):
        t = _finite(s.get("t"))
        if t is not None:
            points.append(_point(t, v))
    return {"points": points}


def _measurement(m: dict[str, Any]) -> dict[str, Any]:
    return {k: m.get(k) for k in ("phase", "value", "message", "startedAt", "finishedAt",
                                  "decision") if m.get(k) is not None}


def metric_view(run: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    name = str(result.get("name") or "")
    meas = [m for m in result.get("measurements") or [] if isinstance(m, dict)]
    out: dict[str, Any] = {
        "name": name, "phase": str(result.get("phase") or ""),
        "message": str(result.get("message") or ""),
        "counts": {k: int(result.get(k) or 0) for k in ("count", "successful", "failed",
                                                          "inconclusive", "error")},
        "measurements": [_measurement(m) for m in meas[-MAX_MEASUREMENTS:]],
        "measurementsTotal": len(meas),
    }
    if "judgeSnapshots" in result or _judge_spec(run, name) is not None:
        out["judge"] = {"evidence": result.get("evidence") or None,
                        "history": judge_history(run, name, result)}
    return out


def run_view(run: dict[str, Any]) -> dict[str, Any]:
    md = run.get("metadata") or {}
    st = _dict(run.get("status"))
    labels = md.get("labels") or {}
    return {
        "name": str(md.get("name") or ""),
        "kind": str(labels.get("rollouts.dev/analysis") or ""),
        "revision": str(labels.get("rollouts-pod-template-hash") or ""),
        "step": labels.get("rollouts.dev/step"),
        "createdAt": md.get("creationTimestamp"),
        "phase": str(st.get("phase") or "Pending"),
        "message": str(st.get("message") or ""),
        "metrics": [metric_view(run, r) for r in st.get("metricResults") or [] if isinstance(r, dict)],
    }

"""Which Alertmanager alerts a rollout has: derived from each decision (pure).

One alert per cause, labelled ``alertname, namespace, rollout, metric, severity``:

- an analysis verdict (Event ``AnalysisRun{Failed,Error,Inconclusive}`` or a failed run in
  status) -> ``RolloutAnalysis{Failed,Error,Inconclusive}``, with the metric when known;
- an abort -> ``RolloutAborted`` (or ``RolloutProgressDeadlineExceeded`` when the deadline
  caused it) unless an analysis alert already explains it: a rolled-back canary is one
  incident, so it is one alert, whose description then says the rollout was aborted;
- a progress deadline without abort -> ``RolloutProgressDeadlineExceeded``.

An alert fires from the decision's Events (their message is the explanation) or, after a
controller restart, from status alone; it stays active until the rollout is Healthy
again (after a retry and promotion, or a rollback of the spec) or deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from rollouts.api.analysis_readout import MetricObs, analysis_metrics, analysis_runs
from rollouts.notify.payloads import am_alert
from rollouts.notify.triggers import EventLike

ANALYSIS: Final[dict[str, tuple[str, str, str]]] = {
    # Event reason -> (alertname, severity, run/metric phase)
    "AnalysisRunFailed": ("RolloutAnalysisFailed", "critical", "Failed"),
    "AnalysisRunError": ("RolloutAnalysisError", "warning", "Error"),
    "AnalysisRunInconclusive": ("RolloutAnalysisInconclusive", "warning", "Inconclusive"),
}
_BY_PHASE: Final = {phase: (name, sev) for name, sev, phase in ANALYSIS.values()}
ABORTED: Final = "RolloutAborted"
DEADLINE: Final = "RolloutProgressDeadlineExceeded"
_ABORT_NOTE: Final = "rollout aborted: traffic back to stable"
_ANALYSIS_NAMES: Final = frozenset(name for name, _, _ in ANALYSIS.values())


@dataclass(frozen=True)
class Cause:
    alertname: str
    severity: str
    description: str
    metric: str = ""
    from_event: bool = False  # explanations from Events replace older ones; status ones do not


def _metric_for(metrics: list[MetricObs], phase: str) -> MetricObs | None:
    return next((m for m in metrics if m.phase == phase), None)


def causes(status: dict[str, Any], events: Sequence[EventLike]) -> list[Cause]:
    """What is wrong with a rollout after a decision (``status`` is the new status dict)."""
    out: dict[tuple[str, str], Cause] = {}
    metrics = analysis_metrics(status)
    for e in events:
        if e.reason in ANALYSIS:
            name, sev, phase = ANALYSIS[e.reason]
            m = _metric_for(metrics, phase)
            c = Cause(name, sev, e.message or (m.message if m else ""), m.name if m else "", True)
            out[(c.alertname, c.metric)] = c
    ro_phase = status.get("phase")
    for run in analysis_runs(status):
        # from status alone (after a restart) only while the verdict still holds the rollout:
        # a failure aborted it (Degraded), an inconclusive result paused it
        holds = ro_phase == "Degraded" if run.phase != "Inconclusive" else ro_phase == "Paused"
        if run.phase in _BY_PHASE and holds:
            name, sev = _BY_PHASE[run.phase]
            m = _metric_for(metrics, run.phase)
            c = Cause(name, sev, run.message or (m.message if m else ""), m.name if m else "")
            out.setdefault((c.alertname, c.metric), c)
    reasons = {e.reason: e.message for e in events}
    conds = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
    prog = conds.get("Progressing") or {}
    deadline = prog.get("reason") == "ProgressDeadlineExceeded"
    if status.get("abort") is True:
        if out:
            return [Cause(c.alertname, c.severity, _with_abort(c.description), c.metric, c.from_event)
                    for c in out.values()]
        reason = str(status.get("abortReason") or "")
        if reason.startswith("ProgressDeadlineExceeded") or (deadline and reason == ""):
            msg = reasons.get("ProgressDeadlineExceeded") or reason
            return [Cause(DEADLINE, "critical", _with_abort(msg), "", "ProgressDeadlineExceeded" in reasons)]
        msg = reasons.get("RolloutAborted") or str(status.get("message") or reason)
        return [Cause(ABORTED, "critical", msg, "", "RolloutAborted" in reasons)]
    if deadline:
        msg = reasons.get("ProgressDeadlineExceeded") or str(prog.get("message") or "")
        out[(DEADLINE, "")] = Cause(DEADLINE, "warning", msg, "", "ProgressDeadlineExceeded" in reasons)
    return list(out.values())


def _with_abort(desc: str) -> str:
    return desc if "aborted" in desc else (f"{desc} ({_ABORT_NOTE})" if desc else _ABORT_NOTE)


@dataclass
class Alert:
    namespace: str
    rollout: str
    alertname: str
    metric: str
    severity: str
    description: str
    revision: str
    starts_at: datetime
    urls: set[str] = field(default_factory=set)
    resolved_at: datetime | None = None

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return (self.namespace, self.rollout, self.alertname, self.metric)

    def labels(self) -> dict[str, str]:
        return {"alertname": self.alertname, "namespace": self.namespace, "rollout": self.rollout,
                "metric": self.metric, "severity": self.severity}

    def annotations(self) -> dict[str, str]:
        what = f"analysis metric {self.metric}" if self.metric else "rollout"
        return {"summary": f"Rollout {self.namespace}/{self.rollout}: {self.alertname} ({what})",
                "description": self.description, "revision": self.revision}

    def to_am(self, now: datetime, active_for: timedelta) -> dict[str, Any]:
        """Firing: ``endsAt`` a few resend intervals ahead (it lapses if we stop re-sending);
        resolved: ``endsAt`` is the time it was resolved."""
        ends = self.resolved_at if self.resolved_at is not None else now + active_for
        return am_alert(self.labels(), self.annotations(), self.starts_at, ends)


class AlertTracker:
    """The active alerts of every rollout (keyed ``namespace/name``)."""

    def __init__(self) -> None:
        self.active: dict[str, dict[tuple[str, str, str, str], Alert]] = {}

    def observe(self, key: str, namespace: str, rollout: str, status: dict[str, Any],
                events: Sequence[EventLike], urls: set[str],
                now: datetime) -> tuple[list[Alert], list[Alert]]:
        """(alerts new or changed: send now, alerts resolved: send with ``endsAt``)."""
        mine = self.active.get(key, {})
        if status.get("phase") == "Healthy":
            return [], self.forget(key, now)
        changed: list[Alert] = []
        revision = str(status.get("currentPodHash") or "")
        explained = [a for a in mine.values() if a.alertname in _ANALYSIS_NAMES]
        for c in causes(status, events):
            if explained and c.alertname in (ABORTED, DEADLINE) and status.get("abort") is True:
                # the abort follows an analysis verdict already alerted on: same incident
                for a in explained:
                    if "aborted" not in a.description:
                        a.description = _with_abort(a.description)
                        changed.append(a)
                continue
            ident = (namespace, rollout, c.alertname, c.metric)
            cur = mine.get(ident)
            if cur is None:
                cur = Alert(namespace, rollout, c.alertname, c.metric, c.severity, c.description,
                            revision, now, set(urls))
                mine[ident] = cur
                changed.append(cur)
            elif (c.from_event and c.description != cur.description) or not urls <= cur.urls:
                cur.description = c.description if c.from_event else cur.description
                cur.urls |= urls
                changed.append(cur)
        if mine:
            self.active[key] = mine
        return changed, []

    def forget(self, key: str, now: datetime) -> list[Alert]:
        gone = list(self.active.pop(key, {}).values())
        for a in gone:
            a.resolved_at = now
        return gone

    def firing(self) -> list[Alert]:
        return [a for alerts in self.active.values() for a in alerts.values()]

"""What every judge returns: a decision, a measurement phase and the evidence behind them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

__all__ = ["Decision", "MetricVerdict", "Phase", "Verdict", "fmt_ratio"]


class Decision(StrEnum):
    CONTINUE = "continue"
    PROMOTE = "promote"
    ROLLBACK = "rollback"


class Phase(StrEnum):
    """Measurement phases as in Argo Rollouts' AnalysisRun."""

    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


def _clean(x: Any) -> Any:
    """JSON has no NaN/inf: map them to None / strings."""
    if isinstance(x, float):
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
    if isinstance(x, Enum):
        return x.value
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def fmt_ratio(x: float) -> str:
    if math.isnan(x):
        return "?"
    if math.isinf(x):
        return "inf"
    return f"{x:.2g}" if x < 10 else f"{x:.0f}"


@dataclass(frozen=True)
class MetricVerdict:
    """One metric's state. Absent numbers are NaN (``None`` in ``to_dict``)."""

    name: str
    decision: Decision
    phase: Phase
    explanation: str
    e_value: float = math.nan
    threshold: float = math.nan  # e-value (or score / limit) that triggers the decision
    p_value: float = math.nan
    estimate: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    counts: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "decision": self.decision.value,
            "phase": self.phase.value,
            "explanation": self.explanation,
            "e_value": _clean(self.e_value),
            "threshold": _clean(self.threshold),
            "p_value": _clean(self.p_value),
            "estimate": _clean(self.estimate),
            "interval": [_clean(self.ci_low), _clean(self.ci_high)],
            "counts": dict(self.counts),
            "details": _clean(self.details),
        }


@dataclass(frozen=True)
class Verdict:
    """A judge's answer after one update; ``metrics`` carries the per-metric evidence."""

    judge: str
    decision: Decision
    phase: Phase
    explanation: str
    metrics: tuple[MetricVerdict, ...] = ()
    elapsed: float = 0.0  # seconds of data judged so far

    def to_dict(self) -> dict[str, Any]:
        return {
            "judge": self.judge,
            "decision": self.decision.value,
            "phase": self.phase.value,
            "explanation": self.explanation,
            "elapsed_seconds": _clean(self.elapsed),
            "metrics": [m.to_dict() for m in self.metrics],
        }

    @classmethod
    def from_error(cls, judge: str, error: Exception | str) -> Verdict:
        """An Error measurement for input a judge rejected; the decision stays CONTINUE so
        the caller's failure/error limits (not a silent pass or fail) decide what happens."""
        return cls(judge, Decision.CONTINUE, Phase.ERROR, f"analysis error: {error}")

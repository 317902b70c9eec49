"""Kayenta-compatible judge: per-metric Mann-Whitney classification and a weighted score.

Follows the semantics Spinnaker documents for its default canary judge: NaN handling,
no-data rules, a Mann-Whitney confidence interval for the Hodges-Lehmann shift, a metric
is High (Low) when the whole interval lies above (below) a tolerance band of
+-tolerance x |shift| and the mean ratio exceeds allowed_increase (is below
allowed_decrease); group score = share of Pass among classified metrics; summary score =
weighted sum of group scores; a failing critical metric sets the score to 0.

It is a fixed-horizon test: repeating it on a growing window inflates false alarms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import norm

from .verdict import Decision, MetricVerdict, Phase, Verdict

__all__ = [
    "Classification",
    "MannWhitneyConfig",
    "MannWhitneyJudge",
    "MetricConfig",
    "classify",
    "hodges_lehmann_interval",
]


class Classification(StrEnum):
    PASS = "Pass"
    HIGH = "High"
    LOW = "Low"
    NODATA = "Nodata"
    NODATA_FAIL = "NodataFailMetric"
    ERROR = "Error"


@dataclass(frozen=True)
class MetricConfig:
    """One metric as in a Kayenta canary config (``analysisConfigurations.canary``)."""

    name: str
    group: str = "default"
    direction: Literal["increase", "decrease", "either"] = "either"
    critical: bool = False
    must_have_data: bool = False
    nan_strategy: Literal["remove", "replace"] = "remove"
    allowed_increase: float = 1.0
    allowed_decrease: float = 1.0
    outliers: Literal["keep", "remove"] = "keep"
    outlier_factor: float = 3.0


@dataclass(frozen=True)
class MannWhitneyConfig:
    confidence: float = 0.98
    tolerance: float = 0.25
    pass_threshold: float = 95.0
    marginal_threshold: float = 75.0
    group_weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.confidence < 1:
            raise ValueError("confidence must be in (0, 1)")
        if not 0 <= self.marginal_threshold <= self.pass_threshold <= 100:
            raise ValueError("need 0 <= marginal_threshold <= pass_threshold <= 100")


def hodges_lehmann_interval(
    canary: ArrayLike, baseline: ArrayLike, confidence: float
) -> NDArray[np.float64]:
    """(lower, upper, estimate) of the shift canary - baseline, vectorised over rows.

    The interval is the pair of order statistics of all pairwise differences whose ranks
    come from the normal approximation of the Mann-Whitney statistic (no tie correction).
    Inputs are (..., m) and (..., n) arrays; the output is (..., 3).
    """
    x = np.asarray(canary, dtype=np.float64)
    y = np.asarray(baseline, dtype=np.float64)
    m, n = x.shape[-1], y.shape[-1]
    d = (x[..., :, None] - y[..., None, :]).reshape(*x.shape[:-1], m * n)
    mn = m * n
    z = float(norm.ppf(0.5 + confidence / 2))
    k = math.floor(mn / 2 - z * math.sqrt(mn * (m + n + 1) / 12.0))
    k = min(max(k, 0), mn - 1)
    mid_lo, mid_hi = (mn - 1) // 2, mn // 2
    kth = sorted({k, mn - 1 - k, mid_lo, mid_hi})
    part = np.partition(d, kth, axis=-1)
    est = 0.5 * (part[..., mid_lo] + part[..., mid_hi])
    return np.stack([part[..., k], part[..., mn - 1 - k], est], axis=-1)


def _iqr_filter(v: NDArray[np.float64], factor: float) -> NDArray[np.float64]:
    if v.size < 4:
        return v
    q1, q3 = np.percentile(v, [25, 75])
    iqr = q3 - q1
    out: NDArray[np.float64] = v[(v >= q1 - factor * iqr) & (v <= q3 + factor * iqr)]
    return out


def _prepare(values: Sequence[float] | ArrayLike, m: MetricConfig) -> NDArray[np.float64]:
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)] if m.nan_strategy == "remove" else np.nan_to_num(v, nan=0.0)
    if m.outliers == "remove":
        v = _iqr_filter(v, m.outlier_factor)
    return v


@dataclass(frozen=True)
class MetricResult:
    classification: Classification
    ratio: float
    interval: tuple[float, float, float]  # lower, upper, Hodges-Lehmann estimate
    reason: str


def classify(
    canary: Sequence[float] | ArrayLike,
    baseline: Sequence[float] | ArrayLike,
    metric: MetricConfig,
    config: MannWhitneyConfig | None = None,
) -> MetricResult:
    """Classify one metric's canary series against its baseline series."""
    cfg = config or MannWhitneyConfig()
    x, y = _prepare(canary, metric), _prepare(baseline, metric)
    nan3 = (math.nan, math.nan, math.nan)
    if x.size == 0 or y.size == 0:
        if metric.critical or metric.must_have_data:
            return MetricResult(Classification.NODATA_FAIL, math.nan, nan3, "no data")
        return MetricResult(Classification.NODATA, math.nan, nan3, "no data")
    if np.array_equal(np.sort(x), np.sort(y)) or np.unique(np.concatenate([x, y])).size == 1:
        return MetricResult(
            Classification.PASS, 1.0, nan3, "canary and baseline data are identical"
        )
    mb = float(np.mean(y))
    ratio = float(np.mean(x)) / mb if mb != 0 else (math.inf if np.mean(x) > 0 else math.nan)
    lo, hi, est = (float(v) for v in hodges_lehmann_interval(x, y, cfg.confidence))
    band = cfg.tolerance * abs(est)
    up = metric.direction in ("increase", "either")
    down = metric.direction in ("decrease", "either")
    if up and lo > band and not ratio <= metric.allowed_increase:
        return MetricResult(Classification.HIGH, ratio, (lo, hi, est), "canary is higher")
    if down and hi < -band and not ratio >= metric.allowed_decrease:
        return MetricResult(Classification.LOW, ratio, (lo, hi, est), "canary is lower")
    return MetricResult(Classification.PASS, ratio, (lo, hi, est), "no significant difference")


_CLASSIFIED = (
    Classification.PASS,
    Classification.HIGH,
    Classification.LOW,
    Classification.NODATA_FAIL,
)


class MannWhitneyJudge:
    """Score a set of metrics the way Kayenta's default judge does."""

    name = "mann-whitney"

    def __init__(self, metrics: Sequence[MetricConfig], config: MannWhitneyConfig | None = None):
        if not metrics:
            raise ValueError("at least one metric is needed")
        names = [m.name for m in metrics]
        if len(set(names)) != len(names):
            raise ValueError("metric names must be unique")
        self.metrics = tuple(metrics)
        self.config = config or MannWhitneyConfig()

    def judge(self, series: Mapping[str, tuple[ArrayLike, ArrayLike]]) -> Verdict:
        """``series[name] = (canary values, baseline values)``, e.g. per-minute error rates."""
        cfg = self.config
        missing = [m.name for m in self.metrics if m.name not in series]
        if missing:
            raise ValueError(f"no series for metrics {missing}")
        results = {m.name: classify(*series[m.name], m, cfg) for m in self.metrics}
        groups: dict[str, list[Classification]] = {}
        for m in self.metrics:
            groups.setdefault(m.group, []).append(results[m.name].classification)
        group_scores: dict[str, float | None] = {}
        for g, labels in groups.items():
            counted = [c for c in labels if c in _CLASSIFIED]
            passed = sum(c is Classification.PASS for c in counted)
            group_scores[g] = 100.0 * passed / len(counted) if counted else None
        unweighted = [g for g in groups if g not in cfg.group_weights]
        spare = 100.0 - sum(cfg.group_weights.values())
        share = spare / len(unweighted) if unweighted else 0.0
        score = sum(
            (s or 0.0) * cfg.group_weights.get(g, share) / 100.0 for g, s in group_scores.items()
        )
        critical_fail = [
            m.name
            for m in self.metrics
            if m.critical and results[m.name].classification is not Classification.PASS
        ]
        if critical_fail:
            score = 0.0
        if score >= cfg.pass_threshold:
            dec, phase, word = Decision.CONTINUE, Phase.SUCCESSFUL, "pass"
        elif score <= cfg.marginal_threshold:
            dec, phase, word = Decision.ROLLBACK, Phase.FAILED, "fail: roll back"
        else:
            dec, phase, word = Decision.CONTINUE, Phase.INCONCLUSIVE, "marginal"
        bad = [
            n
            for n, r in results.items()
            if r.classification
            in (Classification.HIGH, Classification.LOW, Classification.NODATA_FAIL)
        ]
        why = (
            f"critical metric {critical_fail[0]} is {results[critical_fail[0]].classification}, "
            if critical_fail
            else (f"{', '.join(bad)} not Pass, " if bad else "")
        )
        text = (
            f"Mann-Whitney score {score:.0f} ({why}pass >= {cfg.pass_threshold:g}, "
            f"marginal <= {cfg.marginal_threshold:g}): {word}"
        )
        mvs = tuple(self._metric_verdict(m, results[m.name]) for m in self.metrics)
        return Verdict(self.name, dec, phase, text, mvs)

    def _metric_verdict(self, m: MetricConfig, r: MetricResult) -> MetricVerdict:
        failing = r.classification in (
            Classification.HIGH,
            Classification.LOW,
            Classification.NODATA_FAIL,
        )
        phase = {
            Classification.PASS: Phase.SUCCESSFUL,
            Classification.NODATA: Phase.INCONCLUSIVE,
            Classification.ERROR: Phase.ERROR,
        }.get(r.classification, Phase.FAILED)
        lo, hi, est = r.interval
        text = f"{m.name}: {r.classification} ({r.reason}; mean ratio {r.ratio:.3g})"
        return MetricVerdict(
            m.name,
            Decision.ROLLBACK if failing and m.critical else Decision.CONTINUE,
            phase,
            text,
            estimate=est,
            ci_low=lo,
            ci_high=hi,
            details={
                "classification": r.classification.value,
                "ratio": r.ratio,
                "group": m.group,
                "critical": m.critical,
            },
        )

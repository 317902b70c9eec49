"""The default judge: anytime-valid sequential tests on error counts and latency histograms."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .counters import CounterTracker, Increment, Snapshot
from .eprocess import RatioEProcess, default_alternatives
from .heterogeneity import PodAdaptiveEProcess, sd_grid
from .latency import LatencyEProcess
from .verdict import Decision, MetricVerdict, Phase, Verdict, fmt_ratio

__all__ = ["SequentialConfig", "SequentialJudge"]


@dataclass(frozen=True)
class SequentialConfig:
    """Parameters of the sequential judge; the defaults are the benchmarked configuration.

    alpha: false-rollback budget for the whole rollout, split evenly over the metrics.
    error_r0: tolerated canary/stable error-rate ratio (H0: ratio <= error_r0), used when
        the baseline's per-pod counters are not supplied (fixed margin).
    adaptive_margin: when the baseline arm carries per-pod counters (``ArmSnapshot.pods``
        on the first interval), replace the fixed margin by one measured from the stable
        pods' dispersion (see analysis.heterogeneity): strict when the pods agree, as
        wide as their spread when they do not.
    pod_sd_max: largest pod-to-pod sd of log error rates the adaptive null covers.
    error_grid: (lo, hi, n) log grid of alternative ratios for the error mixture.
    latency_r0 / latency_grid: the same for "slower than bucket bound" shares.
    alpha_cs: level of the reported confidence sequences (95 % by default).
    early_promotion: promote once every metric's ratio is shown below its tolerance
        (r_tol / latency_r_tol) at level alpha_promote, after min_dwell_s seconds.
    latency_min_baseline: baseline requests used to choose the histogram bounds.
    """

    alpha: float = 0.05
    error_r0: float = 1.2
    error_grid: tuple[float, float, int] = (1.6, 5.0, 5)
    adaptive_margin: bool = True
    pod_sd_max: float = 0.5
    latency_r0: float = 1.0
    latency_grid: tuple[float, float, int] = (1.05, 3.0, 8)
    alpha_cs: float = 0.05
    early_promotion: bool = False
    r_tol: float = 1.5
    latency_r_tol: float = 1.3
    alpha_promote: float = 0.05
    min_dwell_s: float = 120.0
    latency_min_baseline: int = 100
    latency_unit: str = ""  # only for the explanation, e.g. "ms" for Istio's histogram

    def __post_init__(self) -> None:
        for name in ("alpha", "alpha_cs", "alpha_promote"):
            v = getattr(self, name)
            if not 0 < v < 1:
                raise ValueError(f"{name} must be in (0, 1), got {v}")
        if self.error_r0 <= 0 or self.latency_r0 <= 0:
            raise ValueError("margins must be positive")
        if self.r_tol <= 0 or self.latency_r_tol <= 0:
            raise ValueError("tolerances must be positive")
        sd_grid(self.pod_sd_max)  # validates the range


class SequentialJudge:
    """Anytime-valid canary judge. Feed it snapshots (``observe``) or increments (``update``).

    Roll back as soon as any metric's e-value reaches len(metrics) / alpha. Once rolled back
    or promoted the decision is final (later data cannot undo a crossed boundary).
    """

    name = "sequential"

    def __init__(
        self,
        config: SequentialConfig | None = None,
        *,
        errors: bool = True,
        latency: bool = False,
    ) -> None:
        if not (errors or latency):
            raise ValueError("enable at least one of errors / latency")
        self.config = cfg = config or SequentialConfig()
        n_metrics = int(errors) + int(latency)
        self.alpha_metric = cfg.alpha / n_metrics
        self.threshold = 1.0 / self.alpha_metric
        self.errors: RatioEProcess | None = (
            RatioEProcess(cfg.error_r0, default_alternatives(cfg.error_r0, *cfg.error_grid))
            if errors
            else None
        )
        self._mode_chosen = False
        self.latency = (
            LatencyEProcess(
                cfg.latency_r0,
                default_alternatives(cfg.latency_r0, *cfg.latency_grid),
                min_baseline_requests=cfg.latency_min_baseline,
            )
            if latency
            else None
        )
        self._tracker = CounterTracker()
        self._start: float | None = None
        self._elapsed = 0.0
        self._final: Verdict | None = None
        self._last: Verdict | None = None

    # -- feeding -----------------------------------------------------------------------
    def observe(self, snapshot: Snapshot) -> Verdict:
        """Take one scrape of cumulative counters. Missing scrapes return the last verdict."""
        inc = self._tracker.push(snapshot)
        if inc is None:
            if self._last is not None:
                return self._last
            return Verdict(self.name, Decision.CONTINUE, Phase.INCONCLUSIVE, "waiting for data")
        return self.update(inc)

    def update(self, inc: Increment) -> Verdict:
        """Take one interval's increments (both arms) and return the current verdict."""
        if self._final is not None:
            return self._final
        if self._start is None:
            self._start = inc.start
        self._elapsed = inc.end - self._start
        if self.errors is not None:
            c, b = inc.canary, inc.baseline
            if not self._mode_chosen:
                # The margin's kind is fixed by the first interval, before any evidence.
                self._mode_chosen = True
                if cfg_adaptive(self.config) and b.pods is not None:
                    self.errors = PodAdaptiveEProcess(
                        default_alternatives(1.0, *self.config.error_grid),
                        self.config.pod_sd_max,
                    )
            if isinstance(self.errors, PodAdaptiveEProcess):
                self.errors.update_pods(
                    c.requests,
                    b.requests,
                    c.bad,
                    b.bad,
                    {name: (n, y) for name, n, y in b.pods or ()},
                    sum(1 for _, n, _ in c.pods if n > 0) if c.pods else None,
                )
            else:
                self.errors.update(c.requests, b.requests, c.bad, b.bad)
        if self.latency is not None:
            c, b = inc.canary, inc.baseline
            if not c.le:
                raise ValueError("latency analysis is enabled but the increment has no histogram")
            self.latency.update(c.le, c.le_counts, c.hist_count, b.le_counts, b.hist_count)
        verdict = self._verdict()
        self._last = verdict
        if verdict.decision is not Decision.CONTINUE:
            self._final = verdict
        return verdict

    # -- reporting ---------------------------------------------------------------------
    @property
    def verdict(self) -> Verdict:
        if self._last is None:
            return Verdict(self.name, Decision.CONTINUE, Phase.INCONCLUSIVE, "waiting for data")
        return self._last

    def _verdict(self) -> Verdict:
        cfg = self.config
        metrics: list[MetricVerdict] = []
        promotable: list[bool] = []
        if self.errors is not None:
            metrics.append(self._error_verdict(self.errors))
            promotable.append(
                self.errors.log_e_at_most(cfg.r_tol) >= math.log(1 / cfg.alpha_promote)
            )
        if self.latency is not None:
            metrics.append(self._latency_verdict(self.latency))
            promotable.append(self.latency.promotable(cfg.latency_r_tol, cfg.alpha_promote))
        failing = [m for m in metrics if m.decision is Decision.ROLLBACK]
        if failing:
            return Verdict(
                self.name,
                Decision.ROLLBACK,
                Phase.FAILED,
                failing[0].explanation,
                tuple(metrics),
                self._elapsed,
            )
        if cfg.early_promotion and self._elapsed >= cfg.min_dwell_s and all(promotable):
            text = (
                "every metric is shown within tolerance (error ratio < "
                f"{cfg.r_tol:g}, latency ratio < {cfg.latency_r_tol:g}, "
                f"{1 - cfg.alpha_promote:.0%} anytime-valid) after "
                f"{self._elapsed / 60:.1f} min: promote"
            )
            return Verdict(
                self.name, Decision.PROMOTE, Phase.SUCCESSFUL, text, tuple(metrics), self._elapsed
            )
        top = max(metrics, key=lambda m: m.e_value if not math.isnan(m.e_value) else 0.0)
        has_data = any(m.counts.get("canary_requests", 0) > 0 for m in metrics)
        phase = Phase.SUCCESSFUL if has_data else Phase.INCONCLUSIVE
        return Verdict(
            self.name, Decision.CONTINUE, phase, top.explanation, tuple(metrics), self._elapsed
        )

    def _error_verdict(self, p: RatioEProcess) -> MetricVerdict:
        s = p.summary(self.config.alpha_cs)
        thr = self.threshold
        counts = {
            "canary_requests": s.n_c,
            "canary_bad": s.y_c,
            "baseline_requests": s.n_b,
            "baseline_bad": s.y_b,
        }
        if s.n_c == 0:
            text = "no canary traffic yet: nothing to judge"
            dec = Decision.CONTINUE
        else:
            rng = _range_text(s.ci_low, s.ci_high)
            dec = Decision.ROLLBACK if s.e_value >= thr else Decision.CONTINUE
            margin = (
                f"; null: within the spread of {p.stable_pods} stable pods"
                if isinstance(p, PodAdaptiveEProcess)
                else ""
            )
            text = (
                f"canary error rate is {rng} stable ({1 - self.config.alpha_cs:.0%} anytime-valid,"
                f" {s.y_c}/{s.n_c} vs {s.y_b}/{s.n_b}{margin}), e-value {s.e_value:.3g} "
                + (f">= {thr:g}: roll back" if dec is Decision.ROLLBACK else f"< {thr:g}: continue")
            )
        phase = Phase.FAILED if dec is Decision.ROLLBACK else Phase.SUCCESSFUL
        return MetricVerdict(
            "error-rate",
            dec,
            phase,
            text,
            s.e_value,
            thr,
            s.p_value,
            s.estimate,
            s.ci_low,
            s.ci_high,
            counts,
            self._margin_details(p),
        )

    def _margin_details(self, p: RatioEProcess) -> dict[str, object]:
        if isinstance(p, PodAdaptiveEProcess):
            return {
                "margin": "adaptive",
                "stable_pods": p.stable_pods,
                "canary_pods": p.canary_pods,
                "binding_pod_sd": p.binding_sd,
                "pod_sd_max": float(p.taus[-1]),
            }
        return {"margin": "fixed", "r0": p.r0}

    def _latency_verdict(self, p: LatencyEProcess) -> MetricVerdict:
        thr = self.threshold
        bounds = p.bounds(self.config.alpha_cs)
        if not bounds:
            text = (
                "latency: learning the baseline's histogram"
                if p.warming_up
                else "latency: no histogram bucket splits the baseline's requests; not judged"
            )
            return MetricVerdict(
                "latency",
                Decision.CONTINUE,
                Phase.INCONCLUSIVE,
                text,
                1.0,
                thr,
                1.0,
                counts={"canary_requests": 0},
            )
        e = p.e_value
        worst = max(bounds, key=lambda b: b.ratio.e_value)
        r = worst.ratio
        dec = Decision.ROLLBACK if e >= thr else Decision.CONTINUE
        text = (
            f"canary requests slower than {worst.le:g}{(' ' + self.config.latency_unit).rstrip()} are "
            f"{_range_text(r.ci_low, r.ci_high)} as "
            f"frequent as on stable ({1 - self.config.alpha_cs:.0%} anytime-valid), e-value "
            f"{e:.3g} (mean over {len(bounds)} bucket bounds) "
            + (f">= {thr:g}: roll back" if dec is Decision.ROLLBACK else f"< {thr:g}: continue")
        )
        details = {
            "r0": p.r0,
            "bounds": [
                {
                    "le": b.le,
                    "baseline_share_slower": b.baseline_share,
                    "e_value": b.ratio.e_value,
                    "interval": [b.ratio.ci_low, b.ratio.ci_high],
                    "canary_slower": b.ratio.y_c,
                    "baseline_slower": b.ratio.y_b,
                }
                for b in bounds
            ],
        }
        return MetricVerdict(
            "latency",
            dec,
            Phase.FAILED if dec is Decision.ROLLBACK else Phase.SUCCESSFUL,
            text,
            e,
            thr,
            p.p_value,
            r.estimate,
            r.ci_low,
            r.ci_high,
            {"canary_requests": r.n_c, "baseline_requests": r.n_b},
            details,
        )


def cfg_adaptive(cfg: SequentialConfig) -> bool:
    return cfg.adaptive_margin


def _range_text(lo: float, hi: float) -> str:
    if lo <= 0 and math.isinf(hi):
        return "an unknown multiple of"
    if lo <= 0:
        return f"at most {fmt_ratio(hi)} x"
    if math.isinf(hi):
        return f"at least {fmt_ratio(lo)} x"
    return f"{fmt_ratio(lo)}–{fmt_ratio(hi)} x"

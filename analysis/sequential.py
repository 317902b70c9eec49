"""The default judge: anytime-valid sequential tests on error counts and latency histograms."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .counters import CounterTracker, Increment, Snapshot
from .eprocess import RatioEProcess, default_alternatives, mixture_alternatives
from .heterogeneity import PodAdaptiveEProcess, sd_grid
from .latency import LatencyEProcess
from .verdict import Decision, MetricVerdict, Phase, Verdict, fmt_ratio

__all__ = ["SequentialConfig", "SequentialJudge"]


NEW_POD_POLICIES = ("exclude", "include")


@dataclass(frozen=True)
class SequentialConfig:
    """Parameters of the sequential judge; the defaults are the benchmarked configuration.

    alpha: false-rollback budget for the whole rollout, split over the metrics
        (``error_alpha_share`` of it to errors when latency is judged too).
    error_r0: tolerated canary/stable error-rate ratio (H0: ratio <= error_r0), used when
        the baseline's per-pod counters are not supplied (fixed margin).
    adaptive_margin: when the baseline arm carries per-pod counters (``ArmSnapshot.pods``
        on the first interval), replace the fixed margin by one measured from the stable
        pods' dispersion (see analysis.heterogeneity): strict when the pods agree, as
        wide as their spread when they do not.
    pod_sd_max: largest pod-to-pod sd of log error rates the adaptive null covers (the
        heterogeneity the design assumes, 0.2; raise it for pods known to differ more).
    error_grid: (lo, hi, n) log grid of alternative ratios for the error mixture, sharing
        weight 1 - error_tail_weight; error_tail: (lo, hi, n) grid of large ratios (up to a
        canary failing every request) sharing error_tail_weight.
    latency_r0 / latency_grid: the same for "slower than bucket bound" shares.
    alpha_cs: level of the reported confidence sequences (95 % by default).
    early_promotion: promote once every metric's ratio is shown below its tolerance
        (r_tol / latency_r_tol) at level alpha_promote, after min_dwell_s seconds.
    latency_min_baseline: requests (both arms) used to choose the histogram bounds.
    new_pods: "exclude" (default): requests of pods younger than new_pod_warmup_s (since
        their series first appeared or restarted) are left out of the main tests on both
        arms, and latency is not judged while such pods serve; a canary's young pods are
        every canary request, young pods' included, is also tested against the loose margin
        new_pod_r0 (weight new_pod_weight of the error e-value), so a canary failing every
        request is caught during warm-up.
        "include": every request counts at once. Needs per-pod counters of the arm.
    min_requests: no rollback or promotion before the canary served this many requests.
    """

    alpha: float = 0.05
    error_alpha_share: float = 0.5
    error_r0: float = 1.2
    error_grid: tuple[float, float, int] = (1.25, 5.0, 9)
    error_tail: tuple[float, float, int] = (10.0, 1000.0, 5)
    error_tail_weight: float = 0.1
    adaptive_margin: bool = True
    pod_sd_max: float = 0.2
    latency_r0: float = 1.0
    latency_grid: tuple[float, float, int] = (1.05, 3.0, 8)
    alpha_cs: float = 0.05
    early_promotion: bool = False
    r_tol: float = 1.5
    latency_r_tol: float = 1.3
    alpha_promote: float = 0.05
    min_dwell_s: float = 120.0
    latency_min_baseline: int = 100
    new_pods: str = "exclude"
    new_pod_warmup_s: float = 120.0
    new_pod_r0: float = 5.0
    new_pod_weight: float = 0.1
    min_requests: int = 0
    latency_unit: str = ""  # only for the explanation, e.g. "ms" for Istio's histogram

    def __post_init__(self) -> None:
        for name in ("alpha", "alpha_cs", "alpha_promote", "error_alpha_share"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 < v < 1):
                raise ValueError(f"{name} must be a number in (0, 1), got {v!r}")
        for name in ("error_tail_weight", "new_pod_weight"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v < 1):
                raise ValueError(f"{name} must be a number in [0, 1), got {v!r}")
        for name in ("error_r0", "latency_r0", "r_tol", "latency_r_tol", "new_pod_r0"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 < v < math.inf):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        for name in ("min_dwell_s", "new_pod_warmup_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v < math.inf):
                raise ValueError(f"{name} must be a nonnegative number of seconds, got {v!r}")
        for name in ("latency_min_baseline", "min_requests"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 0):
                raise ValueError(f"{name} must be a nonnegative integer, got {v!r}")
        if self.new_pods not in NEW_POD_POLICIES:
            raise ValueError(f"new_pods must be one of {', '.join(NEW_POD_POLICIES)}, got {self.new_pods!r}")
        _check_grid("error_grid", self.error_grid, 1.0)
        _check_grid("error_tail", self.error_tail, 1.0)
        _check_grid("latency_grid", self.latency_grid, 1.0)
        if self.error_grid[1] > self.error_tail[0]:
            raise ValueError("error_tail must start at or above the end of error_grid")
        if self.error_tail[1] > 1000.0 * (1 + 1e-9):
            raise ValueError("error_tail must end at or below 1000")
        # The fixed margins need alternatives above them.
        for margin, grid, what in (
            (self.error_r0, self.error_tail, "error_r0 must lie below error_tail's max"),
            (self.latency_r0, self.latency_grid, "latency_r0 must lie below latency_grid's max"),
            (self.new_pod_r0, self.error_tail, "new_pod_r0 must lie below error_tail's max"),
        ):
            if margin >= grid[1]:
                raise ValueError(f"{what} (got {margin:g} and {grid[1]:g})")
        sd_grid(self.pod_sd_max)  # validates the range

    @property
    def warmup_s(self) -> float:
        return self.new_pod_warmup_s if self.new_pods == "exclude" else 0.0


def _check_grid(name: str, g: object, above: float) -> None:
    ok = (
        isinstance(g, tuple)
        and len(g) == 3
        and all(isinstance(x, (int, float)) for x in g)
        and isinstance(g[2], int)
    )
    if not ok:
        raise ValueError(f"{name} must be (lo, hi, points) with an integer number of points, got {g!r}")
    assert isinstance(g, tuple)
    lo, hi, n = g
    if not (above < lo <= hi < math.inf and 1 <= n <= 50 and (n == 1 or lo < hi)):
        raise ValueError(
            f"{name} must satisfy {above:g} < lo <= hi (finite) and 1 <= points <= 50 "
            f"(lo < hi when points > 1), got {g!r}"
        )


class SequentialJudge:
    """Anytime-valid canary judge. Feed it snapshots (``observe``) or increments (``update``).

    Roll back as soon as any metric's e-value reaches its threshold (1 / its share of
    alpha). Once rolled back or promoted the decision is final (later data cannot undo a
    crossed boundary).
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
        share = cfg.error_alpha_share if (errors and latency) else 1.0
        self.alpha_errors = cfg.alpha * share
        self.alpha_latency = cfg.alpha * (1.0 - share) if (errors and latency) else cfg.alpha
        self.error_threshold = 1.0 / self.alpha_errors
        self.latency_threshold = 1.0 / self.alpha_latency
        self.threshold = self.error_threshold if errors else self.latency_threshold
        alts, w = mixture_alternatives(
            cfg.error_r0, cfg.error_grid, cfg.error_tail, cfg.error_tail_weight
        )
        self.errors: RatioEProcess | None = RatioEProcess(cfg.error_r0, alts, w) if errors else None
        # Every canary request (young pods' too) against the loose margin new_pod_r0.
        self.young = RatioEProcess(cfg.new_pod_r0, default_alternatives(cfg.new_pod_r0, *cfg.error_tail))
        self._young_on = False
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
        self._tracker = CounterTracker(warmup_s=cfg.warmup_s)
        self._start: float | None = None
        self._elapsed = 0.0
        self._final: Verdict | None = None
        self._last: Verdict | None = None
        self._max_log_e_err = 0.0
        self._young_n = self._young_y = 0  # canary requests/errors left out as young

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
        c, b = inc.canary, inc.baseline
        if self.errors is not None:
            if not self._mode_chosen:
                # The margin's kind is fixed by the first interval, before any evidence.
                self._mode_chosen = True
                cfg = self.config
                self._young_on = cfg.warmup_s > 0 and c.pods is not None and cfg.new_pod_weight > 0
                if cfg.adaptive_margin and b.pods is not None:
                    alts, w = mixture_alternatives(
                        1.0, cfg.error_grid, cfg.error_tail, cfg.error_tail_weight
                    )
                    self.errors = PodAdaptiveEProcess(alts, cfg.pod_sd_max, weights=w)
            if isinstance(self.errors, PodAdaptiveEProcess):
                self.errors.update_pods(
                    c.requests,
                    b.requests,
                    c.bad,
                    b.bad,
                    {name: (n, y) for name, n, y in b.pods or ()},
                    None,
                    # The canary's pooled rate averages its pods' (weighted by the
                    # requests counted): the null's canary spread shrinks with the
                    # effective pod count. Without canary per-pod counters K_c stays 1.
                    {name: n for name, n, _ in c.pods or ()},
                )
            else:
                self.errors.update(c.requests, b.requests, c.bad, b.bad)
            self._young_n += c.young[0]
            self._young_y += c.young[1]
            if self._young_on:
                # Every canary request, young pods' included, against the loose margin
                # new_pod_r0 (a catastrophe is no warm-up): one pool of evidence, so a
                # canary failing every request is caught during the warm-up too. The
                # baseline's young pods count as well (if they err more, that only makes
                # this test more cautious).
                self.young.update(
                    c.requests + c.young[0],
                    b.requests + b.young[0],
                    c.bad + c.young[1],
                    b.bad + b.young[1],
                )
        if self.latency is not None and inc.latency_valid:
            if not c.le:
                raise ValueError("latency analysis is enabled but the increment has no histogram")
            self.latency.update(c.le, c.le_counts, c.hist_count, b.le_counts, b.hist_count)
        verdict = self._verdict()
        self._last = verdict
        if verdict.decision is not Decision.CONTINUE:
            self._final = verdict
        return verdict

    def error_log_e(self) -> float:
        """log E of the error test: the main e-process, mixed with the young-pod one."""
        assert self.errors is not None
        main = self.errors.log_e_value
        if not self._young_on:
            return main
        w = self.config.new_pod_weight
        a = math.log1p(-w) + main
        y = math.log(w) + self.young.log_e_value
        m = max(a, y)
        if m == -math.inf:
            return m
        if m == math.inf:
            return m
        return m + math.log(math.exp(a - m) + math.exp(y - m))

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
        served = max((m.counts.get("canary_requests", 0) for m in metrics), default=0)
        if (
            cfg.early_promotion
            and self._elapsed >= cfg.min_dwell_s
            and served >= cfg.min_requests
            and all(promotable)
        ):
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
        cfg = self.config
        s = p.summary(cfg.alpha_cs)
        thr = self.error_threshold
        log_e = self.error_log_e()
        e_value = math.exp(min(log_e, 700.0))
        self._max_log_e_err = max(self._max_log_e_err, log_e)
        yn, yb = self._young_n, self._young_y
        counts = {
            "canary_requests": s.n_c + yn,
            "canary_bad": s.y_c + yb,
            "baseline_requests": s.n_b,
            "baseline_bad": s.y_b,
            "canary_requests_young_pods": yn,
            "canary_bad_young_pods": yb,
        }
        if s.n_c + yn == 0:
            text = "no canary traffic yet: nothing to judge"
            dec = Decision.CONTINUE
        else:
            enough = s.n_c + yn >= cfg.min_requests
            dec = Decision.ROLLBACK if e_value >= thr and enough else Decision.CONTINUE
            verdict = (
                f">= {thr:g}: roll back"
                if dec is Decision.ROLLBACK
                else f"< {thr:g}: continue"
                if e_value < thr
                else f">= {thr:g} but fewer than {cfg.min_requests} canary requests: continue"
            )
            allowance = (
                f"tested only against {cfg.new_pod_r0:g} x stable's error rate (a warming pod "
                "may err that much more)"
                if self._young_on
                else "not judged"
            )
            if s.n_c == 0:
                # All evidence so far comes from warming pods: say so, not "0/0 vs".
                text = (
                    f"canary pods are warming up (younger than {cfg.new_pod_warmup_s:g} s): "
                    f"{yb}/{yn} canary requests failed vs {s.y_b}/{s.n_b} on stable, "
                    f"{allowance}; e-value {e_value:.3g} {verdict}"
                )
            else:
                margin = (
                    f"; null: within the spread of {p.stable_pods} stable pods"
                    if isinstance(p, PodAdaptiveEProcess)
                    else ""
                )
                young = (
                    f"; plus {yb}/{yn} from canary pods younger than "
                    f"{cfg.new_pod_warmup_s:g} s, {allowance}"
                    if yn
                    else ""
                )
                text = (
                    f"canary error rate is {_range_text(s.ci_low, s.ci_high)} stable "
                    f"({1 - cfg.alpha_cs:.0%} anytime-valid, {s.y_c}/{s.n_c} vs "
                    f"{s.y_b}/{s.n_b} on warm pods{margin}{young}), e-value {e_value:.3g} "
                    + verdict
                )
        phase = Phase.FAILED if dec is Decision.ROLLBACK else Phase.SUCCESSFUL
        return MetricVerdict(
            "error-rate",
            dec,
            phase,
            text,
            e_value,
            thr,
            min(1.0, math.exp(-self._max_log_e_err)),
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
                "young_pods_test": self._young_on,
            }
        return {"margin": "fixed", "r0": p.r0, "young_pods_test": self._young_on}

    def _latency_verdict(self, p: LatencyEProcess) -> MetricVerdict:
        thr = self.latency_threshold
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
        enough = r.n_c >= self.config.min_requests
        dec = Decision.ROLLBACK if e >= thr and enough else Decision.CONTINUE
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

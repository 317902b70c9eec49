"""The default judge: anytime-valid sequential tests on error counts and latency histograms."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from .counters import CounterTracker, Increment, Snapshot
from .eprocess import RatioEProcess, default_alternatives, mixture_alternatives
from .heterogeneity import PodAdaptiveEProcess, sd_grid
from .latency import LatencyEProcess
from .verdict import Decision, MetricVerdict, Phase, Verdict, fmt_ratio

__all__ = ["SequentialConfig", "SequentialJudge", "catastrophe_alternatives"]


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
        canary failing every request) sharing error_tail_weight. With young canary pods to
        judge (canary per-pod counters, new-pod policy on) the tail is the catastrophe test
        below, of weight error_tail_weight, instead of part of the main mixture.
    latency_r0 / latency_grid: the same for "slower than bucket bound" shares.
    alpha_cs: level of the reported confidence sequences (95 % by default).
    early_promotion: promote once every metric's ratio is shown below its tolerance
        (r_tol / latency_r_tol) at level alpha_promote, after min_dwell_s seconds.
    latency_min_baseline: requests (both arms) used to choose the histogram bounds.
    new_pods: "exclude" (default): pods younger than new_pod_warmup_s (since their series
        first appeared or restarted) are left out of the main error test on both arms, of
        the stable-pod dispersion, of the confidence sequence and promotion test, and
        latency is not judged while such pods serve. A canary's young pods stay in the
        catastrophe test: the same test (same margin) on every canary request, where a young
        pod's request counts as new_pod_r0 requests of exposure (the null allows a warming
        pod new_pod_r0 times a warm pod's error rate), with the tail alternatives extended
        down to error_tail's lo / new_pod_r0 (see catastrophe_alternatives). A canary failing
        every request is thus caught during the warm-up too. "include": every request counts
        at once as a warm one. Needs per-pod counters of the arm.
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
    min_requests: int = 0
    latency_unit: str = ""  # only for the explanation, e.g. "ms" for Istio's histogram

    def __post_init__(self) -> None:
        for name in ("alpha", "alpha_cs", "alpha_promote", "error_alpha_share"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 < v < 1):
                raise ValueError(f"{name} must be a number in (0, 1), got {v!r}")
        for name in ("error_tail_weight",):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v < 1):
                raise ValueError(f"{name} must be a number in [0, 1), got {v!r}")
        for name in ("error_r0", "latency_r0", "r_tol", "latency_r_tol"):
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
        if not (
            isinstance(self.new_pod_r0, (int, float)) and 1 <= self.new_pod_r0 < math.inf
        ):
            raise ValueError(f"new_pod_r0 must be a number >= 1, got {self.new_pod_r0!r}")
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
        ):
            if margin >= grid[1]:
                raise ValueError(f"{what} (got {margin:g} and {grid[1]:g})")
        sd_grid(self.pod_sd_max)  # validates the range

    @property
    def warmup_s(self) -> float:
        return self.new_pod_warmup_s if self.new_pods == "exclude" else 0.0


def catastrophe_alternatives(cfg: SequentialConfig, r0: float) -> NDArray[np.float64]:
    """Alternatives of the catastrophe test: the tail grid extended down to
    tail_lo / new_pod_r0 at the same log density, since a tail-sized harm on a warming pod
    (exposure new_pod_r0) looks new_pod_r0 times smaller; only ratios above r0."""
    lo, hi, n = cfg.error_tail
    lo_ext = min(lo, max(lo / cfg.new_pod_r0, r0 * 1.05))
    if lo_ext < lo:
        # one point per the tail's log step (two for a one-point tail)
        n = max(n + 1, round(n * math.log(hi / lo_ext) / math.log(hi / lo))) if hi > lo else 2
    return default_alternatives(r0, lo_ext, hi, n)


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
        # The same test with the canary's young pods in it (new-pod policy): see _feed.
        self.full = RatioEProcess(cfg.error_r0, alts, w)
        self._full_on = False
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
        cfg = self.config
        if self.errors is not None:
            if not self._mode_chosen:
                # The margin's kind and the catastrophe test are fixed by the first
                # interval, before any evidence.
                self._mode_chosen = True
                self._choose_tests(adaptive=cfg.adaptive_margin and b.pods is not None,
                                   catastrophe=(cfg.warmup_s > 0 and c.pods is not None
                                                and cfg.error_tail_weight > 0))
            self._feed(self.errors, inc, young=False)
            if self._full_on:
                self._feed(self.full, inc, young=True)
            self._young_n += c.young[0]
            self._young_y += c.young[1]
        if self.latency is not None and inc.latency_valid:
            if not c.le:
                raise ValueError("latency analysis is enabled but the increment has no histogram")
            self.latency.update(c.le, c.le_counts, c.hist_count, b.le_counts, b.hist_count)
        verdict = self._verdict()
        self._last = verdict
        if verdict.decision is not Decision.CONTINUE:
            self._final = verdict
        return verdict

    def _choose_tests(self, *, adaptive: bool, catastrophe: bool) -> None:
        """Main test (margin fixed or adaptive) and, with young canary pods to judge, the
        catastrophe test: the tail alternatives move out of the main test into a test on
        every canary request (young pods at exposure new_pod_r0), with the same weight."""
        cfg = self.config
        self._full_on = catastrophe
        tw = 0.0 if catastrophe else cfg.error_tail_weight
        r0 = 1.0 if adaptive else cfg.error_r0
        alts, w = mixture_alternatives(r0, cfg.error_grid, cfg.error_tail, tw)
        tail = catastrophe_alternatives(cfg, r0)
        if adaptive:
            self.errors = PodAdaptiveEProcess(alts, cfg.pod_sd_max, weights=w)
            self.full = PodAdaptiveEProcess(tail, cfg.pod_sd_max)
        else:
            self.errors = RatioEProcess(r0, alts, w)
            self.full = RatioEProcess(r0, tail)

    def _feed(self, p: RatioEProcess, inc: Increment, *, young: bool) -> None:
        """One interval into an error e-process: warm pods only, or (young=True) also the
        canary's young pods at exposure new_pod_r0 per request (the null lets a warming
        pod err that much more than a warm one). The catastrophe test also counts the
        baseline's young pods: young pods err at least as much as warm ones, so this only
        makes the null easier to keep, and it keeps the test alive when every stable pod
        is young (a rollout minutes after the last one), where warm pods alone give 0/0."""
        c, b = inc.canary, inc.baseline
        f = self.config.new_pod_r0
        yc = c.young if young else (0, 0)
        if young and b.young[0] > 0:
            b = replace(b, requests=b.requests + b.young[0], bad=b.bad + b.young[1],
                        pods=(*(b.pods or ()), *b.young_pods) if b.pods is not None else None,
                        young=(0, 0), young_pods=())
        if isinstance(p, PodAdaptiveEProcess):
            # The canary's pooled rate averages its pods' (weighted by exposure): the null's
            # canary spread shrinks with the effective pod count. Without canary per-pod
            # counters K_c stays 1.
            exposure = {name: float(n) for name, n, _ in c.pods or ()}
            if young:
                exposure.update({name: f * n for name, n, _ in c.young_pods})
            p.update_pods(
                c.requests,
                b.requests,
                c.bad,
                b.bad,
                {name: (n, y) for name, n, y in b.pods or ()},
                None,
                exposure,
                young=yc,
                young_factor=f,
            )
        else:
            p.update(c.requests, b.requests, c.bad, b.bad, young=yc, young_factor=f)

    def error_log_e(self) -> float:
        """log E of the error test: (1 - w) E_main + w E_catastrophe (w = error_tail_weight),
        an e-process because both are; E_main alone when there is no catastrophe test."""
        assert self.errors is not None
        main = self.errors.log_e_value
        if not self._full_on:
            return main
        w = self.config.error_tail_weight
        a = math.log1p(-w) + main
        y = math.log(w) + self.full.log_e_value
        m = max(a, y)
        if math.isinf(m):
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
                f"tested allowing a warming pod up to {cfg.new_pod_r0:g} x stable's error rate"
            )
            if s.n_c == 0:
                # All evidence so far comes from warming pods: say so, not "0/0".
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
                "young_pod_factor": self.config.new_pod_r0,
            }
        return {"margin": "fixed", "r0": p.r0, "young_pod_factor": self.config.new_pod_r0}

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

"""Decision-quality benchmark of the canary judges (see statistics.md in the design notes).

    python -m benchmarks.analysis_benchmark [--quick] [--seed N] [--out docs]

Writes docs/analysis-benchmark.md and docs/analysis-benchmark.png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from scipy.stats import beta, norm

from analysis import SequentialConfig

from . import _analysis_bound as bnd
from . import _analysis_methods as mth
from ._analysis_sim import Batch, Scenario, nominal_weights, simulate

IntA = NDArray[np.int64]
CFG = SequentialConfig()  # the shipped default: every goal is judged on this one


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = 1 - level
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


@dataclass
class Outcome:
    """Per-method results of one scenario."""

    reps: int
    rolled: int
    t_med: float  # minutes, among detected
    t_p90: float
    req_med: float  # canary requests at detection, among detected
    req_p90: float
    bad_served: float  # mean canary bad requests served before rollback (or the end)
    promoted_early: int = 0
    t_promote_med: float = math.nan
    judged_med: float = math.nan  # canary requests the test had counted (warm pods only)
    lag10_max: float = math.nan  # intervals from the 10th canary failure to the rollback
    lag10_ok: float = math.nan  # share of replicates rolled back within 3 such intervals


    @property
    def rate(self) -> float:
        return self.rolled / self.reps

    def ci(self) -> tuple[float, float]:
        return clopper_pearson(self.rolled, self.reps)


def summarise(
    b_list: list[Batch], hits: list[IntA], prom: list[IntA] | None, dt_s: float, young: bool = False
) -> Outcome:
    times, reqs, bad, judged, lags = [], [], [], [], []
    rolled = 0
    reps = 0
    pr_t: list[float] = []
    for i, (b, h) in enumerate(zip(b_list, hits, strict=True)):
        reps += h.size
        cum_n = np.cumsum(b.nc, axis=1)
        cum_j = np.cumsum(b.nc - b.nc_young, axis=1) if young else cum_n
        cum_y = np.cumsum(b.yc, axis=1)
        det = h >= 0
        rolled += int(det.sum())
        rows = np.flatnonzero(det)
        times.extend(((h[rows] + 1) * dt_s / 60).tolist())
        reqs.extend(cum_n[rows, h[rows]].tolist())
        judged.extend(cum_j[rows, h[rows]].tolist())
        tenth = np.where((cum_y >= 10).any(axis=1), (cum_y >= 10).argmax(axis=1), -1)
        has = tenth >= 0
        lag = np.where(det, np.maximum(h - tenth, 0), 10**6)
        lags.extend(lag[has].tolist())
        end = np.where(det, h, b.nc.shape[1] - 1)
        if prom is not None:
            p = prom[i]
            end = np.where(p >= 0, p, end)
            pr_t.extend(((p[p >= 0] + 1) * dt_s / 60).tolist())
        bad.extend(cum_y[np.arange(h.size), end].tolist())

    def q(v: list[float], p: float) -> float:
        return float(np.quantile(v, p)) if v else math.nan

    return Outcome(
        reps,
        rolled,
        q(times, 0.5),
        q(times, 0.9),
        q(reqs, 0.5),
        q(reqs, 0.9),
        float(np.mean(bad)),
        len(pr_t),
        q(pr_t, 0.5),
        q(judged, 0.5),
        float(max(lags)) if lags else math.nan,
        float(np.mean(np.asarray(lags) <= 3)) if lags else math.nan,
    )


Method = Callable[[Batch, Scenario], IntA]

BASE_METHODS: dict[str, Method] = {
    "M1 Flagger": mth.m1_flagger,
    "M2 Argo": mth.m2_argo,
    "M3 Kayenta (step ends)": lambda b, s: mth.m3_kayenta(b, s, every_minute=False),
    "M3b Kayenta (every min)": lambda b, s: mth.m3_kayenta(b, s, every_minute=True),
    "M5 fixed": lambda b, s: mth.m5_fixed(b, s, CFG, obf=False),
    "M5 OBF": lambda b, s: mth.m5_fixed(b, s, CFG, obf=True),
    "M6 ours": lambda b, s: mth.m6(b, s, CFG)[0],
    "M6 without per-pod input": lambda b, s: mth.m6(b, s, CFG, pods=False)[0],
}
EARLY = "M6 ours + early promotion"
# The shipped default with per-pod input but new_pods="include" (no warm-up policy): run on
# the error scenarios to split G8's per-pod-vs-none comparison into the adaptive margin's
# share and the new-pod policy's.
INCLUDE = "M6 per-pod, new pods included"


def run_scenario(
    s: Scenario, reps: int, rng: np.random.Generator, extra: dict[str, Method], skip: tuple[str, ...] = ()
) -> dict[str, Outcome]:
    chunk = max(50, min(reps, 400_000 // s.n_steps))
    batches: list[Batch] = []
    hits: dict[str, list[IntA]] = {}
    prom: list[IntA] = []
    early: list[IntA] = []
    done = 0
    methods = {k: v for k, v in {**BASE_METHODS, **extra}.items() if k not in skip}
    while done < reps:
        n = min(chunk, reps - done)
        b = simulate(s, n, rng, CFG.warmup_s)
        batches.append(b)
        for name, f in methods.items():
            hits.setdefault(name, []).append(f(b, s))
        rb, pm = mth.m6(b, s, CFG_EARLY, promote=True)
        early.append(rb)
        prom.append(pm)
        done += n
    out = {name: summarise(batches, h, None, s.dt, young=name == "M6 ours") for name, h in hits.items()}
    out[EARLY] = summarise(batches, early, prom, s.dt, young=True)
    return out


CFG_EARLY = replace(CFG, early_promotion=True)
CFG_INCLUDE = replace(CFG, new_pods="include")


def oracle_requests(s: Scenario, ratio: float, r0: float, alpha: float, power: float = 0.8) -> float:
    """Canary requests a fixed one-sided score test (same margin and alpha) needs for the
    given power at the true ratio, with this scenario's traffic schedule (1 s resolution,
    schedule continued at the last weight if the rollout is too short)."""
    secs = np.arange(int(s.n_steps * s.dt * 20)) + 0.5
    w = np.asarray(s.weights)[np.minimum((secs // s.step_s).astype(int), len(s.weights) - 1)]
    e = s.rps * (w * s.p0 * ratio + (1 - w) * s.p0)
    th1 = w * ratio / (w * ratio + 1 - w)
    th0 = w * r0 / (w * r0 + 1 - w)
    mu = np.cumsum(e * (th1 - th0))
    v0 = np.cumsum(e * th0 * (1 - th0))
    v1 = np.cumsum(e * th1 * (1 - th1))
    pw = norm.cdf((mu - norm.ppf(1 - alpha) * np.sqrt(v0)) / np.sqrt(v1))
    ok = np.flatnonzero(pw >= power)
    if ok.size == 0:
        return math.inf
    return float(np.cumsum(s.rps * w)[ok[0]])


# ----------------------------------------------------------------------------- scenarios
def scenarios(quick: bool) -> tuple[list[Scenario], list[Scenario], list[Scenario]]:
    rs = (100.0,) if quick else (10.0, 100.0, 1000.0)
    ps = (0.01,) if quick else (0.001, 0.005, 0.01)
    nulls = [Scenario(f"A/A {r:g} rps, p0 {p:g}", rps=r, p0=p, kind="null") for r in rs for p in ps]
    nulls += [
        Scenario("common shock x5 for 5 min", kind="null", shock=True),
        Scenario("pod heterogeneity sd 0.2", kind="null", hetero_sd=0.2),
        Scenario("pod heterogeneity sd 0.2, 10 rps", rps=10.0, kind="null", hetero_sd=0.2),
        Scenario("weights changing mid-step", kind="null", weight_change=True),
        Scenario("missing scrapes (10 %)", kind="null", missing=0.10),
        Scenario("10x longer horizon", kind="null", step_s=6000.0),
        Scenario("decisions every 60 s", kind="null", dt=60.0),
        Scenario("2-min steps", kind="null", step_s=120.0),
        Scenario("A/A latency log-sd 1.0", kind="null", log_sd=1.0),
        Scenario("slow-starting pods on every scale-up", kind="null", slow_start=True),
        Scenario("slow-starting pods, 1000 rps", rps=1000.0, kind="null", slow_start=True),
        Scenario("stable pod restart mid-step, 1000 rps", rps=1000.0, kind="null",
                 restart="stable", slow_start=True),
        Scenario("canary pod restart mid-step, 1000 rps", rps=1000.0, kind="null",
                 restart="canary", slow_start=True),
    ]
    if not quick:
        nulls.append(Scenario("pod heterogeneity sd 0.2, 1000 rps", rps=1000.0, kind="null", hetero_sd=0.2))
    ratios = (2.0, 5.0, 20.0, math.inf) if quick else (1.25, 1.5, 2.0, 5.0, 10.0, 20.0, 100.0, math.inf)
    ps_e = (0.01,) if quick else (0.001, 0.01)
    errs = [
        Scenario(f"errors {_ratio_name(r)} at {R:g} rps, p0 {p:g}", rps=R, p0=p, ratio=r)
        for R in rs
        for p in ps_e
        for r in ratios
    ]
    if not quick:
        errs += [
            Scenario(f"errors {_ratio_name(r)} at {R:g} rps, p0 0.01", rps=R, ratio=r)
            for R in (0.5, 2.0)
            for r in (5.0, 10.0, 20.0, 100.0, math.inf)
        ]
        errs += [
            Scenario("errors x2 at 100 rps, p0 0.005", p0=0.005, ratio=2.0),
            Scenario("errors x1.3 at 1000 rps, p0 0.01", rps=1000.0, ratio=1.3),
            Scenario("errors x2, decisions every 60 s", ratio=2.0, dt=60.0),
            Scenario("errors x2, 2-min steps", ratio=2.0, step_s=120.0),
        ]
    shifts = (1.1, 1.5) if quick else (1.02, 1.05, 1.10, 1.50)
    sds = (0.5,) if quick else (0.5, 1.0)
    lats = [
        Scenario(f"latency x{sh:g}, log-sd {sd:g}", shift=sh, log_sd=sd, kind="latency")
        for sd in sds
        for sh in shifts
    ]
    lats += [
        Scenario(f"latency tail +300 ms on {f:.0%}", tail_frac=f, kind="latency")
        for f in ((0.05,) if quick else (0.02, 0.05))
    ]
    return nulls, errs, lats


def _ratio_name(r: float) -> str:
    return "100 % (all fail)" if math.isinf(r) else f"x{r:g}"


# ----------------------------------------------------------------------------- report
def fmt(x: float, nd: int = 0) -> str:
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return ">horizon"
    return f"{x:,.{nd}f}"


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"numpy {np.__version__}; {platform.system()} {platform.release()}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smoke mode (< 1 min, few replicates)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--out", default="docs")
    ap.add_argument("--null-reps", type=int, default=None)
    ap.add_argument("--effect-reps", type=int, default=None)
    ap.add_argument(
        "--only",
        default=None,
        help="run only the scenarios whose name contains this text (for iterating): prints "
        "a summary and writes nothing",
    )
    args = ap.parse_args(argv)
    quick = args.quick
    n0 = args.null_reps or (200 if quick else 2000)
    n1 = args.effect_reps or (100 if quick else 400)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    nulls, errs, lats = scenarios(quick)
    if args.only is not None:
        keep = args.only.lower()
        nulls, errs, lats = ([x for x in group if keep in x.name.lower()] for group in (nulls, errs, lats))
    results: dict[str, tuple[Scenario, dict[str, Outcome]]] = {}
    r0_curve: dict[str, Method] = {
        f"M6 errors r0={r0:g}": (lambda r: lambda b, s: mth.m6_variant(b, s, r))(r0) for r0 in (1.0, 1.1, 1.2)
    }
    r0_curve["M6 errors adaptive"] = mth.m6_adaptive_errors

    def go(s: Scenario, reps: int, extra: dict[str, Method] | None = None) -> None:
        t = time.time()
        skip: tuple[str, ...] = ()
        if s.n_steps > 400:  # Kayenta's all-pairs intervals on 400-minute windows: too slow
            skip = ("M3 Kayenta (step ends)", "M3b Kayenta (every min)")
        results[s.name] = (s, run_scenario(s, reps, rng, extra or {}, skip))
        print(f"  {s.name}: {time.time() - t:.1f} s", file=sys.stderr, flush=True)

    for s in nulls:
        go(s, n0, r0_curve if "heterogeneity" in s.name else None)
    include: dict[str, Method] = {INCLUDE: lambda b, s: mth.m6(b, s, CFG_INCLUDE)[0]}
    for s in errs:
        go(
            s,
            n1,
            {**r0_curve, **include}
            if (s.rps, s.p0, s.ratio, s.dt, s.step_s) == (100.0, 0.01, 2.0, 15.0, 600.0)
            else include,
        )
    for s in lats:
        go(s, n1)
    bounds = g8_bounds(results, errs, args.seed)
    elapsed = time.time() - t0
    if args.only is not None:
        print(summary_text(results))
        print("\n".join(bound_lines(results, bounds)))
        return 0
    report = render(results, nulls, errs, lats, args, n0, n1, elapsed, bounds)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "analysis-benchmark.md"), "w") as f:
        f.write(report)
    plot(results, errs, lats, os.path.join(args.out, "analysis-benchmark.png"))
    print(f"wrote {args.out}/analysis-benchmark.md and .png in {elapsed:.0f} s", file=sys.stderr)
    return 0


METHOD_ORDER = [*BASE_METHODS, EARLY]


def summary_text(results: dict[str, tuple[Scenario, dict[str, Outcome]]]) -> str:
    """One line per scenario and method (the --only mode)."""
    out = []
    for name, (_, res) in results.items():
        for m, o in res.items():
            out.append(
                f"{name} | {m} | rate {pct(o.rate)} | median {fmt(o.t_med, 2)} min | judged "
                f"{fmt(o.judged_med)} | lag10 max {fmt(o.lag10_max)}, within 3: "
                f"{pct(o.lag10_ok) if not math.isnan(o.lag10_ok) else '–'}"
            )
    return "\n".join(out)


def render(
    results: dict[str, tuple[Scenario, dict[str, Outcome]]],
    nulls: list[Scenario],
    errs: list[Scenario],
    lats: list[Scenario],
    args: argparse.Namespace,
    n0: int,
    n1: int,
    elapsed: float,
    bounds: dict[str, tuple[bnd.Bound, bnd.Bound]] | None = None,
) -> str:
    L: list[str] = []
    cmd = (
        "python -m benchmarks.analysis_benchmark"
        + (" --quick" if args.quick else "")
        + (f" --seed {args.seed}")
    )
    L += [
        "# Analysis benchmark: decision quality of canary judges",
        "",
        f"Generated by `{cmd}` (`make bench-analysis` runs the full mode) on "
        f"{dt.date.today().isoformat()} in {elapsed / 60:.1f} min.",
        f"Seed {args.seed}; machine: {machine()}.",
        f"Replicates: {n0} per null scenario, {n1} per effect scenario"
        + (" (QUICK MODE: numbers are rough)" if args.quick else "")
        + ".",
        "",
        "Rollout: canary weights 5 -> 10 -> 25 -> 50 %, 10 min each, decisions every 15 s; per "
        "interval n ~ Poisson(R dt), n_c ~ Binomial(n, w), bad events binomial; latency "
        "lognormal (median 100 ms) observed through Prometheus' default buckets. The stable "
        "arm runs 5 pods with equal traffic; the judge sees their per-pod request and error "
        "counters (under pod heterogeneity their error multipliers are exp(N(0, sd^2)), "
        "normalised to mean 1, and the canary's multiplier relative to stable is "
        "exp(N(0, sd^2)) as before). Every judge watches both errors and latency, so a false "
        "alarm on either counts. 'M6 without per-pod input' is the same default fed without "
        "per-pod counters (fixed margin fallback; no new-pod policy; a restart's interval is "
        "dropped).",
        "",
        "Canary pods: 1, 2, 3, 5 over the four steps (a new pod on every scale-up, taking its "
        "share of the canary's traffic). Slow-starting pods: a new or restarted pod's error rate "
        "is x5 and its latency x2 at start, fading linearly to normal over 90 s. Pod restart: one "
        "stable (or canary) pod restarts at a random time in the middle 50 % of the rollout; with "
        "per-pod series only its own counters reset (the judge takes its new values, as "
        "Prometheus' increase() does, and treats it as a new pod), so days of prior history on "
        "the other pods never enter an interval (unit tests feed the streaming judge such "
        "counters). With per-pod input the shipped new-pod policy applies: requests of pods "
        "younger than 120 s (since their series appeared; the stable pods are known warm at the "
        "start) are left out on both arms, latency is judged only in intervals without young "
        "pods, and every canary request (young pods' too) is tested against 5 x. 'median req' "
        "counts canary "
        "requests served until the rollback, 'median judged req' those the test counted (the "
        "warm-up's requests are the policy's cost).",
        "",
        "Shipped default (M6, judged in every goal): " + _cfg_text(CFG) + ".",
        "",
        "Methods: M1 Flagger-style (per-minute canary error rate > 1 % or P99 > 500 ms is a "
        "failed check; roll back at 5). M2 Argo-style (every minute, canary 5-min error rate "
        "or P99 > 1.5 x stable; abort at > 3 failures). M3 Kayenta replica (60 s series of "
        "error rate and mean latency, Mann–Whitney 98 %, tolerance 0.25, High fails; growing "
        "window judged at step ends; M3b every minute). M5 fixed-horizon one-sided score "
        "test at the end (and O'Brien–Fleming at step ends), at M6's fallback margins "
        f"(errors r0 {CFG.error_r0:g}, latency 1) and alpha. "
        "M6 ours; '+ early promotion' promotes when every metric's ratio is shown below "
        f"tolerance ({CFG.r_tol:g} errors, {CFG.latency_r_tol:g} latency; alpha' "
        f"{CFG.alpha_promote:g}) after {CFG.min_dwell_s:.0f} s.",
        "",
    ]
    goals = goal_lines(results, nulls, errs, lats, bounds)
    L += ["## Goals (shipped default)", "", "| goal | status | evidence |", "|---|---|---|"]
    L += [f"| {g} | {st} | {ev} |" for g, st, ev in goals]
    L += ["", "## Null scenarios: false rollback rate (Clopper–Pearson 95 %)", ""]
    hdr = ["scenario", *METHOD_ORDER]
    L += ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for s in nulls:
        res = results[s.name][1]
        cells = []
        for mname in METHOD_ORDER:
            o = res.get(mname)
            if o is None:
                cells.append("not run")
                continue
            lo, hi = o.ci()
            cells.append(f"{pct(o.rate)} [{pct(lo)}, {pct(hi)}]")
        L.append(f"| {s.name} | " + " | ".join(cells) + " |")
    L += [
        "",
        "Safe canaries promoted (reach 100 %) = 1 − false rollback rate. With early promotion on:",
        "",
        "| scenario | promoted early | median minutes to promote |",
        "|---|---|---|",
    ]
    for s in nulls:
        o = results[s.name][1][EARLY]
        L.append(f"| {s.name} | {pct(o.promoted_early / o.reps)} | {fmt(o.t_promote_med, 1)} |")
    L += [
        "",
        "## Error regressions",
        "",
        "Detection probability within the rollout; median / p90 minutes and canary requests "
        "to detection (among detected runs); mean canary bad requests served before rollback. "
        "Oracle n80: canary requests a fixed test sized for the true effect needs for 80 % "
        "power (same margin, alpha 0.025).",
        "",
    ]
    L += _effect_table(results, errs, oracle=True)
    L += ["", "## Latency regressions (100 rps)", ""]
    L += _effect_table(results, lats, oracle=False)
    L += [
        "",
        "## The margin r0: validity under pod heterogeneity vs speed",
        "",
        f"Errors-only e-process, alpha 0.025, grid {CFG.error_grid[0]:g}–{CFG.error_grid[1]:g} "
        f"({CFG.error_grid[2]} points); 'adaptive' is the shipped margin from per-pod counters.",
        "",
        "| r0 | false rollbacks, heterogeneity sd 0.2 (100 rps, 1 %) | "
        "same at 1000 rps | median canary requests, 2 x at 1 %, 100 rps |",
        "|---|---|---|---|",
    ]
    for r0 in (1.0, 1.1, 1.2, "adaptive"):
        k = f"M6 errors r0={r0:g}" if r0 != "adaptive" else "M6 errors adaptive"
        h = results["pod heterogeneity sd 0.2"][1].get(k)
        h2 = results.get("pod heterogeneity sd 0.2, 1000 rps", (None, {}))[1].get(k)
        d = results.get("errors x2 at 100 rps, p0 0.01", (None, {}))[1].get(k)
        L.append(
            f"| {r0 if isinstance(r0, str) else f'{r0:g}'} | {pct(h.rate) if h else '–'} | "
            f"{pct(h2.rate) if h2 else '–'} | "
            f"{fmt(d.req_med) if d else '–'} |"
        )
    L += ["", "## G8 (c): the new-pod policy's cost against what any valid test can do", ""]
    L += bound_lines(results, bounds or {})
    L += ["", "## Honest cost at the design effect (1.5 x)", ""]
    L += cost_lines(results)
    L += ["", "## Plot", "", "![detection time vs effect](analysis-benchmark.png)", ""]
    return "\n".join(L) + "\n"


def _cfg_text(c: SequentialConfig) -> str:
    return (
        f"alpha {c.alpha:g} split over errors and latency (roll back at E >= "
        f"{2 / c.alpha:g}), error margin adaptive from the stable pods' per-pod counters "
        f"(pod sd up to {c.pod_sd_max:g}; fallback without them: fixed r0 {c.error_r0:g}) "
        f"with grid {c.error_grid[0]:g}–"
        f"{c.error_grid[1]:g} ({c.error_grid[2]} points, weight {1 - c.error_tail_weight:g}) and "
        f"tail {c.error_tail[0]:g}–{c.error_tail[1]:g} ({c.error_tail[2]} points, weight "
        f"{c.error_tail_weight:g}), new pods {c.new_pods} for {c.new_pod_warmup_s:g} s (young "
        f"and all canary requests tested against {c.new_pod_r0:g} x, weight {c.new_pod_weight:g}), "
        "latency margin "
        f"{c.latency_r0:g} with grid {c.latency_grid[0]:g}–{c.latency_grid[1]:g} on the "
        "bucket bounds carrying 1–99 % of the pooled requests (chosen after the first "
        f"{c.latency_min_baseline} requests, which count as evidence), early promotion off"
    )


def _effect_table(
    results: dict[str, tuple[Scenario, dict[str, Outcome]]], scen: list[Scenario], oracle: bool
) -> list[str]:
    L = [
        "| scenario | method | detected | median min | p90 min | median req | median judged req | "
        "p90 req | bad served |" + (" oracle n80 |" if oracle else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if oracle else ""),
    ]
    for s in scen:
        res = results[s.name][1]
        orc = (
            oracle_requests(s, s.ratio, CFG.error_r0, CFG.alpha / 2)
            if oracle and math.isfinite(s.ratio)
            else math.nan
        )
        for mname in [*METHOD_ORDER, INCLUDE]:
            o = res.get(mname)
            if o is None:
                continue
            L.append(
                f"| {s.name} | {mname} | {pct(o.rate)} | {fmt(o.t_med, 1)} | "
                f"{fmt(o.t_p90, 1)} | {fmt(o.req_med)} | {fmt(o.judged_med)} | {fmt(o.req_p90)} | "
                f"{fmt(o.bad_served, 1)} |" + (f" {fmt(orc)} |" if oracle else "")
            )
    return L


def cost_lines(results: dict[str, tuple[Scenario, dict[str, Outcome]]]) -> list[str]:
    out = []
    for name in ("errors x1.5 at 100 rps, p0 0.01", "errors x1.5 at 1000 rps, p0 0.01"):
        if name not in results:
            continue
        s, res = results[name]
        o = res["M6 ours"]
        n80 = oracle_requests(s, 1.5, 1.0, CFG.alpha / 2)
        n80f = oracle_requests(s, 1.5, CFG.error_r0, CFG.alpha / 2)
        out.append(
            f"- {name}: M6 median {fmt(o.req_med)} canary requests (detected "
            f"{pct(o.rate)}) vs {fmt(n80)} for a fixed test tuned to 1.5 x with 80 % "
            f"power against the strict null ratio <= 1 (what the adaptive margin approaches "
            f"on homogeneous pods): ratio {o.req_med / n80:.2f}; against margin "
            f"{CFG.error_r0:g}: {fmt(n80f)}."
            if math.isfinite(n80)
            else f"- {name}: fixed test cannot reach 80 % power within 20 x the horizon."
        )
    return out or ["- not run in this mode"]


def goal_lines(
    results: dict[str, tuple[Scenario, dict[str, Outcome]]],
    nulls: list[Scenario],
    errs: list[Scenario],
    lats: list[Scenario],
    bounds: dict[str, tuple[bnd.Bound, bnd.Bound]] | None = None,
) -> list[tuple[str, str, str]]:
    g: list[tuple[str, str, str]] = []
    m6 = "M6 ours"
    worst = max(nulls, key=lambda s: results[s.name][1][m6].ci()[1])
    wo = results[worst.name][1][m6]
    ok1 = all(results[s.name][1][m6].ci()[1] <= 0.05 for s in nulls)
    g.append(
        (
            "G1 validity",
            "met" if ok1 else "MISSED",
            f"worst null scenario '{worst.name}': {pct(wo.rate)}, CP upper {pct(wo.ci()[1])} (bound 5 %)",
        )
    )

    def get(name: str) -> Outcome | None:
        return results[name][1][m6] if name in results else None

    ev, ok2 = [], True
    for r, cap in ((2.0, 2200.0), (5.0, 300.0)):
        name = f"errors x{r:g} at 100 rps, p0 0.01"
        o = get(name)
        if o is None:
            continue
        s = results[name][0]
        orc = oracle_requests(s, r, CFG.error_r0, CFG.alpha / 2)
        strict = oracle_requests(s, r, 1.0, CFG.alpha / 2)
        ok = o.judged_med <= cap and o.judged_med <= 1.3 * strict
        ok2 &= ok
        ev.append(
            f"{r:g} x: median {fmt(o.judged_med)} judged canary req (cap {cap:g}; "
            f"{fmt(o.req_med)} served incl. the new-pod warm-up), oracle n80 at margin 1 "
            f"{fmt(strict)} (ratio {o.judged_med / strict:.2f}, need <= 1.3); at margin "
            f"{CFG.error_r0:g} {fmt(orc)}"
        )
    g.append(("G2 close to the limit", "met" if ok2 else "MISSED", "; ".join(ev)))
    name = "errors x2 at 100 rps, p0 0.001"
    o = get(name)
    if o is not None:
        s = results[name][0]
        orc = oracle_requests(s, 2.0, CFG.error_r0, CFG.alpha / 2)
        ok3 = o.rate >= 0.8 and o.req_med <= 1.3 * orc
        g.append(
            (
                "G3 low base rate",
                "met" if ok3 else "MISSED",
                f"2 x at 0.1 %, 100 rps: detected {pct(o.rate)} (need 80 %), median "
                f"{fmt(o.req_med)} req vs oracle n80 {fmt(orc)} (ratio "
                f"{o.req_med / orc:.2f})",
            )
        )
    else:
        g.append(("G3 low base rate", "not run", "quick mode"))
    ev4, ok4 = [], True
    for sh, cap in ((1.1, 1500.0), (1.5, 150.0)):
        o = get(f"latency x{sh:g}, log-sd 0.5")
        if o is None:
            continue
        ok4 &= o.judged_med <= cap and o.rate >= 0.5
        ev4.append(
            f"+{(sh - 1) * 100:.0f} %: median {fmt(o.judged_med)} judged req (cap {cap:g}; "
            f"{fmt(o.req_med)} served incl. the warm-up, {fmt(o.t_med, 1)} min), detected {pct(o.rate)}"
        )
    lat_null = [s for s in nulls if s.name.startswith("A/A")]
    lat_frr = 0.0
    for s in lat_null:
        b = results[s.name][1][m6]
        lat_frr = max(lat_frr, b.rate)
    ev4.append(
        f"A/A false rollbacks (errors and latency together) at most {pct(lat_frr)}; "
        "the latency share is bounded by its alpha 0.025 by construction"
    )
    g.append(("G4 latency from histograms", "met" if ok4 else "MISSED", "; ".join(ev4)))
    bad5: list[str] = []
    for s in nulls + errs + lats:
        res = results[s.name][1]
        ours = res[m6]
        for peer in ("M1 Flagger", "M2 Argo", "M3 Kayenta (step ends)", "M3b Kayenta (every min)"):
            p = res.get(peer)
            if p is None:
                continue
            if s.kind == "null":
                if ours.rate > p.rate + 1e-12 and ours.ci()[0] > p.ci()[1]:
                    bad5.append(f"{s.name}: FRR {pct(ours.rate)} vs {peer} {pct(p.rate)}")
            elif p.rate >= 0.5 and ours.rate >= 0.5 and ours.t_med > p.t_med + 1e-9:
                bad5.append(f"{s.name}: median {ours.t_med:.1f} min vs {peer} {p.t_med:.1f}")
        m5 = res.get("M5 fixed")
        if s.kind != "null" and m5 is not None and ours.rate < m5.rate - 0.10:
            bad5.append(f"{s.name}: power {pct(ours.rate)} vs M5 {pct(m5.rate)}")
    g.append(
        (
            "G5 dominance",
            "met" if not bad5 else f"MISSED in {len(bad5)} case(s)",
            "; ".join(bad5[:8]) + (" …" if len(bad5) > 8 else "")
            if bad5
            else "no scenario where M1–M3 had both fewer false rollbacks (CIs disjoint) or a "
            "faster median (when both detect >= 50 %), nor M5 > 10 points more power",
        )
    )
    safe = [results[s.name][1][m6] for s in nulls]
    min_prom = min(1 - o.rate for o in safe)
    wrong = []
    for s in errs:
        if s.ratio >= CFG.r_tol:
            o = results[s.name][1][EARLY]
            wrong.append((o.promoted_early / o.reps, s.name))
    w_max = max(wrong) if wrong else (math.nan, "–")
    ok6 = min_prom >= 0.95 and (not wrong or w_max[0] <= CFG.alpha_promote)
    g.append(
        (
            "G6 promotion",
            "met" if ok6 else "MISSED",
            f"safe canaries promoted: at least {pct(min_prom)} in every null scenario; "
            f"early promotion of effects >= {CFG.r_tol:g} x: at most {pct(w_max[0])} "
            f"({w_max[1]}; bound {CFG.alpha_promote:g})",
        )
    )
    het = [s for s in nulls if s.hetero_sd > 0]
    het_worst = max((results[s.name][1][m6].ci()[1], s.name, results[s.name][1][m6].rate) for s in het)
    o2 = get("errors x2 at 100 rps, p0 0.01")
    ok7 = het_worst[0] <= 0.05 and o2 is not None and o2.judged_med <= 1100
    g.append(
        (
            "G7 adaptive margin (stretch)",
            "met" if ok7 else "MISSED",
            f"per-pod stable counters ({nulls[0].stable_pods} stable pods) drive the margin; "
            f"heterogeneity sd 0.2 at 10/100/1000 rps: worst '{het_worst[1]}' "
            f"{pct(het_worst[2])}, CP upper {pct(het_worst[0])} (bound 5 %); homogeneous 2 x at "
            f"1 %, 100 rps: median {fmt(o2.judged_med) if o2 else '–'} judged canary requests "
            "(target 1,100)",
        )
    )
    g.extend(_goals_8_9(results, errs, bounds))
    return g


def _goals_8_9(
    results: dict[str, tuple[Scenario, dict[str, Outcome]]],
    errs: list[Scenario],
    bounds: dict[str, tuple[bnd.Bound, bnd.Bound]] | None = None,
) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    falls: list[str] = []
    groups: dict[tuple[float, float, float, float], list[Scenario]] = {}
    for s in errs:
        if s.ratio >= 1.25 and s.ratio != 1.3:
            groups.setdefault((s.rps, s.p0, s.dt, s.step_s), []).append(s)
    for key, scen in groups.items():
        scen.sort(key=lambda x: x.ratio)
        for m in ("M6 ours", "M6 without per-pod input"):
            rates = [results[x.name][1][m].rate for x in scen]
            best = 0.0
            for x, r in zip(scen, rates, strict=True):
                if r < best - 0.02:  # beyond sampling noise of independent runs
                    falls.append(f"{m} at {key[0]:g} rps, p0 {key[1]:g}: {pct(r)} at "
                                 f"{_ratio_name(x.ratio)} after {pct(best)}")
                best = max(best, r)
    # (b) a canary failing every request: share of runs rolled back within 3 intervals of
    # the 10th failed request, and the worst run, per traffic level and input
    lag_txt, lag_ok = [], True
    for s in errs:
        if not math.isinf(s.ratio):
            continue
        for m in ("M6 ours", "M6 without per-pod input"):
            o = results[s.name][1][m]
            ok = o.rate == 1.0 and o.lag10_ok == 1.0
            lag_ok &= ok
            if not ok or s.rps in (0.5, 1000.0):
                lag_txt.append(
                    f"{'with' if m == 'M6 ours' else 'without'} per-pod input, {s.rps:g} rps, p0 "
                    f"{s.p0:g}: {pct(o.lag10_ok)} of runs within 3 (worst {fmt(o.lag10_max)})"
                )
    # (c) per-pod input vs none, and the same with new pods included (no warm-up policy):
    # the difference is the new-pod policy's cost
    slower = [_c_text(s, results) for s in c_missed(results, errs)]
    slower_incl = [_c_text(s, results, INCLUDE) for s in c_missed(results, errs, INCLUDE)]
    ran_incl = any(INCLUDE in results[s.name][1] for s in errs)
    missed = [k for k, bad in (("a", falls), ("b", not lag_ok), ("c", slower)) if bad]
    text_a = ("(a) met: detection never falls as the ratio grows (1.25 x to 100 % errors, "
              "0.5–1000 rps, both inputs)" if not falls
              else f"(a) MISSED: falls in {len(falls)} case(s): " + "; ".join(falls[:4]))
    text_b = ("(b) met: every all-failing run rolled back within 3 intervals of its 10th failure"
              if lag_ok else "(b) MISSED") + (": " + "; ".join(lag_txt[:8]) if lag_txt else "")
    text_c = (
        "(c) met: per-pod input never weaker/slower than none" if not slower
        else f"(c) MISSED: per-pod input slower or weaker than none in {len(slower)} effect "
        "scenario(s), e.g. " + "; ".join(slower[:4]) + _bound_summary(results, bounds or {})
    ) + (
        f"; with new pods included (no warm-up policy) in {len(slower_incl)}"
        + (": " + "; ".join(slower_incl[:4]) if slower_incl else "")
        if ran_incl else ""
    )
    out.append((
        "G8 more harm is more evidence",
        "met" if not missed else "MISSED (" + ", ".join(missed) + ")",
        "; ".join((text_a, text_b, text_c)),
    ))
    o9 = results.get("errors x1.3 at 1000 rps, p0 0.01")
    if o9 is not None:
        a, b = o9[1]["M6 ours"], o9[1]["M6 without per-pod input"]
        out.append((
            "G9 reach",
            "met" if a.rate >= 0.8 else "MISSED",
            f"1.3 x at 1000 rps, 1 %: detected {pct(a.rate)} (median {fmt(a.t_med, 1)} min) "
            f"with per-pod input, {pct(b.rate)} ({fmt(b.t_med, 1)} min) without (need 80 %)",
        ))
    else:
        out.append(("G9 reach", "not run", "quick mode"))
    return out


def c_missed(
    results: dict[str, tuple[Scenario, dict[str, Outcome]]], errs: list[Scenario], m: str = "M6 ours"
) -> list[Scenario]:
    """Effect scenarios where method m (per-pod input) detects less (beyond 2 points) or
    slower (median beyond 10 %) than the default without per-pod input: G8 (c)."""
    out = []
    for s in errs:
        if s.name not in results:
            continue
        res = results[s.name][1]
        a, b = res.get(m), res["M6 without per-pod input"]
        if a is None:
            continue
        if a.rate < b.rate - 0.02 or (
            a.rate >= 0.5 and b.rate >= 0.5 and a.t_med > 1.1 * b.t_med + 1e-9
        ):
            out.append(s)
    return out


def _c_text(s: Scenario, results: dict[str, tuple[Scenario, dict[str, Outcome]]], m: str = "M6 ours") -> str:
    a, b = results[s.name][1][m], results[s.name][1]["M6 without per-pod input"]
    return (f"{s.name}: {pct(a.rate)} in {fmt(a.t_med, 1)} min vs "
            f"{pct(b.rate)} in {fmt(b.t_med, 1)} min")


def g8_bounds(
    results: dict[str, tuple[Scenario, dict[str, Outcome]]], errs: list[Scenario], seed: int
) -> dict[str, tuple[bnd.Bound, bnd.Bound]]:
    """For every G8 (c) miss, the best any valid test could do (see _analysis_bound): against
    G1's slow-starting pods and against the documented new-pod allowance. Own random
    stream (the other scenarios' draws are unchanged); 1,000 effect runs each."""
    rng = np.random.default_rng([seed, 8])
    out: dict[str, tuple[bnd.Bound, bnd.Bound]] = {}
    for s in c_missed(results, errs):
        b = simulate(s, 1000, rng, CFG.warmup_s)
        out[s.name] = (
            bnd.bound(b, s, "slow_start", rng),
            bnd.bound(b, s, "allowance", rng, new_pod_r0=CFG.new_pod_r0),
        )
    return out


def _unattainable(s_fb: Outcome, bd: bnd.Bound) -> bool:
    """No test valid under bd's null can meet (c) against this fallback result."""
    rate_short = bd.power_end < s_fb.rate - 0.02
    slow = s_fb.rate >= 0.5 and bd.median_min > 1.1 * s_fb.t_med + 1e-9
    return rate_short or slow


def _bound_summary(
    results: dict[str, tuple[Scenario, dict[str, Outcome]]],
    bounds: dict[str, tuple[bnd.Bound, bnd.Bound]],
) -> str:
    if not bounds:
        return ""
    fb = {n: results[n][1]["M6 without per-pod input"] for n in bounds}
    n_ss = sum(_unattainable(fb[n], v[0]) for n, v in bounds.items())
    n_al = sum(_unattainable(fb[n], v[1]) for n, v in bounds.items())
    return (f"; no test that keeps G1 under slow-starting pods can meet (c) in {n_ss} of them, "
            f"none that honours the documented new-pod allowance in {n_al} (G8 (c) table)")


def bound_lines(
    results: dict[str, tuple[Scenario, dict[str, Outcome]]],
    bounds: dict[str, tuple[bnd.Bound, bnd.Bound]],
) -> list[str]:
    if not bounds:
        return ["No G8 (c) miss: nothing to bound."]
    L = [
        "For each scenario where per-pod input (the default, with its new-pod policy) is slower "
        "or weaker than the fallback without it: the best detection that any test can reach "
        "while it keeps its false-rollback rate <= 5 % under a null and, like both judges here, "
        "conditions on each interval's bad events (so that trends common to both arms, G1's "
        "common shock, cancel). Neyman–Pearson bound from 1,000 effect runs, the test told the "
        "effect's exact ratio; see benchmarks/_analysis_bound.py. 'slow-start' is G1's scenario "
        "(a new pod errs x5 at start, fading to x1 over 90 s): a test slower than this bound "
        "cannot keep G1. For ratios below 5 the bound is the monotone one (while the cold pod "
        "errs at least r x, its counts dominate the effect's, so a judge monotone in canary "
        "errors rolls back no sooner; 'monotone'). 'allowance' is the documented policy's null "
        f"(a young pod may err up to {CFG.new_pod_r0:g} x for its whole warm-up, profile "
        "unknown). 'cannot' marks a bound that itself misses (c) (slower than 1.1 x the "
        "fallback's median, or more than 2 points less detection). A bound that meets (c) does "
        "not make (c) reachable: it is the power of a fixed test told the effect, while both "
        "judges are sequential mixtures (about 30–40 % more requests at the design effect).",
        "",
        "| scenario | default: detected, median min | fallback | bound vs slow-start | "
        "bound vs allowance |",
        "|---|---|---|---|---|",
    ]
    n_ss = n_al = 0
    for name, (ss, al) in bounds.items():
        res = results[name][1]
        a, b = res["M6 ours"], res["M6 without per-pod input"]
        cells = []
        for bd in (ss, al):
            bad = _unattainable(b, bd)
            if bd is ss:
                n_ss += bad
            else:
                n_al += bad
            kind = " (monotone)" if bd.monotone_only else f", {pct(bd.power_end)}"
            cells.append(f"{fmt(bd.median_min, 2)} min{kind}{': cannot' if bad else ''}")
        L.append(
            f"| {name} | {pct(a.rate)}, {fmt(a.t_med, 2)} | {pct(b.rate)}, {fmt(b.t_med, 2)} | "
            + " | ".join(cells) + " |"
        )
    L += [
        "",
        f"(c) cannot be met by any test that keeps G1 under slow-starting pods in {n_ss} of these "
        f"{len(bounds)} scenarios, and by any test that honours the documented allowance in "
        f"{n_al}.",
    ]
    return L


def plot(
    results: dict[str, tuple[Scenario, dict[str, Outcome]]],
    errs: list[Scenario],
    lats: list[Scenario],
    path: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    panels = [
        (
            [s for s in errs if s.rps == 100.0 and s.p0 == 0.01 and s.dt == 15.0 and s.step_s == 600.0
             and math.isfinite(s.ratio)],
            "ratio",
            "error-rate ratio (100 rps, p0 1 %)",
        ),
        (
            [s for s in lats if s.log_sd == 0.5 and s.tail_frac == 0],
            "shift",
            "latency multiplier (100 rps, log-sd 0.5)",
        ),
    ]
    for ax, (scen, attr, title) in zip(axes, panels, strict=True):
        for mname in METHOD_ORDER[:-1]:
            xs, ys = [], []
            for s in scen:
                o = results[s.name][1].get(mname)
                if o is not None and o.rate >= 0.5:
                    xs.append(getattr(s, attr))
                    ys.append(o.t_med)
            if xs:
                ax.plot(xs, ys, marker="o", label=mname, linewidth=2.5 if mname == "M6 ours" else 1.0)
        ax.set_xscale("log")
        ax.set_xlabel(title)
        ax.set_ylabel("median minutes to rollback (where detected >= 50 %)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_ = nominal_weights  # re-exported for interactive use

if __name__ == "__main__":
    raise SystemExit(main())

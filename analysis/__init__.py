"""Canary analysis: anytime-valid sequential judges, plus Kayenta- and threshold-style ones.

Pure numpy/scipy; no Kubernetes, no asyncio. Typical controller use, once per scrape
(e.g. every 15 s) with *raw cumulative counters* queried from Prometheus per arm::

    from analysis import ArmSnapshot, SequentialJudge, Snapshot

    judge = SequentialJudge(latency=True)          # one judge per rollout (or per step)
    verdict = judge.observe(Snapshot(
        timestamp=now,
        canary=ArmSnapshot(requests=..., bad=..., buckets={le: count, ..., inf: count}),
        baseline=ArmSnapshot(requests=..., bad=..., buckets={...}),
    ))
    verdict.decision     # Decision.CONTINUE | PROMOTE | ROLLBACK
    verdict.phase        # Phase.SUCCESSFUL | FAILED | INCONCLUSIVE | ERROR (Argo measurement)
    verdict.explanation  # one sentence for humans
    verdict.to_dict()    # JSON-serialisable evidence (e-values, p-values, intervals, counts)

Counters: ``requests`` = sum(istio_requests_total) of the arm, ``bad`` = its 5xx part,
``buckets`` = sum by (le) of istio_request_duration_milliseconds_bucket (cumulative, with
``math.inf`` for ``+Inf``), and (recommended, both arms) ``pods`` = {pod: (requests, bad)}
from ``sum by (pod) (istio_requests_total{...})`` and its 5xx part. Per-pod counters make
counter resets per series (a restarted pod never brings the other pods' history into an
interval), enable the new-pod policy (pods younger than ``new_pod_warmup_s`` are left out on
both arms on every scale-up; ``warm_pods`` names pods known to be older at the first
scrape), and on the baseline switch the error test to the adaptive margin: the null allows
the canary to differ from stable as much as the stable pods differ from each other, so
harmless pod-to-pod variation does not roll back while a homogeneous fleet is judged
almost as strictly as ratio <= 1. Without them the fixed margin ``error_r0`` applies, and
a decrease of an arm's sum makes that interval "no data". A larger error ratio is never
less evidence, up to a canary failing every request. Missing scrapes (None/NaN) are
skipped and the next interval spans the gap; inconsistent input raises ``ValueError``
(wrap it with ``Verdict.from_error`` to record an Error measurement).

Public API
    counters:   ArmSnapshot(requests, bad, buckets=None, pods=None, warm_pods=()), Snapshot,
                Increment, ArmIncrement (``pods``: ((pod, requests, bad), ...) or None;
                ``young``: (requests, bad) left out), CounterTracker(warmup_s=0), to_increments
    judges:     SequentialJudge(config=None, *, errors=True, latency=False)
                    .observe(Snapshot) -> Verdict; .update(Increment) -> Verdict; .verdict
                SequentialConfig(alpha=0.05, error_r0=1.2, adaptive_margin=True,
                    pod_sd_max=0.2, ..., new_pods="exclude", new_pod_warmup_s=120, ...)
                MannWhitneyJudge([MetricConfig(...)], MannWhitneyConfig())
                    .judge({name: (canary_series, baseline_series)}) -> Verdict
                classify(canary, baseline, MetricConfig, MannWhitneyConfig) -> MetricResult
                ThresholdJudge([Condition(...)], failure_limit=0, interval_s=60,
                    consecutive=False).update(Increment) -> Verdict
    verdicts:   Verdict, MetricVerdict, Decision, Phase
    helpers:    histogram_quantile (Prometheus interpolation), hodges_lehmann_interval
    low level:  RatioEProcess (one rate ratio), PodAdaptiveEProcess (adaptive margin),
                LatencyEProcess (histogram), log_evalue_paths and
                adaptive_log_evalue_paths (vectorised, for simulations)

See docs/analysis.md for the method and every parameter.
"""

from .counters import (
    ArmIncrement,
    ArmSnapshot,
    CounterTracker,
    Increment,
    Snapshot,
    to_increments,
)
from .eprocess import RatioEProcess, default_alternatives, log_evalue_paths
from .heterogeneity import PodAdaptiveEProcess, adaptive_log_evalue_paths
from .histogram import histogram_quantile
from .latency import LatencyEProcess
from .mannwhitney import (
    Classification,
    MannWhitneyConfig,
    MannWhitneyJudge,
    MetricConfig,
    classify,
    hodges_lehmann_interval,
)
from .sequential import SequentialConfig, SequentialJudge
from .threshold import Condition, ThresholdJudge
from .verdict import Decision, MetricVerdict, Phase, Verdict

__all__ = [
    "ArmIncrement",
    "ArmSnapshot",
    "Classification",
    "Condition",
    "CounterTracker",
    "Decision",
    "Increment",
    "LatencyEProcess",
    "MannWhitneyConfig",
    "MannWhitneyJudge",
    "MetricConfig",
    "MetricVerdict",
    "Phase",
    "PodAdaptiveEProcess",
    "RatioEProcess",
    "SequentialConfig",
    "SequentialJudge",
    "Snapshot",
    "ThresholdJudge",
    "Verdict",
    "adaptive_log_evalue_paths",
    "classify",
    "default_alternatives",
    "histogram_quantile",
    "hodges_lehmann_interval",
    "log_evalue_paths",
    "to_increments",
]

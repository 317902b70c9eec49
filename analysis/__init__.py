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
``math.inf`` for ``+Inf``). Missing scrapes (None/NaN) are skipped and the next interval
spans the gap; counter resets count the new value as the increase; inconsistent input
raises ``ValueError`` (wrap it with ``Verdict.from_error`` to record an Error measurement).

Public API
    counters:   ArmSnapshot, Snapshot, Increment, ArmIncrement, CounterTracker, to_increments
    judges:     SequentialJudge(config=None, *, errors=True, latency=False)
                    .observe(Snapshot) -> Verdict; .update(Increment) -> Verdict; .verdict
                SequentialConfig(alpha=0.05, error_r0=1.2, ..., early_promotion=False, ...)
                MannWhitneyJudge(metrics, config).judge({name: (canary, baseline)}) -> Verdict
                ThresholdJudge(conditions, failure_limit, ...).update(Increment) -> Verdict
    verdicts:   Verdict, MetricVerdict, Decision, Phase
    low level:  RatioEProcess (one rate ratio), LatencyEProcess (histogram),
                log_evalue_paths (vectorised, for simulations)

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
from .latency import LatencyEProcess
from .sequential import SequentialConfig, SequentialJudge
from .verdict import Decision, MetricVerdict, Phase, Verdict

__all__ = [
    "ArmIncrement",
    "ArmSnapshot",
    "CounterTracker",
    "Decision",
    "Increment",
    "LatencyEProcess",
    "MetricVerdict",
    "Phase",
    "RatioEProcess",
    "SequentialConfig",
    "SequentialJudge",
    "Snapshot",
    "Verdict",
    "default_alternatives",
    "log_evalue_paths",
    "to_increments",
]

"""Gauges computed at scrape time: the work queue's counters and every cached Rollout's
state (phase, step, weight, replicas, analysis). Nothing is stored between scrapes, so a
deleted rollout's series disappear at once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rollouts.api.analysis_readout import MetricObs, analysis_metrics, analysis_runs
from rollouts.observability.metrics import QUEUE

PHASES: Final = ("Progressing", "Paused", "Healthy", "Degraded")
ANALYSIS_PHASES: Final = ("Pending", "Running", "Successful", "Failed", "Inconclusive", "Error")


class QueueLike(Protocol):
    adds_total: int
    retries_total: int
    aged_total: int

    def __len__(self) -> int: ...
    def depth(self, urgent: bool) -> int: ...


class WorkQueueCollector(Collector):
    def __init__(self, queue: QueueLike, in_flight: dict[str, float]) -> None:
        self.queue = queue
        self.in_flight = in_flight

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("workqueue_depth", "Keys waiting in the queue.", labels=["name"])
        depth.add_metric([QUEUE], len(self.queue))
        adds = CounterMetricFamily("workqueue_adds", "Keys added to the queue.", labels=["name"])
        adds.add_metric([QUEUE], self.queue.adds_total)
        retries = CounterMetricFamily("workqueue_retries", "Rate-limited re-adds after errors.",
                                      labels=["name"])
        retries.add_metric([QUEUE], self.queue.retries_total)
        now = time.monotonic()
        running = [now - t for t in list(self.in_flight.values())]
        unfinished = GaugeMetricFamily("workqueue_unfinished_work_seconds",
                                       "Seconds of work in progress not yet observed by "
                                       "work_duration.", labels=["name"])
        unfinished.add_metric([QUEUE], sum(running))
        longest = GaugeMetricFamily("workqueue_longest_running_processor_seconds",
                                    "Seconds the longest running reconcile has been running.",
                                    labels=["name"])
        longest.add_metric([QUEUE], max(running, default=0.0))
        lanes = GaugeMetricFamily("rollouts_workqueue_lane_depth", "Keys waiting, by lane "
                                  "(urgent: step work; normal: new work).", labels=["name", "lane"])
        lanes.add_metric([QUEUE, "urgent"], self.queue.depth(True))
        lanes.add_metric([QUEUE, "normal"], self.queue.depth(False))
        aged = CounterMetricFamily("rollouts_workqueue_aged", "Normal keys served ahead of "
                                   "urgent ones after waiting the aging bound.", labels=["name"])
        aged.add_metric([QUEUE], self.queue.aged_total)
        yield from (depth, adds, retries, unfinished, longest, lanes, aged)


def _num(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


class RolloutCollector(Collector):
    """Labels are ``namespace`` and ``rollout`` (plus a small fixed set); never revisions,
    run names, users or messages, which would make a series per release.

    Analysis metrics come from the rollout's newest AnalysisRun (``runs``, an informer's
    cache) when given, else from ``status.analysis.metrics``."""

    def __init__(self, rollouts: Callable[[], Iterable[dict[str, Any]]],
                 runs: Callable[[], Iterable[dict[str, Any]]] | None = None) -> None:
        self.rollouts = rollouts
        self.runs = runs

    def _run_metrics(self) -> dict[tuple[str, str], list[MetricObs]]:
        """(namespace, rollout) -> metric results of its newest AnalysisRun per metric name."""
        newest: dict[tuple[str, str, str], tuple[str, MetricObs]] = {}
        for run in self.runs() if self.runs is not None else ():
            md = run.get("metadata") or {}
            owner = next((o.get("name") for o in md.get("ownerReferences") or []
                          if o.get("kind") == "Rollout"), None)
            if not owner:
                continue
            created = str(md.get("creationTimestamp") or "")
            for m in analysis_metrics({"analysis": run.get("status") or {}}):
                k = (str(md.get("namespace", "")), str(owner), m.name)
                if k not in newest or newest[k][0] <= created:
                    newest[k] = (created, m)
        out: dict[tuple[str, str], list[MetricObs]] = {}
        for (ns, ro, _), (_, m) in sorted(newest.items()):
            out.setdefault((ns, ro), []).append(m)
        return out

    def collect(self) -> Iterator[Metric]:
        base = ["namespace", "rollout"]
        info = GaugeMetricFamily("rollout_info", "A Rollout exists (value 1).",
                                 labels=[*base, "strategy", "traffic_router"])
        phase = GaugeMetricFamily("rollout_phase", "1 for the rollout's current phase, 0 for others.",
                                  labels=[*base, "phase"])
        step = GaugeMetricFamily("rollout_current_step", "Index of the current canary step "
                                 "(equal to rollout_step_count when all steps are done).", labels=base)
        nsteps = GaugeMetricFamily("rollout_step_count", "Number of canary steps.", labels=base)
        weight = GaugeMetricFamily("rollout_canary_weight", "Traffic weight on the canary (0-100).",
                                   labels=base)
        replicas = GaugeMetricFamily("rollout_replicas", "Pods of the rollout by state.",
                                     labels=[*base, "state"])
        aborted = GaugeMetricFamily("rollout_aborted", "1 while the rollout is aborted.", labels=base)
        paused = GaugeMetricFamily("rollout_paused", "1 while the rollout is paused.", labels=base)
        deadline = GaugeMetricFamily("rollout_progress_deadline_exceeded",
                                     "1 while the Progressing condition says ProgressDeadlineExceeded.",
                                     labels=base)
        run_phase = GaugeMetricFamily("rollout_analysis_run_phase",
                                      "1 for the current phase of the rollout's analysis runs.",
                                      labels=[*base, "kind", "phase"])
        m_phase = GaugeMetricFamily("rollout_analysis_metric_phase",
                                    "1 for the current phase of each analysis metric, 0 for others.",
                                    labels=[*base, "metric", "phase"])
        m_value = GaugeMetricFamily("rollout_analysis_metric_value",
                                    "Last measured value of each analysis metric.",
                                    labels=[*base, "metric"])
        m_evalue = GaugeMetricFamily("rollout_analysis_metric_evalue",
                                     "E-value of the sequential judge for each metric (evidence "
                                     "against the canary; rollback at 1/alpha).",
                                     labels=[*base, "metric"])
        from_runs = self._run_metrics()
        for obj in self.rollouts():
            md = obj.get("metadata") or {}
            lv = [str(md.get("namespace", "")), str(md.get("name", ""))]
            spec = obj.get("spec") or {}
            st = obj.get("status") or {}
            strategy = spec.get("strategy") or {}
            canary = strategy.get("canary") or {}
            router = ",".join(sorted((canary.get("trafficRouting") or {}).keys())) or "none"
            info.add_metric([*lv, "blueGreen" if "blueGreen" in strategy else "canary", router], 1)
            cur = st.get("phase")
            for p in PHASES:
                phase.add_metric([*lv, p], 1 if cur == p else 0)
            steps = canary.get("steps")
            if isinstance(steps, list):
                nsteps.add_metric(lv, len(steps))
            idx = _num(st.get("currentStepIndex"))
            if idx is not None:
                step.add_metric(lv, idx)
            w = (((st.get("canary") or {}).get("weights") or {}).get("canary") or {}).get("weight")
            weight.add_metric(lv, _num(w) or 0)
            replicas.add_metric([*lv, "desired"], _num(spec.get("replicas")) or 0)
            for state, key in (("updated", "updatedReplicas"), ("ready", "readyReplicas"),
                               ("available", "availableReplicas")):
                replicas.add_metric([*lv, state], _num(st.get(key)) or 0)
            aborted.add_metric(lv, 1 if st.get("abort") is True else 0)
            paused.add_metric(lv, 1 if cur == "Paused" else 0)
            conds = st.get("conditions")
            pde = isinstance(conds, list) and any(
                isinstance(c, dict) and c.get("type") == "Progressing"
                and c.get("reason") == "ProgressDeadlineExceeded" for c in conds)
            deadline.add_metric(lv, 1 if pde else 0)
            for run in analysis_runs(st):
                run_phase.add_metric([*lv, run.kind, run.phase or "Unknown"], 1)
            for m in from_runs.get((lv[0], lv[1])) or analysis_metrics(st):
                for p in ANALYSIS_PHASES:
                    m_phase.add_metric([*lv, m.name, p], 1 if m.phase == p else 0)
                if m.value is not None:
                    m_value.add_metric([*lv, m.name], m.value)
                if m.e_value is not None:
                    m_evalue.add_metric([*lv, m.name], m.e_value)
        yield from (info, phase, step, nsteps, weight, replicas, aborted, paused, deadline, run_phase,
                    m_phase, m_value, m_evalue)

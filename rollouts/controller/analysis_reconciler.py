"""Runs AnalysisRuns: takes due measurements through the providers and writes the results.

All progress is in the run's status (measurements with timestamps, counts, the judge's
snapshots), so a restarted controller continues where it stopped.
"""

from __future__ import annotations

import base64
import copy
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rollouts.api.constants import GROUP, VERSION
from rollouts.api.status import fmt_time, parse_time
from rollouts.controller import analysisrun as ar
from rollouts.kube.client import JSON, SECRETS, Kube, KubeError, Resource
from rollouts.kube.informer import Informer
from rollouts.metrics import judge, providers

log = logging.getLogger(__name__)
ANALYSIS_RUNS = Resource(GROUP, VERSION, "analysisruns")
JOBS = Resource("batch", "v1", "jobs")


class ArgError(Exception):
    pass


async def resolve_args(kube: Kube, ns: str, raw: Any) -> dict[str, str | None]:
    args: dict[str, str | None] = {}
    for a in raw or []:
        if not isinstance(a, dict) or not isinstance(a.get("name"), str):
            raise ArgError("every arg needs a name")
        name = a["name"]
        if a.get("value") is not None:
            args[name] = str(a["value"])
            continue
        vf = a.get("valueFrom")
        ref = vf.get("secretKeyRef") if isinstance(vf, dict) else None
        if isinstance(ref, dict):
            try:
                secret = await kube.get(SECRETS.path(ns, str(ref.get("name"))))
            except KubeError as e:
                raise ArgError(f"args.{name}: Secret {ref.get('name')} could not be read: {e.message}") from e
            data = (secret.get("data") or {}).get(str(ref.get("key")))
            if data is None:
                raise ArgError(f"args.{name}: Secret {ref.get('name')} has no key {ref.get('key')!r}")
            args[name] = base64.b64decode(data).decode()
            continue
        args[name] = None
    return args


class AnalysisRunReconciler:
    def __init__(self, kube: Kube, runs: Informer, clock: Callable[[], datetime] | None = None,
                 controller_namespace: str | None = None) -> None:
        self.kube = kube
        self.runs = runs
        self.clock = clock or (lambda: datetime.now(UTC))
        # Providers' credentials Secrets live here by default, as in Argo.
        # (the manager's default: $POD_NAMESPACE, else rollouts-system)
        self.controller_namespace = (controller_namespace or os.environ.get("POD_NAMESPACE")
                                     or "rollouts-system")

    async def _secret(self, ns: str, name: str) -> dict[str, str] | None:
        try:
            s = await self.kube.get_or_none(SECRETS.path(ns, name))
        except KubeError as e:
            raise providers.ProviderError(f"Secret {ns}/{name} could not be read: {e.message}") from e
        return None if s is None else providers.decode_secret_data(s.get("data"))

    async def reconcile(self, key: str) -> float | None:
        obj = self.runs.get(key)
        if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
            return None
        status: JSON = copy.deepcopy(obj.get("status") or {})
        if status.get("phase") in ar.TERMINAL:
            return None
        md, spec = obj["metadata"], obj.get("spec") or {}
        ns = md["namespace"]
        now = self.clock()
        started = parse_time(status.get("startedAt")) or now
        status["startedAt"] = fmt_time(started)
        requeue: float | None = None
        try:
            args = await resolve_args(self.kube, ns, spec.get("args"))
            # Args may appear anywhere in a metric (queries, conditions, addresses).
            metrics_spec = ar.substitute(spec.get("metrics"), args)
        except ArgError as e:
            status.update(phase=ar.FAILED, message=str(e))
        except KeyError as e:
            status.update(phase=ar.FAILED,
                          message=f"args.{e.args[0]} is referenced by the template but has no value")
        else:
            metrics, errors = ar.parse_metrics({**spec, "metrics": metrics_spec})
            if errors:
                status.update(phase=ar.FAILED, message="; ".join(errors))
            else:
                requeue = await self._measure(spec, status, metrics, [m.provider for m in metrics],
                                              started, now, obj)
        body = copy.deepcopy(obj)
        body["status"] = status
        if status != (obj.get("status") or {}):
            try:
                updated = await self.kube.replace(ANALYSIS_RUNS.path(ns, md["name"], "status"), body)
            except KubeError as e:
                if e.conflict:
                    return 0.2
                if e.not_found:
                    return None
                raise
            # read-your-writes; the echo wakes the owning Rollout, not this run again
            self.runs.wrote(updated)
        return requeue if status.get("phase") not in ar.TERMINAL else None

    async def _measure(self, spec: JSON, status: JSON, metrics: list[ar.MetricSpec],
                       resolved: list[dict[str, Any]], started: datetime, now: datetime,
                       spec_owner: JSON | None = None) -> float | None:
        results: dict[str, dict[str, Any]] = {
            str(r.get("name")): r for r in status.get("metricResults") or [] if isinstance(r, dict)}
        terminated = spec.get("terminate") is True
        waits: list[float] = []
        ns = str(((spec_owner or {}).get("metadata") or {}).get("namespace") or "")
        for metric, prov in zip(metrics, resolved, strict=True):
            r = dict(results.get(metric.name) or {"name": metric.name})
            r["dryRun"] = metric.dry_run or None
            wait = None if terminated else ar.next_due(metric, r, started, now)
            if wait is not None and wait <= 0:
                if metric.provider_kind == "job":
                    r, pending = await self._job(spec_owner, metric, prov, r)
                    wait = 1.0 if pending else ar.next_due(metric, r, started, self.clock())
                else:
                    ctx = providers.Context(secrets=self._secret, namespace=ns,
                                            controller_namespace=self.controller_namespace,
                                            now=now.timestamp(), run_started=started.timestamp(),
                                            interval=metric.interval)
                    r = await take_measurement(metric, prov, r, now, self.clock, ctx=ctx)
                    wait = ar.next_due(metric, r, started, self.clock())
            r["phase"] = ar.assess(metric, r, terminated)
            if r["phase"] not in ar.TERMINAL and wait is not None:
                waits.append(max(wait, 0.2))
            results[metric.name] = {k: v for k, v in r.items() if v is not None}
        status["metricResults"] = [results[m.name] for m in metrics]
        phase, message = ar.run_phase(metrics, results)
        if terminated and phase in (ar.RUNNING, ar.SUCCESSFUL):
            phase, message = ar.SUCCESSFUL, "run terminated"
        status["phase"], status["message"] = phase, message
        if phase in ar.TERMINAL:
            status["completedAt"] = fmt_time(self.clock())
        return min(waits) if waits else None

    async def _job(self, run: JSON | None, metric: ar.MetricSpec, prov: dict[str, Any],
                   r: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Argo's job provider: one Job per measurement; Complete is Successful, Failed is
        Failed. Returns the result and whether the Job is still running."""
        assert run is not None
        md = run["metadata"]
        n = int(r.get("count") or 0) + 1
        name = f"{md['name']}-{metric.name}-{n}".lower()[:63].rstrip("-.")
        path = JOBS.path(md["namespace"], name)
        started = self.clock()
        try:
            job = await self.kube.get_or_none(path)
            if job is None:
                body = {"apiVersion": "batch/v1", "kind": "Job",
                        "metadata": {**(prov.get("metadata") or {}), "name": name,
                                     "namespace": md["namespace"],
                                     "ownerReferences": [{"apiVersion": run["apiVersion"],
                                                          "kind": "AnalysisRun", "name": md["name"],
                                                          "uid": md["uid"], "controller": True}]},
                        "spec": prov.get("spec") or {}}
                await self.kube.create(JOBS.path(md["namespace"]), body)
                return r, True
        except KubeError as e:
            return ar.record(metric, r, ar.ERROR, "", f"Job {name}: {e.message}", started,
                             self.clock()), False
        conds = {c.get("type"): c for c in (job.get("status") or {}).get("conditions") or []
                 if c.get("status") == "True"}
        if "Complete" in conds:
            return ar.record(metric, r, ar.SUCCESSFUL, "Complete", "", started, self.clock(),
                             {"metadata": {"job": name}}), False
        if "Failed" in conds:
            why = conds["Failed"].get("message") or conds["Failed"].get("reason") or "failed"
            return ar.record(metric, r, ar.FAILED, "Failed", f"Job {name} failed: {why}", started,
                             self.clock(), {"metadata": {"job": name}}), False
        return r, True


async def take_measurement(metric: ar.MetricSpec, prov: dict[str, Any], r: dict[str, Any],
                           now: datetime, clock: Callable[[], datetime],
                           at: float | None = None,
                           ctx: providers.Context | None = None) -> dict[str, Any]:
    """The metric result after one more measurement from its provider (prometheus, web,
    judge); ``at`` evaluates Prometheus queries at a past time (replay). A provider
    failure is an Error measurement, never an exception."""
    started = clock()
    extra: dict[str, Any] = {}
    try:
        if metric.provider_kind == "prometheus":
            reading = await providers.prometheus(prov, at=at)
        elif metric.provider_kind == "web" and at is None:
            reading = await providers.web(prov)
        elif metric.provider_kind == "judge":
            reading = await judge.judge_reading(prov, list(r.get("judgeSnapshots") or []),
                                                now.timestamp(), at=at, ctx=ctx)
        elif metric.provider_kind in providers.REGISTRY and at is None:
            reading = await providers.measure(metric.provider_kind, prov, ctx or providers.Context())
        else:
            raise providers.ProviderError(f"the {metric.provider_kind} provider cannot be "
                                          f"{'replayed' if at is not None else 'measured here'}")
    except (TimeoutError, providers.ProviderError) as e:
        return ar.record(metric, r, ar.ERROR, "", str(e) or "provider timed out", started, clock())
    extra["metadata"] = reading.metadata
    if metric.provider_kind == "judge":
        # The judge's own phase: Inconclusive = no usable canary traffic yet (assess decides
        # judge metrics by the decision, so it is not a vote either way).
        ev = reading.evidence or {}
        extra["decision"] = ev.get("decision")
        # Bounded: older snapshots are thinned (judge.compact_snapshots keeps the verdict valid).
        r = {**r, "judgeSnapshots": judge.compact_snapshots(
                 [*(r.get("judgeSnapshots") or []), reading.snapshot]),
             "evidence": ev}
        return ar.record(metric, r, str(reading.phase), str(reading.value), reading.message or "",
                         started, clock(), extra)
    if reading.phase is not None:  # Kayenta: its score against the thresholds decides
        return ar.record(metric, r, reading.phase, reading.value, reading.message or "", started,
                         clock(), extra)
    phase, message = ar.measurement_phase(metric, reading.value)
    return ar.record(metric, r, phase, reading.value, message, started, clock(), extra)

"""reconcile(key) for Experiments: observe (informers, plus reads of what they may not
hold yet), decide (``rollouts.controller.experiment``, pure), act, write status once.

A refused action (quota, webhook, RBAC) is never hidden: as in Argo, the template or
analysis it was for turns Error with the API server's message, a Warning Event is
recorded, and the experiment ends with Error (its ReplicaSets then scale down). A
failure to read the cluster writes nothing and is retried with backoff by the manager.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rollouts.api import experiment as model
from rollouts.api.constants import API_VERSION, GROUP, INSTANCE_ID_LABEL, POD_TEMPLATE_HASH_LABEL, VERSION
from rollouts.api.status import parse_time
from rollouts.controller import experiment as ex
from rollouts.controller.analysis_builder import CLUSTER_TEMPLATES, TEMPLATES
from rollouts.controller.analysis_reconciler import ANALYSIS_RUNS
from rollouts.controller.kube_writes import create_owned, owned_by, write_status
from rollouts.controller.run_objects import run_spec, run_state, template_args
from rollouts.kube.client import JSON, REPLICASETS, SERVICES, Kube, KubeError, Resource
from rollouts.kube.events import EventRecorder
from rollouts.kube.informer import Informer

log = logging.getLogger(__name__)
EXPERIMENTS = Resource(GROUP, VERSION, "experiments")
HASH = POD_TEMPLATE_HASH_LABEL


def owner_ref(experiment: JSON) -> JSON:
    md = experiment["metadata"]
    return {"apiVersion": API_VERSION, "kind": "Experiment", "name": md["name"], "uid": md["uid"],
            "controller": True, "blockOwnerDeletion": True}


def template_replica_set(experiment: JSON, t: model.TemplateSpec, name: str, h: str,
                         replicas: int) -> JSON:
    """The ReplicaSet of one template. Its pods carry the template's labels plus the
    experiment's own hash and names; only the Experiment owns it, so no Rollout adopts it."""
    md = experiment["metadata"]
    tmpl = copy.deepcopy(t.template)
    tmeta = tmpl.setdefault("metadata", {})
    labels = {**(tmeta.get("labels") or {}), HASH: h, model.EXPERIMENT_LABEL: md["name"],
              model.TEMPLATE_LABEL: t.name}
    tmeta["labels"] = labels
    selector = copy.deepcopy(t.selector)
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH: h}
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": md["namespace"], "labels": dict(labels),
                     "ownerReferences": [owner_ref(experiment)]},
        "spec": {"replicas": replicas, "minReadySeconds": t.min_ready_seconds,
                 "selector": selector, "template": tmpl},
    }


def container_ports(t: model.TemplateSpec) -> list[JSON]:
    """Service ports for a template, one per container port (as Argo does)."""
    out: list[JSON] = []
    for c in ((t.template.get("spec") or {}).get("containers") or []):
        for p in (c.get("ports") or []) if isinstance(c, dict) else []:
            if not isinstance(p, dict) or not isinstance(p.get("containerPort"), int):
                continue
            port: JSON = {"protocol": p.get("protocol") or "TCP", "port": p["containerPort"],
                          "targetPort": p["containerPort"]}
            if p.get("name"):
                port["name"] = p["name"]
            out.append(port)
    return out


def template_service(experiment: JSON, template: str, name: str, rs: JSON, ports: list[JSON]) -> JSON:
    md = experiment["metadata"]
    pod_labels = ((rs.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": md["namespace"],
                     "labels": {model.EXPERIMENT_LABEL: md["name"], model.TEMPLATE_LABEL: template},
                     "ownerReferences": [owner_ref(experiment)]},
        "spec": {"selector": dict(pod_labels), "ports": ports},
    }


def experiment_run(experiment: JSON, spec: model.ExperimentSpec, analysis: model.AnalysisRef,
                   templates: list[JSON], name: str, args: tuple[dict[str, Any], ...]) -> JSON:
    """An AnalysisRun from the analysis' template: its metrics; its declared args with the
    experiment's values taking precedence; the experiment's dryRun and retention."""
    md = experiment["metadata"]
    merged = template_args(templates)
    for a in args:
        merged[str(a["name"])] = {k: v for k, v in a.items() if k in ("name", "value", "valueFrom")}
    body = run_spec(templates, merged, dry_run=spec.dry_run, retention=spec.measurement_retention)
    meta: JSON = {"name": name, "namespace": md["namespace"],
                  "labels": {**spec.run_labels, model.EXPERIMENT_LABEL: md["name"],
                             f"{GROUP}/analysis": analysis.name,
                             # the controller instance the Experiment belongs to
                             **{k: v for k, v in (md.get("labels") or {}).items()
                                if k == INSTANCE_ID_LABEL}},
                  "ownerReferences": [owner_ref(experiment)]}
    if spec.run_annotations:
        meta["annotations"] = dict(spec.run_annotations)
    return {"apiVersion": API_VERSION, "kind": "AnalysisRun", "metadata": meta, "spec": body}


def _rs_obs(rs: JSON) -> ex.TemplateReplicaSet:
    md, sp, st = rs.get("metadata") or {}, rs.get("spec") or {}, rs.get("status") or {}
    # until the ReplicaSet controller has seen the latest spec, its counts are stale
    fresh = int(st.get("observedGeneration") or 0) >= int(md.get("generation") or 0)
    want = int(sp.get("replicas", 1))
    return ex.TemplateReplicaSet(
        name=md["name"], hash=(md.get("labels") or {}).get(HASH, ""), spec_replicas=want,
        replicas=int(st.get("replicas") or 0),
        ready=int(st.get("readyReplicas") or 0) if fresh else 0,
        available=min(int(st.get("availableReplicas") or 0), want) if fresh else 0,
        scale_down_at=parse_time((md.get("annotations") or {}).get(model.SCALE_DOWN_ANNOTATION)))


class ExperimentReconciler:
    def __init__(self, kube: Kube, experiments: Informer, replicasets: Informer,
                 analysis_runs: Informer, recorder: EventRecorder,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.kube = kube
        self.experiments = experiments
        self.replicasets = replicasets
        self.analysis_runs = analysis_runs
        self.recorder = recorder
        self.clock = clock or (lambda: datetime.now(UTC))

    async def reconcile(self, key: str) -> float | None:
        obj = self.experiments.get(key)
        if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
            return None  # what it owns goes with it through ownerReferences
        md = obj["metadata"]
        spec, errors = model.parse_experiment_spec(obj.get("spec"))
        prev = model.ExperimentStatus.from_dict(obj.get("status"))
        loaded: dict[str, list[JSON]] = {}
        owned_rs: dict[str, JSON] = {}
        obs = ex.ExperimentObs()
        if spec is not None:
            try:
                obs, owned_rs = await self._observe(obj, spec, prev, loaded)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a 403, an unreachable API server: said in status, retried
                await self._observe_failed(obj, prev, e)
                raise
        now = self.clock()
        d = ex.decide_experiment(ex.ExperimentInput(md["name"], spec, tuple(errors), prev), obs, now)
        failed = False
        for action in d.actions:
            assert spec is not None
            try:
                await self._act(obj, spec, action, owned_rs, loaded)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # recorded in status (Error) and an Event, never raised
                msg = e.message if isinstance(e, KubeError) else f"{type(e).__name__}: {e}"
                log.warning("%s: %s failed: %s", key, type(action).__name__, msg)
                ex.record_failure(md["name"], spec, prev, d, action, _failure_message(action, msg), now)
                failed = True
        if not await self._write_status(obj, d.status):
            return 0.2  # someone wrote since we read: recompute from the new version
        for ev in d.events:
            log.info("%s: %s %s: %s", key, ev.type, ev.reason, ev.message)
            await self.recorder.emit(obj, ev.type, ev.reason, ev.message)
        if failed:
            return 1.0  # scale down what the Error phase no longer needs
        return d.requeue_after

    async def _observe_failed(self, obj: JSON, prev: model.ExperimentStatus, e: Exception) -> None:
        """Nothing decided on a partial view: only a ReconciliationError condition (cleared by
        the next reconcile that observes everything), best effort."""
        msg = e.message if isinstance(e, KubeError) else f"{type(e).__name__}: {e}"
        status = copy.deepcopy(prev)
        ex.set_condition(status, ex.RECONCILE_ERROR, "True", ex.RECONCILE_ERROR,
                         f"could not read the cluster: {msg}", self.clock())
        try:
            await self._write_status(obj, status)
        except Exception as werr:  # the API server may be the failure: the retry says it
            log.warning("%s/%s: could not record the failure: %s", obj["metadata"]["namespace"],
                        obj["metadata"]["name"], werr)

    async def _observe(self, obj: JSON, spec: model.ExperimentSpec, prev: model.ExperimentStatus,
                       loaded: dict[str, list[JSON]]) -> tuple[ex.ExperimentObs, dict[str, JSON]]:
        md = obj["metadata"]
        ns, uid = md["namespace"], md["uid"]
        names = {t.name for t in spec.templates}
        owned: dict[str, JSON] = {}
        for rs in self.replicasets.values():
            rmd = rs.get("metadata") or {}
            tname = (rmd.get("labels") or {}).get(model.TEMPLATE_LABEL)
            if rmd.get("namespace") != ns or tname not in names or not owned_by(rs, uid) \
                    or rmd.get("deletionTimestamp"):
                continue
            ts = prev.template(str(tname))
            # two for one template (a spec edit): the one the status names wins
            if tname not in owned or (ts is not None and
                                      (rmd.get("labels") or {}).get(HASH) == ts.pod_template_hash):
                owned[str(tname)] = rs
        services: dict[str, str] = {}
        if any(t.service is not None for t in spec.templates) or \
                any(t.service_name for t in prev.templates):
            data = await self.kube.get_list(SERVICES.path(ns),
                                            labelSelector=f"{model.EXPERIMENT_LABEL}={md['name']}")
            for s in data.get("items") or []:
                smd = s.get("metadata") or {}
                tname = (smd.get("labels") or {}).get(model.TEMPLATE_LABEL)
                if tname in names and owned_by(s, uid) and not smd.get("deletionTimestamp"):
                    services[str(tname)] = smd["name"]
        runs: dict[str, ex.RunObs] = {}
        for r in self.analysis_runs.values():
            if r["metadata"].get("namespace") == ns and owned_by(r, uid):
                runs[r["metadata"]["name"]] = _run_obs(r)
        for rs_status in prev.runs:  # created moments ago: the informer may not hold it yet
            if rs_status.analysis_run and rs_status.analysis_run not in runs \
                    and rs_status.phase not in model.COMPLETED:
                got = await self.kube.get_or_none(ANALYSIS_RUNS.path(ns, rs_status.analysis_run))
                if got is not None and owned_by(got, uid):
                    runs[rs_status.analysis_run] = _run_obs(got)
        analysis_errors: dict[str, str] = {}
        for a in spec.analyses:
            st = prev.run(a.name)
            if st is not None and st.analysis_run:
                continue  # its run exists: the template is no longer needed
            kind = "ClusterAnalysisTemplate" if a.cluster_scope else "AnalysisTemplate"
            path = CLUSTER_TEMPLATES.path(None, a.template_name) if a.cluster_scope \
                else TEMPLATES.path(ns, a.template_name)
            t = await self.kube.get_or_none(path)
            if t is None:
                analysis_errors[a.name] = (f"{kind} verification failed for analysis '{a.name}': "
                                           f"{kind} {a.template_name} not found")
            else:
                loaded[a.name] = [t]
        ports = {t.name: container_ports(t) for t in spec.templates if t.service is not None}
        obs = ex.ExperimentObs({n: _rs_obs(r) for n, r in owned.items()}, services, runs,
                               analysis_errors, ports)
        return obs, owned

    async def _act(self, obj: JSON, spec: model.ExperimentSpec, action: ex.ExperimentAction,
                   owned: dict[str, JSON], loaded: dict[str, list[JSON]]) -> None:
        md = obj["metadata"]
        ns = md["namespace"]
        if isinstance(action, ex.CreateTemplateReplicaSet):
            t = next(t for t in spec.templates if t.name == action.template)
            body = template_replica_set(obj, t, action.name, action.hash, action.replicas)
            await self._create(REPLICASETS, ns, body, md["uid"])
        elif isinstance(action, ex.ScaleTemplateReplicaSet):
            await self.kube.merge_patch(REPLICASETS.path(ns, action.name),
                                        {"spec": {"replicas": action.replicas}})
        elif isinstance(action, ex.MarkScaleDown):
            await self.kube.merge_patch(REPLICASETS.path(ns, action.name), {
                "metadata": {"annotations": {model.SCALE_DOWN_ANNOTATION: action.at}}})
        elif isinstance(action, ex.CreateTemplateService):
            t = next(t for t in spec.templates if t.name == action.template)
            rs = owned[action.template]
            await self._create(SERVICES, ns, template_service(obj, t.name, action.name, rs,
                                                              container_ports(t)), md["uid"])
        elif isinstance(action, ex.DeleteTemplateService):
            try:
                await self.kube.delete(SERVICES.path(ns, action.name))
            except KubeError as e:
                if not e.not_found:
                    raise
        elif isinstance(action, ex.CreateExperimentRun):
            a = next(a for a in spec.analyses if a.name == action.analysis)
            run = experiment_run(obj, spec, a, loaded.get(a.name) or [], action.name, action.args)
            await self._create(ANALYSIS_RUNS, ns, run, md["uid"])
        elif isinstance(action, ex.TerminateExperimentRun):
            try:
                await self.kube.merge_patch(ANALYSIS_RUNS.path(ns, action.name),
                                            {"spec": {"terminate": True}})
            except KubeError as e:
                if not e.not_found:
                    raise

    async def _create(self, res: Resource, ns: str, body: JSON, uid: str) -> None:
        await create_owned(self.kube, res, ns, body, owner_uid=uid, owner_kind="Experiment")

    async def _write_status(self, obj: JSON, status: model.ExperimentStatus) -> bool:
        ok, updated = await write_status(self.kube, EXPERIMENTS, obj, status.to_dict())
        if updated is not None:
            # read-your-writes, never behind what the watch already delivered; its echo
            # is no news
            self.experiments.wrote(updated)
        return ok


def _run_obs(run: JSON) -> ex.RunObs:
    return ex.RunObs(*run_state(run, pending=model.PENDING))


def _failure_message(action: ex.ExperimentAction, msg: str) -> str:
    what = {
        ex.CreateTemplateReplicaSet: "Failed to create ReplicaSet for template '{t}'",
        ex.ScaleTemplateReplicaSet: "Unable to scale ReplicaSet for template '{t}'",
        ex.MarkScaleDown: "Unable to mark ReplicaSet of template '{t}' for scale-down",
        ex.CreateTemplateService: "Failed to create Service for template '{t}'",
        ex.DeleteTemplateService: "Failed to delete Service for template '{t}'",
        ex.CreateExperimentRun: "Failed to create AnalysisRun for analysis '{a}'",
        ex.TerminateExperimentRun: "Failed to terminate AnalysisRun for analysis '{a}'",
    }[type(action)]
    return what.format(t=getattr(action, "template", ""), a=getattr(action, "analysis", "")) + f": {msg}"

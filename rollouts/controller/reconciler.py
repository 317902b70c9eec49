"""reconcile(key): observe, decide (pure), act in order, then write status once.

Level-based and idempotent: every call recomputes from the cached Rollout, its
ReplicaSets and the routing objects. Status is written with the resourceVersion read, so
a concurrent writer (a user's promote, another controller) makes us retry rather than
overwrite; it is written only after every action succeeded, so it never describes
traffic that was not set.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rollouts.api.constants import (
    API_VERSION,
    GROUP,
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    ROLLOUT_PLURAL,
    VERSION,
)
from rollouts.api.spec import RolloutSpec, parse_spec
from rollouts.api.status import RolloutStatus, parse_time
from rollouts.controller.analysis_builder import (
    AnalysisSpecError,
    build_run,
    load_templates,
)
from rollouts.controller.analysis_reconciler import ANALYSIS_RUNS
from rollouts.controller.decide import (
    AnalysisRunObs,
    CreateAnalysisRun,
    CreateReplicaSet,
    DeletePod,
    DeleteReplicaSet,
    Event,
    Observations,
    PodObs,
    ReplicaSetObs,
    RolloutInput,
    ScaleReplicaSet,
    SetTraffic,
    TerminateAnalysisRun,
    decide,
    restart_pending,
)
from rollouts.kube.client import DEPLOYMENTS, JSON, PODS, REPLICASETS, Kube, KubeError, Resource
from rollouts.kube.events import EventRecorder
from rollouts.kube.informer import Informer
from rollouts.traffic.istio import IstioRouter

log = logging.getLogger(__name__)
ROLLOUTS = Resource(GROUP, VERSION, ROLLOUT_PLURAL)
HASH = POD_TEMPLATE_HASH_LABEL
TEMPLATE_ANNOTATION = f"{GROUP}/pod-template"


def owned_replica_sets(rs_objs: list[JSON], rollout_uid: str) -> dict[str, JSON]:
    out: dict[str, JSON] = {}
    for rs in rs_objs:
        md = rs.get("metadata") or {}
        if md.get("deletionTimestamp"):
            continue
        if any(o.get("uid") == rollout_uid and o.get("controller") for o in md.get("ownerReferences") or []):
            h = (md.get("labels") or {}).get(HASH)
            if h:
                out[h] = rs
    return out


def rs_observation(rs: JSON) -> ReplicaSetObs:
    md, spec, st = rs.get("metadata") or {}, rs.get("spec") or {}, rs.get("status") or {}
    try:
        rev = int((md.get("annotations") or {}).get(REVISION_ANNOTATION, "0"))
    except ValueError:
        rev = 0
    # Until the ReplicaSet controller has seen the latest spec, its counts are stale.
    fresh = st.get("observedGeneration", 0) >= md.get("generation", 0)
    return ReplicaSetObs(
        hash=md["labels"][HASH], name=md["name"], replicas=int(spec.get("replicas", 1)),
        ready=int(st.get("readyReplicas") or 0) if fresh else 0,
        available=min(int(st.get("availableReplicas") or 0), int(spec.get("replicas", 1)))
        if fresh else 0,
        revision=rev,
    )


# Called after each reconcile whose status write succeeded: (rollout as read, new status,
# events of this decision). Listeners must not block: they enqueue work of their own.
DecisionListener = Callable[[JSON, RolloutStatus, list[Event]], None]


def _refs_key(analysis: Any) -> str:
    return json.dumps((analysis or {}).get("templates"), sort_keys=True)


def run_observation(run: JSON) -> AnalysisRunObs:
    st = run.get("status") or {}
    return AnalysisRunObs(name=run["metadata"]["name"], phase=str(st.get("phase") or "Pending"),
                          message=str(st.get("message") or ""),
                          terminated=(run.get("spec") or {}).get("terminate") is True)


class Reconciler:
    def __init__(self, kube: Kube, rollouts: Informer, replicasets: Informer,
                 recorder: EventRecorder, clock: Callable[[], datetime] | None = None,
                 listeners: list[DecisionListener] | None = None,
                 analysis_runs: Informer | None = None) -> None:
        self.listeners = listeners or []
        self.analysis_runs = analysis_runs
        self.kube = kube
        self.rollouts = rollouts
        self.replicasets = replicasets
        self.recorder = recorder
        self.clock = clock or (lambda: datetime.now(UTC))

    async def reconcile(self, key: str) -> float | None:
        obj = self.rollouts.get(key)
        if obj is None:
            return None
        md = obj.get("metadata") or {}
        if md.get("deletionTimestamp"):
            return None  # ReplicaSets go with it through ownerReferences
        ns, name = md["namespace"], md["name"]
        spec, spec_errors = parse_spec(obj.get("spec"))
        status = RolloutStatus.from_dict(obj.get("status"))
        router = IstioRouter(self.kube)  # per reconcile: caches what it reads
        loaded_templates: dict[str, list[JSON]] = {}
        env_errors: list[str] = []
        template: JSON | None = None
        if spec is not None:
            template = await self._template(ns, spec, env_errors)
            env_errors += await self._check_analysis(ns, spec, loaded_templates)
            if template is not None:
                labels = (template.get("metadata") or {}).get("labels") or {}
                missing = {k: v for k, v in spec.selector.items() if labels.get(k) != v}
                if missing:
                    env_errors.append("spec.selector does not match the pod template labels")
                else:
                    env_errors += await router.check(ns, spec, labels)
        owned = owned_replica_sets(
            [r for r in self.replicasets.values() if r["metadata"].get("namespace") == ns],
            md.get("uid", ""))
        runs = {r["metadata"]["name"]: run_observation(r)
                for r in self._owned_runs(ns, md.get("uid", ""))}
        pods: tuple[PodObs, ...] = ()
        if spec is not None and owned and restart_pending(spec, status, self.clock()):
            pods = await self._pods(ns, list(owned))
        obs = Observations(template, {h: rs_observation(r) for h, r in owned.items()},
                           tuple(env_errors), runs, pods)
        ro = RolloutInput(ns, name, int(md.get("generation") or 0), spec, tuple(spec_errors), status)
        decision = decide(ro, obs, self.clock())

        if decision.actions:
            assert spec is not None and template is not None
            log.debug("%s: %s", key, decision.actions)
            previous = await router.current_weight(ns, spec)
            if previous is None:
                previous = status.canary_weight
            for action in decision.actions:
                await self._act(obj, spec, template, owned, action, previous, router,
                                loaded_templates)
                if isinstance(action, SetTraffic):
                    previous = action.canary_weight

        new_status = decision.status.to_dict()
        if new_status != (obj.get("status") or {}):
            body = copy.deepcopy(obj)
            body["status"] = new_status
            try:
                updated = await self.kube.replace(ROLLOUTS.path(ns, name, "status"), body)
            except KubeError as e:
                if e.conflict:
                    return 0.2  # someone wrote since we read: recompute from the new version
                if e.not_found:
                    return None
                raise
            self.rollouts.store[key] = updated  # read-your-writes before the watch catches up
        for ev in decision.events:
            log.info("%s: %s %s: %s", key, ev.type, ev.reason, ev.message)
            await self.recorder.emit(obj, ev.type, ev.reason, ev.message)
        for listener in self.listeners:
            try:
                listener(obj, decision.status, decision.events)
            except Exception:  # observability must never fail a reconcile
                log.exception("decision listener failed for %s", key)
        return decision.requeue_after

    async def _pods(self, ns: str, hashes: list[str]) -> tuple[PodObs, ...]:
        data = await self.kube.get_list(PODS.path(ns), labelSelector=f"{HASH} in ({','.join(hashes)})")
        out = []
        for p in data.get("items") or []:
            md = p.get("metadata") or {}
            created = parse_time(md.get("creationTimestamp"))
            if created is not None:
                out.append(PodObs(md["name"], created, md.get("deletionTimestamp") is not None))
        return tuple(out)

    def _owned_runs(self, ns: str, uid: str) -> list[JSON]:
        if self.analysis_runs is None:
            return []
        return [r for r in self.analysis_runs.values()
                if r["metadata"].get("namespace") == ns
                and any(o.get("uid") == uid for o in r["metadata"].get("ownerReferences") or [])]

    async def _check_analysis(self, ns: str, spec: RolloutSpec,
                              loaded: dict[str, list[JSON]]) -> list[str]:
        """Every referenced template must exist; what was read is kept in ``loaded`` so a run
        created in the same reconcile does not read the templates again."""
        blocks = [(f"spec.strategy.canary.steps[{s.index}].analysis", s.analysis)
                  for s in spec.canary.steps if s.analysis is not None]
        if spec.canary.background_analysis is not None:
            blocks.append(("spec.strategy.canary.analysis", spec.canary.background_analysis))
        errors = []
        for path, block in blocks:
            try:
                loaded[_refs_key(block)] = await load_templates(self.kube, ns, block)
            except AnalysisSpecError as e:
                errors.append(f"{path}: {e}")
        return errors

    async def _template(self, ns: str, spec: RolloutSpec, errors: list[str]) -> JSON | None:
        if spec.template is not None:
            return spec.template
        assert spec.workload_ref is not None
        dep = await self.kube.get_or_none(DEPLOYMENTS.path(ns, spec.workload_ref.name))
        if dep is None:
            errors.append(f"spec.workloadRef: Deployment {spec.workload_ref.name} not found")
            return None
        tmpl = (dep.get("spec") or {}).get("template")
        if not isinstance(tmpl, dict):
            errors.append(f"Deployment {spec.workload_ref.name} has no pod template")
            return None
        return tmpl

    async def _act(self, obj: JSON, spec: RolloutSpec, template: JSON, owned: dict[str, JSON],
                   action: Any, previous_weight: int, router: IstioRouter,
                   loaded_templates: dict[str, list[JSON]]) -> None:
        md = obj["metadata"]
        ns = md["namespace"]
        if isinstance(action, CreateReplicaSet):
            body = build_replica_set(obj, spec, template, action)
            try:
                await self.kube.create(REPLICASETS.path(ns), body)
            except KubeError as e:
                if not e.conflict:
                    raise
                existing = await self.kube.get(REPLICASETS.path(ns, body["metadata"]["name"]))
                if md["uid"] not in [o.get("uid") for o in existing["metadata"].get("ownerReferences") or []]:
                    raise KubeError(409, f"ReplicaSet {body['metadata']['name']} exists and is not "
                                    "owned by this Rollout") from e
        elif isinstance(action, ScaleReplicaSet):
            rs = owned.get(action.hash)
            if rs is not None:
                await self.kube.merge_patch(REPLICASETS.path(ns, rs["metadata"]["name"]),
                                            {"spec": {"replicas": action.replicas}})
        elif isinstance(action, DeleteReplicaSet):
            rs = owned.get(action.hash)
            if rs is not None:
                await self.kube.delete(REPLICASETS.path(ns, rs["metadata"]["name"]))
        elif isinstance(action, CreateAnalysisRun):
            templates = (loaded_templates.get(_refs_key(action.analysis))
                         or await load_templates(self.kube, ns, action.analysis))
            status = obj.get("status") or {}
            run = build_run(obj, templates, action.analysis, action.name, action.kind,
                            action.step_index, str(status.get("stableRS") or ""),
                            str(status.get("currentPodHash") or ""))
            try:
                await self.kube.create(ANALYSIS_RUNS.path(ns), run)
            except KubeError as e:
                if not e.conflict:
                    raise
        elif isinstance(action, DeletePod):
            await self.kube.delete(PODS.path(ns, action.name))
        elif isinstance(action, TerminateAnalysisRun):
            try:
                await self.kube.merge_patch(ANALYSIS_RUNS.path(ns, action.name),
                                            {"spec": {"terminate": True}})
            except KubeError as e:
                if not e.not_found:
                    raise
        elif isinstance(action, SetTraffic):
            await router.apply(ns, spec, action.stable_hash, action.canary_hash,
                                    action.canary_weight, previous_weight)


def build_replica_set(rollout: JSON, spec: RolloutSpec, template: JSON,
                      action: CreateReplicaSet) -> JSON:
    md = rollout["metadata"]
    tmpl = copy.deepcopy(template)
    tmeta = tmpl.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH: action.hash}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{md['name']}-{action.hash}",
            "namespace": md["namespace"],
            "labels": {**(tmeta.get("labels") or {})},
            "annotations": {
                REVISION_ANNOTATION: str(action.revision),
                # The template as the user wrote it (the ReplicaSet's own copy gets the API
                # server's defaults): `rollouts undo` restores exactly this revision's hash.
                TEMPLATE_ANNOTATION: json.dumps(template, sort_keys=True, separators=(",", ":")),
            },
            "ownerReferences": [{
                "apiVersion": API_VERSION, "kind": "Rollout", "name": md["name"],
                "uid": md["uid"], "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": {
            "replicas": action.replicas,
            "minReadySeconds": spec.min_ready_seconds,
            "selector": {"matchLabels": {**spec.selector, HASH: action.hash}},
            "template": tmpl,
        },
    }

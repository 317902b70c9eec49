"""reconcile(key): observe, decide (pure), act in order, then write status once.

Level-based and idempotent: every call recomputes from the cached Rollout, its
ReplicaSets and the routing objects. Status is written with the resourceVersion read, so
a concurrent writer (a user's promote, another controller) makes us retry rather than
overwrite.

When every action succeeds, the decision's status is written. When one fails (the API
server refuses a ReplicaSet, a webhook denies it, a 403, a write conflict that outlasts
its retries), the actions after it are not run (each relies on those before it: traffic
moves only to pods that were created) and the failure is written instead
(``rollouts.controller.failures``), by this rule:

- until the decision's traffic change (``SetTraffic``) has succeeded, the status as read,
  which still describes the traffic on the cluster; only what the decision observed joins
  it (observedGeneration, replica counts, a spec found valid, a revision not completed);
- once it has succeeded, the decision's status: the traffic is as it says, and the actions
  left (scale-downs, deletions, AnalysisRun bookkeeping) are derived again from what the
  retry observes;
- in both cases Progressing=False with reason ReplicaSetCreateError (the new ReplicaSet
  was refused) or ReconciliationError (anything else, including reading the cluster) and
  the API server's message; phase Progressing, or Degraded when aborted or once
  progressDeadlineSeconds passed without progress (then, as in Argo, with reason
  ProgressDeadlineExceeded and the failure in its message); a Warning Event each attempt (repeats
  are aggregated); then ``ActionFailed`` makes the manager retry with backoff, and at the
  latest when the deadline falls due.

So an update of a Healthy rollout whose new ReplicaSet is rejected no longer reads Healthy
for the new generation, and status never claims traffic that was not written. A failure's
condition is cleared by the first reconcile whose actions all succeed. Nothing is kept in
memory: a controller killed at any moment finds the failure (and its deadline clock,
``progressAt``) in status.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, NoReturn

from rollouts.api.constants import (
    API_VERSION,
    DEFAULT_PROGRESS_DEADLINE_S,
    GROUP,
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    ROLLOUT_PLURAL,
    VERSION,
)
from rollouts.api.spec import AntiAffinity, RolloutSpec, parse_spec
from rollouts.api.status import RolloutStatus, parse_time
from rollouts.controller.analysis_builder import (
    AnalysisSpecError,
    build_run,
    load_templates,
)
from rollouts.controller.analysis_reconciler import ANALYSIS_RUNS
from rollouts.controller.bluegreen import with_written_selectors
from rollouts.controller.decide import (
    AnalysisRunObs,
    ClusterAction,
    CreateAnalysisRun,
    CreateExperiment,
    CreateReplicaSet,
    DeletePod,
    DeleteReplicaSet,
    Event,
    Observations,
    PodObs,
    PointService,
    RemoveRouting,
    ReplicaSetObs,
    RolloutInput,
    ScaleReplicaSet,
    SetPodMetadata,
    SetTraffic,
    TerminateAnalysisRun,
    TerminateExperiment,
    decide,
    restart_pending,
)
from rollouts.controller.experiment_reconciler import EXPERIMENTS
from rollouts.controller.experiment_step import (
    TERMINATE_PATCH,
    ExperimentStepError,
    ExperimentStepInput,
    Owner,
    build_experiment,
    owned_experiments,
)
from rollouts.controller.failures import (
    ActionFailed,
    Failure,
    decision_events,
    describe,
    failed_status,
    recovered,
    replica_failure,
)
from rollouts.controller.pod_metadata import canonical, canonical_metadata
from rollouts.kube.cache import Reader, SharedCache, reading_for
from rollouts.kube.client import DEPLOYMENTS, JSON, PODS, REPLICASETS, Kube, KubeError, Resource
from rollouts.kube.events import EventRecorder
from rollouts.kube.informer import Informer
from rollouts.traffic.router import TrafficRouter

log = logging.getLogger(__name__)
ROLLOUTS = Resource(GROUP, VERSION, ROLLOUT_PLURAL)
HASH = POD_TEMPLATE_HASH_LABEL
TEMPLATE_ANNOTATION = f"{GROUP}/pod-template"
# on a ReplicaSet: the ephemeral metadata (canonical JSON) its pods carry for their role
EPHEMERAL_ANNOTATION = f"{GROUP}/ephemeral-metadata"


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
    # Until the ReplicaSet controller has seen a scale, its counts are stale. A change of the
    # pod template alone (ephemeral metadata) bumps the generation too, but leaves the pods
    # and their counts as they are: those still hold while the pod count matches the spec.
    fresh = (st.get("observedGeneration", 0) >= md.get("generation", 0)
             or int(st.get("replicas") or 0) == int(spec.get("replicas", 1)))
    return ReplicaSetObs(
        hash=md["labels"][HASH], name=md["name"], replicas=int(spec.get("replicas", 1)),
        ready=int(st.get("readyReplicas") or 0) if fresh else 0,
        available=min(int(st.get("availableReplicas") or 0), int(spec.get("replicas", 1)))
        if fresh else 0,
        revision=rev,
        current=int(st.get("replicas") or 0) if fresh else 0,
        ephemeral=str((md.get("annotations") or {}).get(EPHEMERAL_ANNOTATION) or ""),
    )


def rs_conditions(owned: dict[str, JSON]) -> dict[str, list[dict[str, Any]]]:
    """Each owned ReplicaSet's status conditions by pod template hash."""
    out: dict[str, list[dict[str, Any]]] = {}
    for h, rs in owned.items():
        conds = (rs.get("status") or {}).get("conditions")
        out[h] = [c for c in conds if isinstance(c, dict)] if isinstance(conds, list) else []
    return out


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


def _settled(ro: RolloutInput, decided: RolloutStatus, obs: Observations, now: datetime) -> bool:
    """Whether a decision on the status just decided would change nothing more: then the
    status write's echo through the watch is no reason to reconcile again (a decision that
    acted is always looked at again: its actions change what the next one observes)."""
    again = decide(replace(ro, status=copy.deepcopy(decided)), obs, now)
    return not again.actions and again.status == decided


Versions = tuple[tuple[str, str], ...]  # (name, resourceVersion) of owned objects


@dataclass(frozen=True)
class _Inputs:
    """The resourceVersions of what a reconcile of one Rollout reads."""

    rollout: str
    replica_sets: Versions
    runs: Versions
    experiments: Versions
    reads: tuple[tuple[str, str, str | None], ...]  # SharedCache.versions

    def unchanged_by_acting(self, after: _Inputs) -> bool:
        """The reconcile's actions wrote nothing (they only made sure of what was there):
        what it owns is as it was, and every object read before acting has the same
        version (acting may have read more)."""
        if (self.replica_sets, self.runs, self.experiments) != \
                (after.replica_sets, after.runs, after.experiments):
            return False
        now = set(after.reads)
        return all(dep in now for dep in self.reads)


class Reconciler:
    def __init__(self, kube: Kube, rollouts: Informer, replicasets: Informer,
                 recorder: EventRecorder, clock: Callable[[], datetime] | None = None,
                 listeners: list[DecisionListener] | None = None,
                 analysis_runs: Informer | None = None,
                 experiments: Informer | None = None,
                 shared: SharedCache | None = None) -> None:
        # reads by name (Services, router objects, templates, Deployments) from informers
        self.shared = shared
        self.reader: Reader = shared if shared is not None else kube
        self.listeners = listeners or []
        self.analysis_runs = analysis_runs
        self.experiments = experiments
        self.kube = kube
        self.rollouts = rollouts
        self.replicasets = replicasets
        self.recorder = recorder
        self.clock = clock or (lambda: datetime.now(UTC))
        # key -> the versions of everything its last reconcile read, when that reconcile
        # found the rollout at rest (no action, no timer, a fixed point of decide)
        self._at_rest: dict[str, _Inputs] = {}
        # keys whose status write needs another look (the write changed what decide sees):
        # the manager queues them again as step work, instead of waiting for the write's
        # echo through the watch, which would arrive as a Rollout change, i.e. new work
        self.follow_up: set[str] = set()

    def at_rest(self, key: str) -> bool:
        """Nothing the rollout's last reconcile read has changed since, and that reconcile
        found it at rest: a reconcile now would decide the same on the same inputs, so the
        periodic resync may pass it by."""
        seen = self._at_rest.get(key)
        return seen is not None and seen == self._inputs(key)

    def _inputs(self, key: str) -> _Inputs | None:
        """The resourceVersions of what a reconcile of ``key`` reads (None: not all of it
        comes from the stores, so a change could go unseen)."""
        obj = self.rollouts.get(key)
        deps = self.shared.versions(key) if self.shared is not None else None
        if obj is None or deps is None:
            return None
        md = obj.get("metadata") or {}
        uid = str(md.get("uid") or "")

        def versions(objs: list[JSON]) -> Versions:
            return tuple(sorted((str(o["metadata"].get("name")),
                                 str(o["metadata"].get("resourceVersion"))) for o in objs))

        return _Inputs(str(md.get("resourceVersion")), versions(self.replicasets.owned_by(uid)),
                       versions(self._owned_runs(str(md.get("namespace")), uid)),
                       versions(self.experiments.owned_by(uid) if self.experiments else []),
                       deps)

    async def reconcile(self, key: str) -> float | None:
        self._at_rest.pop(key, None)
        obj = self.rollouts.get(key)
        if obj is None:
            return None
        md = obj.get("metadata") or {}
        if md.get("deletionTimestamp"):
            return None  # ReplicaSets go with it through ownerReferences
        ns, name = md["namespace"], md["name"]
        if self.shared is not None:
            self.shared.begin(key)  # what this reconcile reads is recorded anew
        reading_for.set(key)
        spec, spec_errors = parse_spec(obj.get("spec"))
        status = RolloutStatus.from_dict(obj.get("status"))
        router = TrafficRouter(self.kube, rollout=name, uid=str(md.get("uid") or ""),
                               shared=self.shared)
        loaded_templates: dict[str, list[JSON]] = {}
        try:
            template, owned, obs = await self._observe(obj, spec, status, router, loaded_templates)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a 403, an unreachable API server: reported, then retried
            await self._failed(obj, spec, status, None,
                               describe(None, e, rollout=name, traffic_done=False), [])
        ro = RolloutInput(ns, name, int(md.get("generation") or 0), spec, tuple(spec_errors), status)
        decision = decide(ro, obs, self.clock())
        # before acting: did the actions change anything? Only a decision with no timer can
        # leave the rollout at rest, so only then is it worth the fingerprint
        observed = self._inputs(key) if decision.requeue_after is None else None

        current: ClusterAction | None = None
        traffic_done = False
        pointed: list[PointService] = []  # Services re-pointed before a failure (blue-green)
        try:
            if decision.actions:
                assert spec is not None and template is not None
                log.debug("%s: %s", key, decision.actions)
                previous = await router.current_weight(ns, spec)
                if previous is None:
                    previous = status.canary_weight
                for action in decision.actions:
                    current = action
                    await self._act(obj, spec, template, owned, action, previous, router,
                                    loaded_templates)
                    if isinstance(action, SetTraffic):
                        previous = action.canary_weight
                        traffic_done = True
                    elif isinstance(action, PointService):
                        pointed.append(action)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # the status as read, but naming what the Services select now
            await self._failed(obj, spec, with_written_selectors(status, spec, pointed),
                               decision.status,
                               describe(current, e, rollout=name, traffic_done=traffic_done),
                               decision.events, owned)

        for note in router.notes:  # someone edited an object we own or manage: put back
            decision.events.append(Event("Warning", "TrafficRoutingRestored", note))
        replica_failure(decision.status, rs_conditions(owned), decision.status.current_pod_hash)
        recovered(status, decision.status, self.clock())
        settled = not decision.actions and _settled(ro, decision.status, obs, self.clock())
        same_status = decision.status.to_dict() == (obj.get("status") or {})
        if not await self._write_status(obj, decision.status, echo_is_news=not settled):
            return 0.2  # someone wrote since we read: recompute from the new version
        await self._emit(obj, decision.status, decision.events)
        if decision.requeue_after is None and (settled or same_status):
            inputs = self._inputs(key)  # after the status write: the store holds its result
            if inputs is not None and observed is not None and observed.unchanged_by_acting(inputs):
                self._at_rest[key] = inputs
        return decision.requeue_after

    async def _observe(self, obj: JSON, spec: RolloutSpec | None, status: RolloutStatus,
                       router: TrafficRouter, loaded_templates: dict[str, list[JSON]],
                       ) -> tuple[JSON | None, dict[str, JSON], Observations]:
        md = obj["metadata"]
        ns = md["namespace"]
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
        owned = owned_replica_sets(self.replicasets.owned_by(md.get("uid", "")), md.get("uid", ""))
        runs = {r["metadata"]["name"]: run_observation(r)
                for r in self._owned_runs(ns, md.get("uid", ""))}
        pods: tuple[PodObs, ...] = ()
        if spec is not None and owned and restart_pending(spec, status, self.clock()):
            pods = await self._pods(ns, list(owned))
        exps = owned_experiments(self.experiments.owned_by(md.get("uid", "")) if self.experiments else [],
                                 md.get("uid", ""))
        obs = Observations(template, {h: rs_observation(r) for h, r in owned.items()},
                           tuple(env_errors), runs, pods, exps)
        return template, owned, obs

    async def _failed(self, obj: JSON, spec: RolloutSpec | None, status: RolloutStatus,
                      decided: RolloutStatus | None, failure: Failure,
                      decided_events: list[Event], owned: dict[str, JSON] | None = None,
                      ) -> NoReturn:
        """Record ``failure`` (the rule is in the module docstring), then raise ActionFailed."""
        md = obj["metadata"]
        key = f"{md['namespace']}/{md['name']}"
        deadline_s = spec.progress_deadline_seconds if spec is not None else DEFAULT_PROGRESS_DEADLINE_S
        new_status, events, due = failed_status(
            read=status, decided=decided, failure=failure,
            generation=int(md.get("generation") or 0), progress_deadline_seconds=deadline_s,
            now=self.clock())
        if owned is not None:
            replica_failure(new_status, rs_conditions(owned), new_status.current_pod_hash)
        log.warning("%s: %s: %s", key, failure.reason, failure.message)
        try:
            if not await self._write_status(obj, new_status):
                due = 0.2  # someone wrote since we read: look again soon
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the API server may be the failure: the retry records it
            log.warning("%s: could not record the failure in status: %s", key, e)
        await self._emit(obj, new_status, [*decision_events(decided_events, failure), *events])
        raise ActionFailed(failure, due)

    async def _write_status(self, obj: JSON, status: RolloutStatus, *,
                            echo_is_news: bool = True) -> bool:
        """Write ``status`` unless unchanged; False on a conflict (someone wrote since we read).
        ``echo_is_news=False``: the written status needs no further reconcile; otherwise the
        key goes into ``follow_up``."""
        new_status = status.to_dict()
        if new_status == (obj.get("status") or {}):
            return True
        md = obj["metadata"]
        body = copy.deepcopy(obj)
        body["status"] = new_status
        try:
            updated = await self.kube.replace(ROLLOUTS.path(md["namespace"], md["name"], "status"), body)
        except KubeError as e:
            if e.conflict:
                return False
            if e.not_found:
                return True  # deleted meanwhile: nothing left to describe
            raise
        self.rollouts.wrote(updated, own=True)  # read-your-writes; the echo is no news
        if echo_is_news:
            self.follow_up.add(f"{md['namespace']}/{md['name']}")
        return True

    async def _emit(self, obj: JSON, status: RolloutStatus, events: list[Event]) -> None:
        md = obj["metadata"]
        key = f"{md['namespace']}/{md['name']}"
        for ev in events:
            log.info("%s: %s %s: %s", key, ev.type, ev.reason, ev.message)
            await self.recorder.emit(obj, ev.type, ev.reason, ev.message)
        for listener in self.listeners:
            try:
                listener(obj, status, events)
            except Exception:  # observability must never fail a reconcile
                log.exception("decision listener failed for %s", key)

    async def _remove_previous_routing(self, obj: JSON, spec: RolloutSpec, router: TrafficRouter,
                                       action: RemoveRouting) -> None:
        md = obj["metadata"]
        raw = copy.deepcopy(obj.get("spec") or {})
        canary = (raw.get("strategy") or {}).get("canary") or {}
        raw["strategy"] = {"canary": {**canary, "trafficRouting": action.previous}}
        previous, errors = parse_spec(raw)
        if previous is None or previous.canary is None:
            # it cannot be read any more: nothing can be taken back safely
            log.warning("%s/%s: the previous trafficRouting cannot be read (%s); what it wrote "
                        "is left as it is", md["namespace"], md["name"], "; ".join(errors))
            return
        await router.remove_previous(md["namespace"], previous,
                                     spec if spec.canary is not None else None)

    async def _create_experiment(self, obj: JSON, spec: RolloutSpec, template: JSON,
                                 owned: dict[str, JSON], action: CreateExperiment) -> None:
        """The experiment step's Experiment, from the step and the two revisions' templates."""
        md = obj["metadata"]
        ns = md["namespace"]
        step = spec.canary_strategy.steps[action.step_index].experiment or {}
        stable_rs = owned.get(action.stable_hash)
        stable_template = template
        if stable_rs is not None:
            recorded = (stable_rs["metadata"].get("annotations") or {}).get(TEMPLATE_ANNOTATION)
            stable_template = (json.loads(recorded) if recorded
                               else stable_rs["spec"].get("template") or template)
        try:
            body = build_experiment(ExperimentStepInput(
                rollout=md["name"], step=step, step_index=action.step_index,
                attempt=action.attempt, canary_hash=action.canary_hash,
                stable_hash=action.stable_hash, canary_template=template,
                stable_template=stable_template, selector=(obj.get("spec") or {}).get("selector") or {},
                rollout_labels=md.get("labels") or {}, owner=Owner(name=md["name"], uid=md["uid"]),
                progress_deadline_seconds=spec.progress_deadline_seconds,
                min_ready_seconds=spec.min_ready_seconds, rollout_obj=obj))
        except ExperimentStepError as e:
            raise KubeError(422, str(e)) from e
        body["metadata"]["namespace"] = ns
        try:
            await self.kube.create(EXPERIMENTS.path(ns), body)
        except KubeError as e:
            if not e.conflict:
                raise
            existing = await self.kube.get(EXPERIMENTS.path(ns, action.name))
            if md["uid"] not in [o.get("uid") for o in existing["metadata"].get("ownerReferences") or []]:
                raise KubeError(409, f"Experiment {action.name} exists and is not owned by this "
                                "Rollout") from e

    async def _set_pod_metadata(self, ns: str, template: JSON, owned: dict[str, JSON],
                                action: SetPodMetadata) -> None:
        """The pod template first (pods created from now on carry it), then the running pods,
        then the record on the ReplicaSet: a failure half-way is retried from the start."""
        rs = owned.get(action.hash)
        if rs is None:
            return  # created in this reconcile: the next one labels it
        name = rs["metadata"]["name"]
        try:
            prev = json.loads((rs["metadata"].get("annotations") or {}).get(EPHEMERAL_ANNOTATION) or "{}")
        except ValueError:
            prev = {}
        # the keys this revision's own template sets are never removed
        recorded = (rs["metadata"].get("annotations") or {}).get(TEMPLATE_ANNOTATION)
        try:
            own = json.loads(recorded) if recorded else template
        except ValueError:
            own = template
        own_labels = ((own.get("metadata") or {}).get("labels") or {})
        own_annotations = ((own.get("metadata") or {}).get("annotations") or {})
        meta: JSON = {"labels": {**{k: None for k in (prev.get("labels") or {})
                                    if k not in action.labels and k not in own_labels},
                                 **action.labels},
                      "annotations": {**{k: None for k in (prev.get("annotations") or {})
                                         if k not in action.annotations and k not in own_annotations},
                                      **action.annotations}}
        meta = {k: v for k, v in meta.items() if v}
        if meta:
            await self.kube.merge_patch(REPLICASETS.path(ns, name),
                                        {"spec": {"template": {"metadata": meta}}})
            selector = dict((rs.get("spec") or {}).get("selector", {}).get("matchLabels") or {})
            selector[HASH] = action.hash  # this revision's pods of this Rollout only
            pods = await self.kube.get_list(PODS.path(ns), labelSelector=",".join(
                f"{k}={v}" for k, v in sorted(selector.items())))
            for pod in pods.get("items") or []:
                try:
                    await self.kube.merge_patch(PODS.path(ns, pod["metadata"]["name"]),
                                                {"metadata": meta})
                except KubeError as e:
                    if not e.not_found:
                        raise
        record = canonical_metadata(action.labels, action.annotations)
        self.replicasets.wrote(await self.kube.merge_patch(REPLICASETS.path(ns, name), {
            "metadata": {"annotations": {EPHEMERAL_ANNOTATION: record or None}}}))

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
        return [r for r in self.analysis_runs.owned_by(uid) if r["metadata"].get("namespace") == ns]

    async def _check_analysis(self, ns: str, spec: RolloutSpec,
                              loaded: dict[str, list[JSON]]) -> list[str]:
        """Every referenced template must exist; what was read is kept in ``loaded`` so a run
        created in the same reconcile does not read the templates again."""
        blocks = analysis_blocks(spec)
        errors = []
        for path, block in blocks:
            try:
                loaded[_refs_key(block)] = await load_templates(self.reader, ns, block)
            except AnalysisSpecError as e:
                errors.append(f"{path}: {e}")
        return errors

    async def _template(self, ns: str, spec: RolloutSpec, errors: list[str]) -> JSON | None:
        if spec.template is not None:
            return spec.template
        assert spec.workload_ref is not None
        dep = await self.reader.get_or_none(DEPLOYMENTS.path(ns, spec.workload_ref.name))
        if dep is None:
            errors.append(f"spec.workloadRef: Deployment {spec.workload_ref.name} not found")
            return None
        tmpl = (dep.get("spec") or {}).get("template")
        if not isinstance(tmpl, dict):
            errors.append(f"Deployment {spec.workload_ref.name} has no pod template")
            return None
        return tmpl

    async def _act(self, obj: JSON, spec: RolloutSpec, template: JSON, owned: dict[str, JSON],
                   action: Any, previous_weight: int, router: TrafficRouter,
                   loaded_templates: dict[str, list[JSON]]) -> None:
        md = obj["metadata"]
        ns = md["namespace"]
        if isinstance(action, CreateReplicaSet):
            body = build_replica_set(obj, spec, template, action)
            try:
                self.replicasets.wrote(await self.kube.create(REPLICASETS.path(ns), body))
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
                self.replicasets.wrote(await self.kube.merge_patch(
                    REPLICASETS.path(ns, rs["metadata"]["name"]), {"spec": {"replicas": action.replicas}}))
        elif isinstance(action, DeleteReplicaSet):
            rs = owned.get(action.hash)
            if rs is not None:
                await self.kube.delete(REPLICASETS.path(ns, rs["metadata"]["name"]))
        elif isinstance(action, CreateAnalysisRun):
            templates = (loaded_templates.get(_refs_key(action.analysis))
                         or await load_templates(self.reader, ns, action.analysis))
            # the hashes of this decision: the status read may predate a new revision
            run = build_run(obj, templates, action.analysis, action.name, action.kind,
                            action.step_index, action.stable_hash, action.canary_hash)
            try:
                created = await self.kube.create(ANALYSIS_RUNS.path(ns), run)
                if self.analysis_runs is not None:
                    # seen by the next decision at once; its echo is still the AnalysisRun
                    # reconciler's cue to start measuring
                    self.analysis_runs.wrote(created, own=False)
            except KubeError as e:
                if not e.conflict:
                    raise
        elif isinstance(action, CreateExperiment):
            await self._create_experiment(obj, spec, template, owned, action)
        elif isinstance(action, TerminateExperiment):
            try:
                await self.kube.merge_patch(EXPERIMENTS.path(ns, action.name), TERMINATE_PATCH)
            except KubeError as e:
                if not e.not_found:
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
        elif isinstance(action, RemoveRouting):
            await self._remove_previous_routing(obj, spec, router, action)
        elif isinstance(action, PointService):
            await router.point(ns, action.service, action.pod_hash)
        elif isinstance(action, SetPodMetadata):
            await self._set_pod_metadata(ns, template, owned, action)
        elif isinstance(action, SetTraffic):
            await router.apply(ns, spec, stable_hash=action.stable_hash,
                               canary_hash=action.canary_hash, canary_weight=action.canary_weight,
                               previous_weight=previous_weight, header_routes=action.header_routes,
                               mirror_routes=action.mirror_routes)


def analysis_blocks(spec: RolloutSpec) -> list[tuple[str, dict[str, Any]]]:
    """Every analysis block of the spec with its path (for errors)."""
    if spec.blue_green is not None:
        bp = "spec.strategy.blueGreen"
        return [(f"{bp}.{k}", v) for k, v in (
            ("prePromotionAnalysis", spec.blue_green.pre_promotion_analysis),
            ("postPromotionAnalysis", spec.blue_green.post_promotion_analysis)) if v is not None]
    c = spec.canary_strategy
    blocks = [(f"spec.strategy.canary.steps[{s.index}].analysis", s.analysis)
              for s in c.steps if s.analysis is not None]
    if isinstance(c.background_analysis, dict):
        blocks.append(("spec.strategy.canary.analysis", c.background_analysis))
    return blocks


def build_replica_set(rollout: JSON, spec: RolloutSpec, template: JSON,
                      action: CreateReplicaSet) -> JSON:
    md = rollout["metadata"]
    tmpl = copy.deepcopy(template)
    tmeta = tmpl.setdefault("metadata", {})
    role = action.metadata
    # the ReplicaSet's own labels leave the role out: roles move, these labels do not
    rs_labels = {**(tmeta.get("labels") or {}), HASH: action.hash}
    tmeta["labels"] = {**(tmeta.get("labels") or {}), **(role.labels if role else {}),
                       HASH: action.hash}
    if role is not None and role.annotations:
        tmeta["annotations"] = {**(tmeta.get("annotations") or {}), **role.annotations}
    if action.anti_affinity is not None and action.avoid_hash:
        add_anti_affinity(tmpl, action.anti_affinity, avoid_hash=action.avoid_hash)
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{md['name']}-{action.hash}",
            "namespace": md["namespace"],
            "labels": rs_labels,
            "annotations": {
                REVISION_ANNOTATION: str(action.revision),
                # The template as the user wrote it (the ReplicaSet's own copy gets the API
                # server's defaults): `rollouts undo` restores exactly this revision's hash.
                TEMPLATE_ANNOTATION: json.dumps(template, sort_keys=True, separators=(",", ":")),
                **({EPHEMERAL_ANNOTATION: canonical(role)} if canonical(role) else {}),
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


def add_anti_affinity(tmpl: JSON, aa: AntiAffinity, *, avoid_hash: str) -> None:
    """Argo's antiAffinity: a pod anti-affinity term (per node) against revision
    ``avoid_hash``'s pods, required or preferred with the user's weight."""
    term = {"labelSelector": {"matchLabels": {HASH: avoid_hash}},
            "topologyKey": "kubernetes.io/hostname"}
    pod_spec = tmpl.setdefault("spec", {})
    anti = pod_spec.setdefault("affinity", {}).setdefault("podAntiAffinity", {})
    if aa.required:
        anti.setdefault("requiredDuringSchedulingIgnoredDuringExecution", []).append(term)
    else:
        anti.setdefault("preferredDuringSchedulingIgnoredDuringExecution", []).append(
            {"weight": aa.weight, "podAffinityTerm": term})

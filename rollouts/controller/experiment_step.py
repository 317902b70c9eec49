"""A canary ``experiment`` step, pure: the Experiment a Rollout creates for it, what the
step's state is from that Experiment's phase, which of the Rollout's other Experiments
to terminate, and the per-template traffic weights (Argo Rollouts' meaning).

- The Experiment is named ``<rollout>-<canary hash>-<attempt>-<step index>`` and owned by
  the Rollout. Its templates take the pod template of the stable (``specRef: stable``) or
  canary (``specRef: canary``) ReplicaSet, with the step's ``metadata`` labels and
  annotations added; the Experiment gives their pods a pod-template-hash of their own and
  labels naming the experiment and template, so the Rollout's Services and subsets (which
  select by hash) never send them the Rollout's traffic.
- The step is done when the Experiment is Successful; Failed or Error aborts the Rollout;
  Inconclusive pauses it (Argo's ``InconclusiveExperiment``); anything else waits.
- ``weight`` on a template sends that share of traffic to the template's Service once the
  Experiment is Running (a Service is created for every template with a weight or a
  ``service``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rollouts.api.constants import API_VERSION, GROUP, POD_TEMPLATE_HASH_LABEL

HASH = POD_TEMPLATE_HASH_LABEL
ROLLOUT_LABEL = f"{GROUP}/rollout"
STEP_LABEL = f"{GROUP}/step"

# the step's state
RUNNING, DONE, FAILED, INCONCLUSIVE = "Running", "Done", "Failed", "Inconclusive"
_FINISHED = {"Successful", "Failed", "Error", "Inconclusive"}
# the pause condition (and status message) of an inconclusive Experiment, Argo's name
INCONCLUSIVE_EXPERIMENT = "InconclusiveExperiment"


class ExperimentStepError(Exception):
    """The step cannot be turned into an Experiment (its message names the field)."""


@dataclass(frozen=True, kw_only=True)
class Owner:
    """The Rollout as the Experiment's controlling owner."""

    name: str
    uid: str
    api_version: str = API_VERSION
    kind: str = "Rollout"


@dataclass(frozen=True, kw_only=True)
class ExperimentStepInput:
    rollout: str
    step: dict[str, Any]  # Step.experiment, as written
    step_index: int
    attempt: int  # distinguishes a retried (or re-deployed) step: Argo uses the revision
    canary_hash: str
    stable_hash: str
    canary_template: dict[str, Any]  # the canary ReplicaSet's pod template
    stable_template: dict[str, Any]  # the stable ReplicaSet's pod template
    selector: dict[str, Any]  # the Rollout's spec.selector
    rollout_labels: dict[str, str]
    owner: Owner
    progress_deadline_seconds: int | None = None
    min_ready_seconds: int = 0
    rollout_obj: dict[str, Any] | None = None  # for args with valueFrom.fieldRef


@dataclass(frozen=True)
class StepProgress:
    state: str  # Running | Done | Failed | Inconclusive
    message: str


@dataclass(frozen=True)
class OwnedExperiment:
    """One of the Rollout's Experiments as observed."""

    name: str
    phase: str = ""
    terminate: bool = False
    message: str = ""
    template_statuses: tuple[dict[str, Any], ...] = ()


# the merge patch that stops an Experiment (its runs terminated, ReplicaSets scaled down)
TERMINATE_PATCH: dict[str, Any] = {"spec": {"terminate": True}}


def owned_experiments(objs: Iterable[dict[str, Any]], rollout_uid: str) -> dict[str, OwnedExperiment]:
    """The Experiments a Rollout controls (ownerReference with its uid), by name."""
    out: dict[str, OwnedExperiment] = {}
    for o in objs:
        md = o.get("metadata") or {}
        if md.get("deletionTimestamp") or not any(
                r.get("uid") == rollout_uid and r.get("controller")
                for r in md.get("ownerReferences") or []):
            continue
        st = o.get("status") or {}
        out[str(md.get("name"))] = OwnedExperiment(
            name=str(md.get("name")), phase=str(st.get("phase") or ""),
            terminate=(o.get("spec") or {}).get("terminate") is True,
            message=str(st.get("message") or ""),
            template_statuses=tuple(t for t in st.get("templateStatuses") or [] if isinstance(t, dict)))
    return out


@dataclass(frozen=True)
class WeightDestination:
    """A share of traffic for an experiment template's pods (its Service / hash)."""

    template: str
    service_name: str
    pod_template_hash: str
    weight: int


def experiment_name(rollout: str, canary_hash: str, attempt: int, step_index: int) -> str:
    return f"{rollout}-{canary_hash}-{attempt}-{step_index}"


def _field(obj: Any, path: str) -> Any:
    cur = obj
    for part in re.findall(r"[^.\[\]']+", path):
        if not isinstance(cur, dict) or part not in cur:
            raise ExperimentStepError(f"fieldRef {path!r} not found on the Rollout")
        cur = cur[part]
    return cur


def _args(raw: Any, inp: ExperimentStepInput, p: str) -> list[dict[str, Any]]:
    """Argo's rollout args: ``value`` as written (``{{templates.*}}`` placeholders are the
    Experiment's), ``podTemplateHashValue: Stable|Latest`` and ``fieldRef`` resolved here,
    ``secretKeyRef`` passed on to the AnalysisRun."""
    out: list[dict[str, Any]] = []
    for j, a in enumerate(raw or []):
        if not isinstance(a, dict) or not isinstance(a.get("name"), str):
            raise ExperimentStepError(f"{p}.args[{j}] needs a name")
        vf = a.get("valueFrom")
        if a.get("value") is not None:
            out.append({"name": a["name"], "value": str(a["value"])})
        elif isinstance(vf, dict) and vf.get("podTemplateHashValue") in ("Stable", "Latest"):
            h = inp.stable_hash if vf["podTemplateHashValue"] == "Stable" else inp.canary_hash
            out.append({"name": a["name"], "value": h})
        elif isinstance(vf, dict) and isinstance(vf.get("fieldRef"), dict):
            if inp.rollout_obj is None:
                raise ExperimentStepError(f"{p}.args[{j}]: fieldRef needs the Rollout")
            value = _field(inp.rollout_obj, str(vf["fieldRef"].get("fieldPath")))
            out.append({"name": a["name"], "value": str(value)})
        elif isinstance(vf, dict) and isinstance(vf.get("secretKeyRef"), dict):
            out.append({"name": a["name"], "valueFrom": {"secretKeyRef": dict(vf["secretKeyRef"])}})
        else:
            raise ExperimentStepError(f"{p}.args[{j}] ({a['name']}) needs value or valueFrom")
    return out


def build_experiment(inp: ExperimentStepInput) -> dict[str, Any]:
    """The Experiment to create for the step (no namespace: the caller's)."""
    step = inp.step
    p = f"spec.strategy.canary.steps[{inp.step_index}].experiment"
    base_selector = copy.deepcopy(inp.selector) if isinstance(inp.selector, dict) else {}
    base_selector.setdefault("matchLabels", {})
    templates: list[dict[str, Any]] = []
    for j, t in enumerate(step.get("templates") or []):
        tp = f"{p}.templates[{j}]"
        ref = t.get("specRef")
        if ref not in ("stable", "canary"):
            raise ExperimentStepError(f"{tp}.specRef must be stable or canary, got {ref!r}")
        pod = copy.deepcopy(inp.canary_template if ref == "canary" else inp.stable_template)
        meta = pod.setdefault("metadata", {})
        labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH}
        selector = copy.deepcopy(t["selector"]) if isinstance(t.get("selector"), dict) \
            else copy.deepcopy(base_selector)
        selector["matchLabels"] = {k: v for k, v in (selector.get("matchLabels") or {}).items()
                                   if k != HASH}
        extra = t.get("metadata") or {}
        for k, v in (extra.get("labels") or {}).items():
            labels[k] = v
            selector["matchLabels"][k] = v
        meta["labels"] = labels
        if extra.get("annotations"):
            meta["annotations"] = {**(meta.get("annotations") or {}), **extra["annotations"]}
        tmpl: dict[str, Any] = {"name": t["name"], "replicas": int(t.get("replicas", 1)),
                                "minReadySeconds": inp.min_ready_seconds,
                                "selector": selector, "template": pod}
        if t.get("weight") is not None or t.get("service") is not None:
            svc = t.get("service") or {}
            tmpl["service"] = {"name": svc["name"]} if isinstance(svc, dict) and svc.get("name") else {}
        templates.append(tmpl)
    analyses: list[dict[str, Any]] = []
    for j, a in enumerate(step.get("analyses") or []):
        ap = f"{p}.analyses[{j}]"
        ref_out: dict[str, Any] = {"name": a["name"], "templateName": a["templateName"]}
        if a.get("clusterScope") is True:
            ref_out["clusterScope"] = True
        if a.get("requiredForCompletion") is True:
            ref_out["requiredForCompletion"] = True
        args = _args(a.get("args"), inp, ap)
        if args:
            ref_out["args"] = args
        analyses.append(ref_out)
    spec: dict[str, Any] = {"templates": templates}
    if step.get("duration") is not None:
        spec["duration"] = step["duration"]
    if inp.progress_deadline_seconds is not None:
        spec["progressDeadlineSeconds"] = inp.progress_deadline_seconds
    for key in ("scaleDownDelaySeconds", "dryRun", "analysisRunMetadata"):
        if step.get(key) is not None:
            spec[key] = copy.deepcopy(step[key])
    if analyses:
        spec["analyses"] = analyses
    o = inp.owner
    return {
        "apiVersion": API_VERSION, "kind": "Experiment",
        "metadata": {
            "name": experiment_name(inp.rollout, inp.canary_hash, inp.attempt, inp.step_index),
            "labels": {**inp.rollout_labels, HASH: inp.canary_hash, ROLLOUT_LABEL: inp.rollout,
                       STEP_LABEL: str(inp.step_index)},
            "ownerReferences": [{"apiVersion": o.api_version, "kind": o.kind, "name": o.name,
                                 "uid": o.uid, "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": spec,
    }


def step_progress(name: str, phase: str | None, message: str = "") -> StepProgress:
    """The step's state from its Experiment's phase (None: not created or not seen yet)."""
    if phase is None:
        return StepProgress(RUNNING, f"waiting for Experiment {name}")
    if phase == "Successful":
        return StepProgress(DONE, f"Experiment {name} succeeded")
    if phase in ("Failed", "Error"):
        msg = "Experiment analysis phase is error/failed"
        return StepProgress(FAILED, f"{msg}: {message}" if message else msg)
    if phase == "Inconclusive":
        return StepProgress(INCONCLUSIVE, f"Experiment {name} is inconclusive"
                            + (f": {message}" if message else ""))
    return StepProgress(RUNNING, f"Experiment {name} is {phase or 'Pending'}")


def experiments_to_terminate(current: str | None, owned: list[OwnedExperiment]) -> list[str]:
    """The Rollout's Experiments to stop: all but ``current`` (None when the rollout is not
    on an experiment step, is aborted or fully promoted) that are still going."""
    return [e.name for e in owned
            if e.name != current and not e.terminate and e.phase not in _FINISHED]


def template_weights(step: dict[str, Any]) -> dict[str, int]:
    return {str(t["name"]): int(t["weight"]) for t in step.get("templates") or []
            if isinstance(t, dict) and t.get("weight") is not None}


def weight_destinations(step: dict[str, Any], phase: str | None,
                        template_statuses: list[dict[str, Any]]) -> list[WeightDestination]:
    """Traffic for the experiment's templates: only while the Experiment is Running (its
    pods available), each weighted template's share to its Service and hash. The stable
    side gives up the sum (100 - canary weight - these)."""
    if phase != "Running":
        return []
    weights = template_weights(step)
    out = []
    for ts in template_statuses:
        name = ts.get("name")
        if name in weights and ts.get("serviceName") and ts.get("podTemplateHash"):
            out.append(WeightDestination(str(name), str(ts["serviceName"]),
                                         str(ts["podTemplateHash"]), weights[name]))
    return out


@dataclass(frozen=True)
class StepPlan:
    """Everything the canary step loop needs for an experiment step, in one place."""

    name: str  # the step's Experiment
    create: dict[str, Any] | None  # to create (none of that name observed yet), else None
    terminate: list[str]  # the Rollout's other Experiments still going
    progress: StepProgress
    weights: list[WeightDestination]


def plan_experiment_step(inp: ExperimentStepInput,
                         owned: dict[str, OwnedExperiment]) -> StepPlan:
    """The step's plan from the Rollout's observed Experiments (``owned_experiments``).
    ExperimentStepError when the step cannot be turned into an Experiment."""
    name = experiment_name(inp.rollout, inp.canary_hash, inp.attempt, inp.step_index)
    current = owned.get(name)
    return StepPlan(
        name=name,
        create=build_experiment(inp) if current is None else None,
        terminate=experiments_to_terminate(name, list(owned.values())),
        progress=step_progress(name, current.phase if current else None,
                               current.message if current else ""),
        weights=weight_destinations(inp.step, current.phase if current else None,
                                    list(current.template_statuses) if current else []))

"""The Experiment resource, typed: its spec (parsed and checked, each error naming its
field) and its status, with Argo Rollouts' field names, phases and labels."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from rollouts.api.constants import DEFAULT_PROGRESS_DEADLINE_S, DEFAULT_SCALE_DOWN_DELAY_S, GROUP
from rollouts.api.duration import parse_duration

PENDING, RUNNING, SUCCESSFUL, FAILED, ERROR, INCONCLUSIVE = (
    "Pending", "Running", "Successful", "Failed", "Error", "Inconclusive")
COMPLETED = {SUCCESSFUL, FAILED, ERROR, INCONCLUSIVE}
# template statuses (Argo's TemplateStatusCode)
T_PROGRESSING, T_RUNNING = "Progressing", "Running"
T_COMPLETED = {SUCCESSFUL, FAILED, ERROR}

# on an experiment's ReplicaSets, pods, Services and AnalysisRuns
EXPERIMENT_LABEL = f"{GROUP}/experiment"
TEMPLATE_LABEL = f"{GROUP}/experiment-template"
# on a template's ReplicaSet once the experiment ended: when it may be scaled to 0
SCALE_DOWN_ANNOTATION = f"{GROUP}/scale-down-deadline"


# --- spec ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    replicas: int
    selector: dict[str, Any]
    template: dict[str, Any]
    min_ready_seconds: int = 0
    service: dict[str, Any] | None = None  # {} or {"name": ...}: create a Service


@dataclass(frozen=True)
class AnalysisRef:
    name: str
    template_name: str
    cluster_scope: bool = False
    args: tuple[dict[str, Any], ...] = ()
    required_for_completion: bool = False


@dataclass(frozen=True)
class ExperimentSpec:
    templates: tuple[TemplateSpec, ...]
    duration_s: float | None = None
    progress_deadline_s: int = DEFAULT_PROGRESS_DEADLINE_S
    terminate: bool = False
    scale_down_delay_s: int = DEFAULT_SCALE_DOWN_DELAY_S
    analyses: tuple[AnalysisRef, ...] = ()
    dry_run: tuple[dict[str, Any], ...] = ()
    measurement_retention: tuple[dict[str, Any], ...] = ()
    # analysisRunMetadata: labels and annotations put on the AnalysisRuns
    run_labels: dict[str, str] = field(default_factory=dict)
    run_annotations: dict[str, str] = field(default_factory=dict)

    @property
    def has_required(self) -> bool:
        return any(a.required_for_completion for a in self.analyses)


def _nonneg_int(d: dict[str, Any], key: str, default: int, p: str, errors: list[str]) -> int:
    v = d.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        errors.append(f"{p}.{key} must be a non-negative integer, got {v!r}")
        return default
    return v


def _selects(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    ml = selector.get("matchLabels") or {}
    return isinstance(ml, dict) and all(labels.get(k) == v for k, v in ml.items())


def parse_experiment_spec(raw: Any) -> tuple[ExperimentSpec | None, list[str]]:
    """The spec, or None and every reason it cannot run (each naming its field)."""
    errors: list[str] = []
    d = raw if isinstance(raw, dict) else {}
    if not isinstance(raw, dict):
        errors.append("spec must be an object")
    deadline = _nonneg_int(d, "progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE_S, "spec", errors)
    templates: list[TemplateSpec] = []
    raw_templates = d.get("templates")
    if not isinstance(raw_templates, list) or not raw_templates:
        errors.append("spec.templates must list at least one template")
        raw_templates = []
    names: set[str] = set()
    for i, t in enumerate(raw_templates):
        p = f"spec.templates[{i}]"
        if not isinstance(t, dict):
            errors.append(f"{p} must be an object")
            continue
        name = t.get("name")
        if not isinstance(name, str) or not name:
            errors.append(f"{p}.name is required")
            continue
        if name in names:
            errors.append(f"{p}.name {name!r} is used twice")
            continue
        names.add(name)
        sel, tmpl = t.get("selector"), t.get("template")
        if not isinstance(sel, dict) or not (sel.get("matchLabels") or sel.get("matchExpressions")):
            errors.append(f"{p}.selector is required and must not select everything")
            continue
        if not isinstance(tmpl, dict) or not isinstance(tmpl.get("spec"), dict):
            errors.append(f"{p}.template must be a pod template with a spec")
            continue
        labels = (tmpl.get("metadata") or {}).get("labels") or {}
        if not _selects(sel, labels):
            errors.append(f"{p}.selector.matchLabels must match {p}.template.metadata.labels")
            continue
        min_ready = _nonneg_int(t, "minReadySeconds", 0, p, errors)
        if min_ready > deadline:
            errors.append(f"{p}.minReadySeconds ({min_ready}) must not exceed "
                          f"spec.progressDeadlineSeconds ({deadline})")
        svc = t.get("service")
        if svc is not None and not isinstance(svc, dict):
            errors.append(f"{p}.service must be an object")
            svc = None
        templates.append(TemplateSpec(
            name=name, replicas=_nonneg_int(t, "replicas", 1, p, errors), selector=sel,
            template=tmpl, min_ready_seconds=min_ready, service=svc))
    duration: float | None = None
    if d.get("duration") not in (None, ""):
        try:
            duration = parse_duration(d["duration"])
        except ValueError as e:
            errors.append(f"spec.duration: {e}")
    analyses: list[AnalysisRef] = []
    raw_analyses = d.get("analyses") or []
    if not isinstance(raw_analyses, list):
        errors.append("spec.analyses must be a list")
        raw_analyses = []
    anames: set[str] = set()
    for i, a in enumerate(raw_analyses):
        p = f"spec.analyses[{i}]"
        if not isinstance(a, dict) or not isinstance(a.get("name"), str) or not a["name"] \
                or not isinstance(a.get("templateName"), str) or not a["templateName"]:
            errors.append(f"{p} needs name and templateName")
            continue
        if a["name"] in anames:
            errors.append(f"{p}.name {a['name']!r} is used twice")
            continue
        anames.add(a["name"])
        args = a.get("args") or []
        if not isinstance(args, list) or not all(
                isinstance(x, dict) and isinstance(x.get("name"), str) for x in args):
            errors.append(f"{p}.args must be a list of {{name, value}}")
            args = []
        analyses.append(AnalysisRef(
            name=a["name"], template_name=a["templateName"], cluster_scope=a.get("clusterScope") is True,
            args=tuple(args), required_for_completion=a.get("requiredForCompletion") is True))
    meta = d.get("analysisRunMetadata") or {}
    run_meta: dict[str, dict[str, str]] = {}
    for key in ("labels", "annotations"):
        m = meta.get(key) if isinstance(meta, dict) else None
        if m is not None and not (isinstance(m, dict) and all(isinstance(v, str) for v in m.values())):
            errors.append(f"spec.analysisRunMetadata.{key} must map names to strings")
            m = None
        run_meta[key] = dict(m or {})
    terminate = d.get("terminate")
    if terminate is not None and not isinstance(terminate, bool):
        errors.append(f"spec.terminate must be true or false, got {terminate!r}")
    spec = ExperimentSpec(
        templates=tuple(templates), duration_s=duration, progress_deadline_s=deadline,
        terminate=terminate is True,
        scale_down_delay_s=_nonneg_int(d, "scaleDownDelaySeconds", DEFAULT_SCALE_DOWN_DELAY_S,
                                       "spec", errors),
        analyses=tuple(analyses),
        dry_run=tuple(x for x in d.get("dryRun") or [] if isinstance(x, dict)),
        measurement_retention=tuple(x for x in d.get("measurementRetention") or []
                                    if isinstance(x, dict)),
        run_labels=run_meta["labels"], run_annotations=run_meta["annotations"])
    return (None, errors) if errors else (spec, [])


# --- status --------------------------------------------------------------------------


@dataclass
class TemplateStatus:
    name: str
    replicas: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    collision_count: int | None = None
    status: str = ""
    message: str = ""
    last_transition_time: str | None = None
    pod_template_hash: str = ""
    service_name: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TemplateStatus:
        def n(k: str) -> int:
            v = d.get(k)
            return v if isinstance(v, int) and not isinstance(v, bool) else 0
        cc = d.get("collisionCount")
        return cls(name=str(d.get("name") or ""), replicas=n("replicas"),
                   updated_replicas=n("updatedReplicas"), ready_replicas=n("readyReplicas"),
                   available_replicas=n("availableReplicas"),
                   collision_count=cc if isinstance(cc, int) else None,
                   status=str(d.get("status") or ""), message=str(d.get("message") or ""),
                   last_transition_time=d.get("lastTransitionTime") or None,
                   pod_template_hash=str(d.get("podTemplateHash") or ""),
                   service_name=str(d.get("serviceName") or ""))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "replicas": self.replicas, "updatedReplicas": self.updated_replicas,
            "readyReplicas": self.ready_replicas, "availableReplicas": self.available_replicas}
        for k, v in (("collisionCount", self.collision_count), ("status", self.status),
                     ("message", self.message), ("lastTransitionTime", self.last_transition_time),
                     ("podTemplateHash", self.pod_template_hash), ("serviceName", self.service_name)):
            if v not in (None, ""):
                out[k] = v
        return out


@dataclass
class RunStatus:
    name: str
    analysis_run: str = ""
    phase: str = ""
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "analysisRun": self.analysis_run,
                               "phase": self.phase}
        if self.message:
            out["message"] = self.message
        return out


@dataclass
class ExperimentStatus:
    phase: str = ""
    message: str = ""
    available_at: str | None = None
    templates: list[TemplateStatus] = field(default_factory=list)
    runs: list[RunStatus] = field(default_factory=list)
    conditions: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Any) -> ExperimentStatus:
        d = d if isinstance(d, dict) else {}
        return cls(
            phase=str(d.get("phase") or ""), message=str(d.get("message") or ""),
            available_at=d.get("availableAt") or None,
            templates=[TemplateStatus.from_dict(t) for t in d.get("templateStatuses") or []
                       if isinstance(t, dict)],
            runs=[RunStatus(name=str(r.get("name") or ""), analysis_run=str(r.get("analysisRun") or ""),
                            phase=str(r.get("phase") or ""), message=str(r.get("message") or ""))
                  for r in d.get("analysisRuns") or [] if isinstance(r, dict)],
            conditions=[copy.deepcopy(c) for c in d.get("conditions") or [] if isinstance(c, dict)])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.phase:
            out["phase"] = self.phase
        if self.message:
            out["message"] = self.message
        if self.available_at:
            out["availableAt"] = self.available_at
        if self.templates:
            out["templateStatuses"] = [t.to_dict() for t in self.templates]
        if self.runs:
            out["analysisRuns"] = [r.to_dict() for r in self.runs]
        if self.conditions:
            out["conditions"] = self.conditions
        return out

    def template(self, name: str) -> TemplateStatus | None:
        return next((t for t in self.templates if t.name == name), None)

    def run(self, name: str) -> RunStatus | None:
        return next((r for r in self.runs if r.name == name), None)

    def set_template(self, ts: TemplateStatus) -> None:
        self.templates = [t for t in self.templates if t.name != ts.name] + [ts] \
            if self.template(ts.name) is None else [ts if t.name == ts.name else t for t in self.templates]

    def set_run(self, rs: RunStatus) -> None:
        self.runs = [r for r in self.runs if r.name != rs.name] + [rs] \
            if self.run(rs.name) is None else [rs if r.name == rs.name else r for r in self.runs]

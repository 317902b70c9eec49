"""Experiments, pure: one Experiment's spec, status and what it owns on the cluster ->
its new status and the actions that bring the cluster there (Argo Rollouts' meaning).

Lifecycle: each template runs as a ReplicaSet; once all are available the experiment is
Running (``availableAt``) and its analyses start; it is Successful once ``duration`` has
passed (or, without a duration, once every ``requiredForCompletion`` analysis succeeded;
with neither it runs until ``terminate``). A Failed, Error or Inconclusive analysis ends
it early with that phase (the worst wins); a template not available within
``progressDeadlineSeconds`` fails it. Once it ends (or is terminated), runs still going
are terminated and the ReplicaSets are scaled to 0 after ``scaleDownDelaySeconds``.

Everything the decision needs is in the Experiment's status and the owned objects'
state (the scale-down deadline is an annotation on the ReplicaSet, as in Argo), so a
restarted controller continues where it stopped.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rollouts.api.experiment import (
    COMPLETED,
    ERROR,
    FAILED,
    INCONCLUSIVE,
    PENDING,
    RUNNING,
    SUCCESSFUL,
    T_COMPLETED,
    T_PROGRESSING,
    T_RUNNING,
    AnalysisRef,
    ExperimentSpec,
    ExperimentStatus,
    RunStatus,
    TemplateSpec,
    TemplateStatus,
)
from rollouts.api.status import fmt_time, parse_time

# best to worst, as Argo orders them; an unknown phase counts as the best
_TEMPLATE_ORDER = [SUCCESSFUL, T_RUNNING, T_PROGRESSING, ERROR, FAILED]
_ANALYSIS_ORDER = [SUCCESSFUL, RUNNING, PENDING, INCONCLUSIVE, ERROR, FAILED]
REQUIRED_DONE_MESSAGE = "Required AnalysisRuns completed"
RECONCILE_ERROR = "ReconciliationError"  # condition: the cluster could not be read


# --- observations --------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateReplicaSet:
    """The ReplicaSet running one template (found by owner and template label)."""

    name: str
    hash: str
    spec_replicas: int
    replicas: int = 0  # status.replicas: pods that exist
    ready: int = 0
    available: int = 0
    scale_down_at: datetime | None = None


@dataclass(frozen=True)
class RunObs:
    name: str
    phase: str
    message: str = ""
    terminated: bool = False


@dataclass(frozen=True)
class ExperimentObs:
    replica_sets: dict[str, TemplateReplicaSet] = field(default_factory=dict)  # by template
    services: dict[str, str] = field(default_factory=dict)  # template -> Service name
    runs: dict[str, RunObs] = field(default_factory=dict)  # by AnalysisRun name
    # analysis name -> why its (Cluster)AnalysisTemplate cannot be used (e.g. not found)
    analysis_errors: dict[str, str] = field(default_factory=dict)
    # template -> the containers' ports (for the template's Service)
    ports: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class ExperimentInput:
    name: str
    spec: ExperimentSpec | None
    spec_errors: tuple[str, ...]
    status: ExperimentStatus


# --- actions -------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateTemplateReplicaSet:
    template: str
    name: str
    hash: str
    replicas: int


@dataclass(frozen=True)
class ScaleTemplateReplicaSet:
    template: str
    name: str
    replicas: int


@dataclass(frozen=True)
class MarkScaleDown:
    """Annotate the ReplicaSet with the time it may be scaled to 0."""

    template: str
    name: str
    at: str


@dataclass(frozen=True)
class CreateTemplateService:
    template: str
    name: str
    replica_set: str  # the Service selects this ReplicaSet's pods (its labels)


@dataclass(frozen=True)
class DeleteTemplateService:
    template: str
    name: str


@dataclass(frozen=True)
class CreateExperimentRun:
    analysis: str
    name: str
    args: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class TerminateExperimentRun:
    analysis: str
    name: str


ExperimentAction = (CreateTemplateReplicaSet | ScaleTemplateReplicaSet | MarkScaleDown
                    | CreateTemplateService | DeleteTemplateService | CreateExperimentRun
                    | TerminateExperimentRun)


@dataclass(frozen=True)
class ExperimentEvent:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class ExperimentDecision:
    status: ExperimentStatus
    actions: list[ExperimentAction] = field(default_factory=list)
    events: list[ExperimentEvent] = field(default_factory=list)
    requeue_after: float | None = None

    def wake_in(self, seconds: float) -> None:
        s = max(0.5, seconds)
        self.requeue_after = s if self.requeue_after is None else min(self.requeue_after, s)


# --- helpers -------------------------------------------------------------------------


def template_hash(experiment: str, t: TemplateSpec, collision_count: int | None = None) -> str:
    """The template's pod-template-hash: differs from the Rollout's for the same pod spec
    (the experiment and template names are part of it), so the Rollout's Services and
    subsets, which select by hash, never select experiment pods."""
    body = {"experiment": experiment, "template": t.name, "pod": t.template,
            "collisionCount": collision_count}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                     default=str).encode()).hexdigest()[:10]


def replica_set_name(experiment: str, template: str, h: str) -> str:
    return f"{experiment}-{template}-{h}"


def _worse(order: list[str], current: str, new: str) -> bool:
    ci = order.index(current) if current in order else 0
    ni = order.index(new) if new in order else 0
    return ni > ci


def required_successful(spec: ExperimentSpec, status: ExperimentStatus) -> bool:
    """At least one analysis is requiredForCompletion and all such have succeeded."""
    req = [a for a in spec.analyses if a.required_for_completion]
    return bool(req) and all((r := status.run(a.name)) is not None and r.phase == SUCCESSFUL
                             for a in req)


def is_terminating(spec: ExperimentSpec, status: ExperimentStatus) -> bool:
    """Argo's IsTerminating: asked to, finished, a template or analysis gone bad, or every
    required analysis done; then nothing new starts and the ReplicaSets scale down."""
    if spec.terminate or status.phase in COMPLETED:
        return True
    if any(t.status in (FAILED, ERROR) for t in status.templates):
        return True
    if any(r.phase in (FAILED, ERROR, INCONCLUSIVE) for r in status.runs):
        return True
    return required_successful(spec, status)


def _passed_duration(spec: ExperimentSpec, status: ExperimentStatus, now: datetime) -> tuple[bool, float]:
    at = parse_time(status.available_at)
    if spec.duration_s is None or at is None:
        return False, 0.0
    ends = at + timedelta(seconds=spec.duration_s)
    return now > ends, (ends - now).total_seconds()


_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


def resolve_arg_value(value: str, name: str, status: ExperimentStatus, spec: ExperimentSpec,
                      replica_sets: dict[str, TemplateReplicaSet]) -> str:
    """Argo's experiment placeholders in an analysis arg: ``templates.<t>.podTemplateHash``,
    ``templates.<t>.replicaset.name``, ``experiment.availableAt``, ``experiment.finishedAt``
    (availableAt + duration). ``{{args.*}}`` is left for the AnalysisRun. ValueError names
    a placeholder that has no value."""
    known: dict[str, str] = {}
    at = parse_time(status.available_at)
    if at is not None:
        known["experiment.availableAt"] = fmt_time(at)
        if spec.duration_s is not None:
            known["experiment.finishedAt"] = fmt_time(at + timedelta(seconds=spec.duration_s))
    for t in spec.templates:
        rs = replica_sets.get(t.name)
        if rs is not None:
            known[f"templates.{t.name}.podTemplateHash"] = rs.hash
            known[f"templates.{t.name}.replicaset.name"] = rs.name

    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key.startswith("args."):
            return m.group(0)
        if key not in known:
            raise ValueError(f"arg {name}: {{{{{key}}}}} has no value")
        return known[key]

    return _PLACEHOLDER.sub(sub, value)


def set_condition(status: ExperimentStatus, ctype: str, cstatus: str, reason: str, message: str,
                   now: datetime) -> None:
    ts = fmt_time(now)
    old = next((c for c in status.conditions if c.get("type") == ctype), None)
    if old is not None and old.get("status") == cstatus and old.get("reason") == reason \
            and old.get("message") == message:
        return
    cond = {"type": ctype, "status": cstatus, "reason": reason, "message": message,
            "lastUpdateTime": ts,
            "lastTransitionTime": old.get("lastTransitionTime", ts)
            if old is not None and old.get("status") == cstatus else ts}
    status.conditions = [c for c in status.conditions if c.get("type") != ctype] + [cond]


# --- the decision --------------------------------------------------------------------


def decide_experiment(ex: ExperimentInput, obs: ExperimentObs, now: datetime) -> ExperimentDecision:
    prev = ex.status
    status = copy.deepcopy(prev)
    d = ExperimentDecision(status)
    if ex.spec is None:
        # Argo: an InvalidSpec condition, nothing created or changed until the spec is fixed
        msg = "; ".join(ex.spec_errors) or "invalid spec"
        set_condition(status, "InvalidSpec", "True", "InvalidSpec", msg, now)
        status.message = f"InvalidSpec: {msg}"
        if status.phase == "":
            status.phase = PENDING
        return d
    spec = ex.spec
    # this reconcile observed everything: an earlier read failure is over
    status.conditions = [c for c in status.conditions if c.get("type") != RECONCILE_ERROR]
    if any(c.get("type") == "InvalidSpec" for c in status.conditions):
        status.conditions = [c for c in status.conditions if c.get("type") != "InvalidSpec"]
        if status.message.startswith("InvalidSpec: "):
            status.message = ""
    terminating = is_terminating(spec, prev)
    for t in spec.templates:
        _template(ex.name, spec, prev, t, obs, terminating, now, d)
    for a in spec.analyses:
        _analysis(ex.name, spec, prev, a, obs, terminating, d)
    calculate_phase(ex.name, spec, prev, status, now, d)
    _requeue(spec, status, obs, now, d)
    return d


def _desired_replicas(spec: ExperimentSpec, prev: ExperimentStatus, t: TemplateSpec,
                      terminating: bool) -> int:
    ts = prev.template(t.name)
    if terminating or (ts is not None and ts.status in T_COMPLETED):
        return 0
    return t.replicas


def _template(exname: str, spec: ExperimentSpec, prev: ExperimentStatus, t: TemplateSpec,
              obs: ExperimentObs, terminating: bool, now: datetime, d: ExperimentDecision) -> None:
    old = prev.template(t.name)
    ts = copy.deepcopy(old) if old is not None else TemplateStatus(name=t.name)
    desired = _desired_replicas(spec, prev, t, terminating)
    rs = obs.replica_sets.get(t.name)
    stamp = fmt_time(now)
    if rs is None:
        if desired > 0:
            h = template_hash(exname, t, ts.collision_count)
            name = replica_set_name(exname, t.name, h)
            d.actions.append(CreateTemplateReplicaSet(t.name, name, h, desired))
            ts.pod_template_hash = h
            ts.last_transition_time = stamp
    else:
        ts.pod_template_hash = rs.hash
        svc = obs.services.get(t.name)
        if t.service is not None and desired != 0:
            if svc is None and obs.ports.get(t.name):
                name = str(t.service.get("name") or rs.name)[:63].rstrip("-.")
                d.actions.append(CreateTemplateService(t.name, name, rs.name))
                ts.service_name = name
            elif svc is not None:
                ts.service_name = svc
        elif svc is not None and (t.service is None or rs.available == 0):
            # with the template's pods gone (or no Service asked for), the Service goes too
            d.actions.append(DeleteTemplateService(t.name, svc))
            ts.service_name = ""
        if desired == 0 and rs.spec_replicas != 0:
            deadline = rs.scale_down_at
            if spec.scale_down_delay_s > 0 and deadline is None:
                deadline = now + timedelta(seconds=spec.scale_down_delay_s)
                d.actions.append(MarkScaleDown(t.name, rs.name, fmt_time(deadline)))
            if deadline is not None and deadline > now and spec.scale_down_delay_s > 0:
                d.wake_in((deadline - now).total_seconds())
            else:
                d.actions.append(ScaleTemplateReplicaSet(t.name, rs.name, 0))
            # as in Argo, a scale-down (delayed or not) is progress: the deadline restarts
            ts.last_transition_time = stamp
        elif desired != 0 and rs.spec_replicas != desired:
            d.actions.append(ScaleTemplateReplicaSet(t.name, rs.name, desired))
            ts.last_transition_time = stamp
    counts = (rs.replicas, rs.replicas, rs.ready, rs.available) if rs is not None else (0, 0, 0, 0)
    if counts != (ts.replicas, ts.updated_replicas, ts.ready_replicas, ts.available_replicas):
        ts.replicas, ts.updated_replicas, ts.ready_replicas, ts.available_replicas = counts
        ts.last_transition_time = stamp
    if ts.status not in T_COMPLETED:  # a template never leaves a completed status
        if desired == ts.available_replicas:
            passed, _ = _passed_duration(spec, prev, now)
            ts.status = SUCCESSFUL if passed or terminating else T_RUNNING
        else:
            since = parse_time(ts.last_transition_time) or now
            if now > since + timedelta(seconds=spec.progress_deadline_s):
                ts.status = FAILED
                ts.message = (f"Template '{t.name}' exceeded its progressDeadlineSeconds "
                              f"({spec.progress_deadline_s})")
            elif terminating:
                ts.status = SUCCESSFUL
            else:
                ts.status = T_PROGRESSING
    before = old.status if old is not None else ""
    if ts.status != before:
        msg = f"Template '{t.name}' transitioned from {before or 'none'} -> {ts.status}"
        if ts.message:
            msg += f": {ts.message}"
        d.events.append(ExperimentEvent("Warning" if ts.status in (FAILED, ERROR) else "Normal",
                                        f"Template{ts.status}", msg))
    d.status.set_template(ts)


def run_name(experiment: str, analysis: str) -> str:
    return f"{experiment}-{analysis}"


def _analysis(exname: str, spec: ExperimentSpec, prev: ExperimentStatus, a: AnalysisRef,
              obs: ExperimentObs, terminating: bool, d: ExperimentDecision) -> None:
    old = prev.run(a.name)
    rs = copy.deepcopy(old) if old is not None else RunStatus(name=a.name)
    try:
        if prev.available_at is None:
            # analyses start once every template is available; until then only check
            # that their templates exist
            if a.name in obs.analysis_errors:
                rs.phase, rs.message = ERROR, obs.analysis_errors[a.name]
            return
        if not rs.analysis_run:
            if terminating:
                return
            if a.name in obs.analysis_errors:
                rs.phase, rs.message = ERROR, obs.analysis_errors[a.name]
                return
            try:
                args = tuple(
                    {**x, "value": resolve_arg_value(str(x["value"]), str(x["name"]), prev, spec,
                                                     obs.replica_sets)}
                    if isinstance(x.get("value"), str) else dict(x) for x in a.args)
            except ValueError as e:
                rs.phase, rs.message = ERROR, f"Failed to create AnalysisRun for analysis '{a.name}': {e}"
                return
            name = run_name(exname, a.name)
            d.actions.append(CreateExperimentRun(a.name, name, args))
            rs.analysis_run, rs.phase, rs.message = name, PENDING, ""
            return
        if rs.phase in COMPLETED:
            return
        run = obs.runs.get(rs.analysis_run)
        if run is None:
            rs.phase, rs.message = ERROR, f"AnalysisRun {rs.analysis_run} not found"
            return
        if terminating and run.phase not in COMPLETED and not run.terminated:
            d.actions.append(TerminateExperimentRun(a.name, run.name))
            return
        # Unlike Argo, a terminated run's final phase is still recorded: otherwise an
        # experiment whose required analyses succeeded could wait forever on the others.
        rs.phase, rs.message = run.phase or PENDING, run.message
    finally:
        before = old.phase if old is not None else ""
        if rs.phase != before and rs.phase:
            msg = f"AnalysisRun '{a.name}' transitioned from {before or 'none'} -> {rs.phase}"
            if rs.message:
                msg += f": {rs.message}"
            bad = rs.phase in (FAILED, ERROR, INCONCLUSIVE)
            d.events.append(ExperimentEvent("Warning" if bad else "Normal", f"AnalysisRun{rs.phase}", msg))
        d.status.set_run(rs)


def _assess_templates(spec: ExperimentSpec, status: ExperimentStatus) -> tuple[str, str]:
    worst, message = SUCCESSFUL, ""
    for t in spec.templates:
        ts = status.template(t.name)
        code = ts.status if ts is not None else T_PROGRESSING
        if _worse(_TEMPLATE_ORDER, worst, code):
            worst, message = code, ts.message if ts is not None else ""
    return {T_PROGRESSING: PENDING, T_RUNNING: RUNNING}.get(worst, worst), message


def _assess_analyses(spec: ExperimentSpec, status: ExperimentStatus) -> tuple[str, str]:
    worst, message = SUCCESSFUL, ""
    for a in spec.analyses:
        r = status.run(a.name)
        if r is not None and _worse(_ANALYSIS_ORDER, worst, r.phase):
            worst, message = r.phase, r.message
    if required_successful(spec, status) and _worse(_ANALYSIS_ORDER, worst, RUNNING):
        return SUCCESSFUL, REQUIRED_DONE_MESSAGE
    return (RUNNING if worst == PENDING else worst), message


def calculate_phase(exname: str, spec: ExperimentSpec, prev: ExperimentStatus,
                    status: ExperimentStatus, now: datetime, d: ExperimentDecision) -> None:
    """The experiment's phase from its templates' and analyses' statuses (Argo's rules);
    a completed phase never changes."""
    before = prev.phase
    if status.phase == "":
        status.phase = PENDING
    elif status.phase in (PENDING, RUNNING):
        tphase, tmsg = _assess_templates(spec, status)
        aphase, amsg = _assess_analyses(spec, status)
        if tphase == RUNNING and status.available_at is None:
            status.available_at = fmt_time(now)
        if tphase in COMPLETED:
            if tphase == SUCCESSFUL and (aphase in COMPLETED or spec.has_required):
                # the templates ran their course: the analyses decide
                status.phase, status.message = aphase, amsg
            else:
                status.phase, status.message = tphase, tmsg
        elif (aphase in COMPLETED and aphase != SUCCESSFUL) or required_successful(spec, status):
            status.phase, status.message = aphase, amsg
        else:
            status.phase, status.message = tphase, tmsg
    if status.phase == SUCCESSFUL:
        set_condition(status, "Progressing", "False", "ExperimentCompleted",
                       f"Experiment '{exname}' has successfully ran and completed.", now)
    elif status.phase == RUNNING:
        set_condition(status, "Progressing", "True", "NewReplicaSetAvailable",
                       f"Experiment '{exname}' is running.", now)
    elif status.phase == PENDING:
        set_condition(status, "Progressing", "True", "ReplicaSetUpdated",
                       f"Experiment '{exname}' is progressing.", now)
    if status.phase != before and before:
        msg = f"Experiment transitioned from {before} -> {status.phase}"
        if status.message:
            msg += f": {status.message}"
        bad = status.phase in (FAILED, ERROR, INCONCLUSIVE)
        d.events.append(ExperimentEvent("Warning" if bad else "Normal", f"Experiment{status.phase}", msg))


def _requeue(spec: ExperimentSpec, status: ExperimentStatus, obs: ExperimentObs, now: datetime,
             d: ExperimentDecision) -> None:
    """When time alone changes the decision: the duration's end, a progress deadline."""
    if is_terminating(spec, status):
        return
    passed, left = _passed_duration(spec, status, now)
    if status.available_at is not None and spec.duration_s is not None and not passed:
        d.wake_in(left + 0.5)  # fmt_time drops sub-seconds: wake just after the end
    for t in spec.templates:
        ts = status.template(t.name)
        if ts is None or ts.status not in (T_PROGRESSING, T_RUNNING) or ts.last_transition_time is None:
            continue
        if ts.available_replicas != _desired_replicas(spec, status, t, False):
            since = parse_time(ts.last_transition_time) or now
            due = since + timedelta(seconds=spec.progress_deadline_s) - now
            d.wake_in(due.total_seconds() + 1)


def record_failure(exname: str, spec: ExperimentSpec, prev: ExperimentStatus,
                   d: ExperimentDecision, action: ExperimentAction, message: str,
                   now: datetime) -> None:
    """An action the API server refused: as in Argo, the template or analysis it was for
    turns Error with the server's message (which ends the experiment with Error)."""
    status = d.status
    if isinstance(action, CreateExperimentRun | TerminateExperimentRun):
        r = status.run(action.analysis) or RunStatus(name=action.analysis)
        r.phase, r.message = ERROR, message
        if isinstance(action, CreateExperimentRun):
            r.analysis_run = ""
        status.set_run(r)
    else:
        ts = status.template(action.template) or TemplateStatus(name=action.template)
        ts.status, ts.message = ERROR, message
        status.set_template(ts)
    d.events.append(ExperimentEvent("Warning", "ExperimentActionFailed", message))
    calculate_phase(exname, spec, prev, status, now, d)

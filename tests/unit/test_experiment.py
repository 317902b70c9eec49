"""The Experiment decision (rollouts.controller.experiment), Argo's lifecycle step by step."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from rollouts.api.experiment import ExperimentStatus, parse_experiment_spec
from rollouts.controller.experiment import (
    CreateExperimentRun,
    CreateTemplateReplicaSet,
    CreateTemplateService,
    DeleteTemplateService,
    ExperimentDecision,
    ExperimentInput,
    ExperimentObs,
    MarkScaleDown,
    RunObs,
    ScaleTemplateReplicaSet,
    TemplateReplicaSet,
    TerminateExperimentRun,
    decide_experiment,
    record_failure,
    resolve_arg_value,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def template(name: str, replicas: int = 1, **extra: Any) -> dict[str, Any]:
    labels = {"app": "demo", "color": name}
    return {"name": name, "replicas": replicas, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "c", "image": f"demo:{name}",
                                                  "ports": [{"containerPort": 8080}]}]}},
            **extra}


def spec(**extra: Any) -> dict[str, Any]:
    return {"templates": [template("baseline"), template("canary", 2)], "duration": "60s",
            "scaleDownDelaySeconds": 10, **extra}


class Sim:
    """Feeds each decision's status into the next, with the cluster as the test sets it."""

    def __init__(self, raw: dict[str, Any], name: str = "ex") -> None:
        self.name = name
        self.raw = raw
        self.status = ExperimentStatus()
        self.rs: dict[str, TemplateReplicaSet] = {}
        self.runs: dict[str, RunObs] = {}
        self.services: dict[str, str] = {}
        self.analysis_errors: dict[str, str] = {}

    def step(self, now: datetime) -> ExperimentDecision:
        sp, errors = parse_experiment_spec(self.raw)
        ports = {t["name"]: [{"containerPort": 8080}] for t in self.raw["templates"]}
        obs = ExperimentObs(dict(self.rs), dict(self.services), dict(self.runs),
                            dict(self.analysis_errors), ports)
        d = decide_experiment(ExperimentInput(self.name, sp, tuple(errors), self.status), obs, now)
        self.status = d.status
        for a in d.actions:  # what the reconciler would do, the API server obliging
            if isinstance(a, CreateTemplateReplicaSet):
                self.rs[a.template] = TemplateReplicaSet(a.name, a.hash, a.replicas)
            elif isinstance(a, ScaleTemplateReplicaSet):
                self.rs[a.template] = replace(self.rs[a.template], spec_replicas=a.replicas)
            elif isinstance(a, MarkScaleDown):
                self.rs[a.template] = replace(self.rs[a.template],
                                              scale_down_at=datetime.fromisoformat(a.at))
            elif isinstance(a, CreateTemplateService):
                self.services[a.template] = a.name
            elif isinstance(a, DeleteTemplateService):
                self.services.pop(a.template, None)
            elif isinstance(a, CreateExperimentRun):
                self.runs[a.name] = RunObs(a.name, "Pending")
            elif isinstance(a, TerminateExperimentRun):
                self.runs[a.name] = replace(self.runs[a.name], terminated=True)
        return d

    def ready(self, *names: str) -> None:
        for n in names or list(self.rs):
            rs = self.rs[n]
            self.rs[n] = replace(rs, replicas=rs.spec_replicas, ready=rs.spec_replicas,
                                 available=rs.spec_replicas)

    def run(self, analysis: str, phase: str, message: str = "") -> None:
        name = f"{self.name}-{analysis}"
        self.runs[name] = replace(self.runs[name], phase=phase, message=message)

    def tstatus(self, name: str) -> str:
        ts = self.status.template(name)
        assert ts is not None
        return ts.status


def running(raw: dict[str, Any]) -> Sim:
    """An experiment whose templates became available at T0 + 5 s."""
    s = Sim(raw)
    s.step(T0)
    s.ready()
    s.step(T0 + timedelta(seconds=5))
    assert s.status.phase == "Running"
    return s


def test_first_reconcile_creates_one_replica_set_per_template_and_is_pending() -> None:
    s = Sim(spec())
    d = s.step(T0)
    creates = [a for a in d.actions if isinstance(a, CreateTemplateReplicaSet)]
    assert [(a.template, a.replicas) for a in creates] == [("baseline", 1), ("canary", 2)]
    for a in creates:
        assert a.name == f"ex-{a.template}-{a.hash}" and len(a.hash) == 10
    assert creates[0].hash != creates[1].hash
    assert s.status.phase == "Pending" and s.status.available_at is None
    assert s.tstatus("baseline") == "Progressing"
    # observed again before the pods exist: nothing new
    d = s.step(T0 + timedelta(seconds=1))
    assert not [a for a in d.actions if isinstance(a, CreateTemplateReplicaSet)]
    assert s.status.phase == "Pending"


def test_running_once_every_template_is_available_then_successful_after_duration() -> None:
    s = Sim(spec())
    s.step(T0)
    s.ready("baseline")
    s.step(T0 + timedelta(seconds=2))
    assert s.status.phase == "Pending"  # canary not yet available
    s.ready("canary")
    d = s.step(T0 + timedelta(seconds=5))
    assert s.status.phase == "Running"
    assert s.status.available_at == "2026-01-01T12:00:05Z"
    assert d.requeue_after is not None and 60 <= d.requeue_after <= 61  # the duration's end
    d = s.step(T0 + timedelta(seconds=30))
    assert s.status.phase == "Running" and not d.actions
    d = s.step(T0 + timedelta(seconds=66))
    assert s.status.phase == "Successful"
    assert s.tstatus("baseline") == s.tstatus("canary") == "Successful"
    cond = s.status.conditions[-1]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Progressing", "False", "ExperimentCompleted")
    # ended: the ReplicaSets are marked and scaled to 0 only after scaleDownDelaySeconds
    d = s.step(T0 + timedelta(seconds=67))
    marks = [a for a in d.actions if isinstance(a, MarkScaleDown)]
    assert {a.template for a in marks} == {"baseline", "canary"}
    assert not [a for a in d.actions if isinstance(a, ScaleTemplateReplicaSet)]
    assert d.requeue_after is not None and d.requeue_after <= 10
    d = s.step(T0 + timedelta(seconds=78))
    scales = [a for a in d.actions if isinstance(a, ScaleTemplateReplicaSet)]
    assert {(a.template, a.replicas) for a in scales} == {("baseline", 0), ("canary", 0)}
    assert s.status.phase == "Successful"


def test_analyses_start_when_available_with_template_placeholders_resolved() -> None:
    raw = spec(analyses=[{"name": "compare", "templateName": "cmp", "args": [
        {"name": "baseline-hash", "value": "{{templates.baseline.podTemplateHash}}"},
        {"name": "canary-rs", "value": "{{templates.canary.replicaset.name}}"},
        {"name": "plain", "value": "x"}]}])
    s = Sim(raw)
    d = s.step(T0)
    assert not [a for a in d.actions if isinstance(a, CreateExperimentRun)]
    s.ready()
    d = s.step(T0 + timedelta(seconds=5))
    assert s.status.phase == "Running"
    # Argo starts the runs in the reconcile after availableAt was recorded
    d = s.step(T0 + timedelta(seconds=6))
    runs = [a for a in d.actions if isinstance(a, CreateExperimentRun)]
    assert len(runs) == 1 and runs[0].name == "ex-compare"
    args = {a["name"]: a["value"] for a in runs[0].args}
    assert args == {"baseline-hash": s.rs["baseline"].hash, "canary-rs": s.rs["canary"].name,
                    "plain": "x"}
    run = s.status.run("compare")
    assert run is not None and (run.analysis_run, run.phase) == ("ex-compare", "Pending")


def test_a_failed_analysis_fails_the_experiment_early_and_scales_down() -> None:
    s = running(spec(analyses=[{"name": "a", "templateName": "t"}]))
    s.step(T0 + timedelta(seconds=6))
    s.run("a", "Running")
    s.step(T0 + timedelta(seconds=8))
    assert s.status.phase == "Running"
    s.run("a", "Failed", "metric m failed")
    s.step(T0 + timedelta(seconds=10))
    assert s.status.phase == "Failed" and s.status.message == "metric m failed"
    d = s.step(T0 + timedelta(seconds=11))
    assert {a.template for a in d.actions if isinstance(a, MarkScaleDown)} == {"baseline", "canary"}
    assert s.status.phase == "Failed"


def test_worst_analysis_phase_wins() -> None:
    for phases, expected in ((("Error", "Failed"), "Failed"), (("Inconclusive", "Error"), "Error"),
                             (("Running", "Inconclusive"), "Inconclusive")):
        s = running(spec(analyses=[{"name": "a", "templateName": "t"},
                                   {"name": "b", "templateName": "t"}]))
        s.step(T0 + timedelta(seconds=6))
        s.run("a", phases[0], "from a")
        s.run("b", phases[1], "from b")
        s.step(T0 + timedelta(seconds=8))
        assert s.status.phase == expected, phases
        assert s.status.message == ("from a" if expected == phases[0] else "from b")


def test_without_duration_required_analyses_complete_it_and_others_are_terminated() -> None:
    raw = spec(analyses=[{"name": "req", "templateName": "t", "requiredForCompletion": True},
                         {"name": "bg", "templateName": "t"}])
    del raw["duration"]
    s = running(raw)
    s.step(T0 + timedelta(seconds=6))
    s.run("req", "Running")
    s.run("bg", "Running")
    s.step(T0 + timedelta(hours=2))
    assert s.status.phase == "Running"  # no duration: runs as long as the required one does
    s.run("req", "Successful")
    s.step(T0 + timedelta(hours=2, seconds=1))
    assert s.status.phase == "Running"  # bg still running: Argo keeps the worst phase
    d = s.step(T0 + timedelta(hours=2, seconds=2))  # terminating: bg is told to stop
    assert [a.name for a in d.actions if isinstance(a, TerminateExperimentRun)] == ["ex-bg"]
    s.run("bg", "Successful", "run terminated")
    s.step(T0 + timedelta(hours=2, seconds=3))
    assert s.status.phase == "Successful"


def test_required_analysis_keeps_it_running_past_the_duration() -> None:
    s = running(spec(analyses=[{"name": "req", "templateName": "t", "requiredForCompletion": True}]))
    s.step(T0 + timedelta(seconds=6))
    s.run("req", "Running")
    s.step(T0 + timedelta(seconds=90))
    assert s.status.phase == "Running" and s.tstatus("canary") == "Successful"
    s.run("req", "Successful")
    s.step(T0 + timedelta(seconds=95))
    assert s.status.phase == "Successful"


def test_without_duration_or_required_analyses_it_runs_until_terminated() -> None:
    raw = spec()
    del raw["duration"]
    s = running(raw)
    d = s.step(T0 + timedelta(days=3))
    assert s.status.phase == "Running" and d.requeue_after is None and not d.actions
    raw["terminate"] = True
    d = s.step(T0 + timedelta(days=3, seconds=1))
    assert s.status.phase == "Successful"
    assert {a.template for a in d.actions if isinstance(a, MarkScaleDown)} == {"baseline", "canary"}
    d = s.step(T0 + timedelta(days=3, seconds=12))
    assert {a.template for a in d.actions if isinstance(a, ScaleTemplateReplicaSet)} == {
        "baseline", "canary"}


def test_terminate_before_available_ends_it_successfully_and_scales_down() -> None:
    raw = spec(scaleDownDelaySeconds=0)
    s = Sim(raw)
    s.step(T0)
    raw["terminate"] = True
    d = s.step(T0 + timedelta(seconds=1))
    assert s.status.phase == "Successful"
    scales = [a for a in d.actions if isinstance(a, ScaleTemplateReplicaSet)]
    assert {(a.template, a.replicas) for a in scales} == {("baseline", 0), ("canary", 0)}


def test_a_template_never_available_fails_at_the_progress_deadline() -> None:
    s = Sim(spec(progressDeadlineSeconds=30))
    s.step(T0)
    s.ready("baseline")
    d = s.step(T0 + timedelta(seconds=1))
    assert d.requeue_after is not None and 29 <= d.requeue_after <= 31
    s.step(T0 + timedelta(seconds=20))
    assert s.status.phase == "Pending"
    s.step(T0 + timedelta(seconds=32))
    assert s.tstatus("canary") == "Failed"
    assert s.status.phase == "Failed"
    assert "exceeded its progressDeadlineSeconds (30)" in s.status.message


def test_a_missing_analysis_template_errors_the_experiment() -> None:
    s = Sim(spec(analyses=[{"name": "a", "templateName": "missing"}]))
    s.analysis_errors["a"] = "AnalysisTemplate missing not found"
    s.step(T0)
    s.step(T0 + timedelta(seconds=1))
    assert s.status.phase == "Error"
    assert s.status.message == "AnalysisTemplate missing not found"


def test_service_created_for_a_template_that_asks_and_deleted_after_scale_down() -> None:
    raw = spec(scaleDownDelaySeconds=0)
    raw["templates"][0]["service"] = {"name": "baseline-svc"}
    s = Sim(raw)
    d = s.step(T0)
    assert not [a for a in d.actions if isinstance(a, CreateTemplateService)]  # RS first
    d = s.step(T0 + timedelta(seconds=1))
    svcs = [a for a in d.actions if isinstance(a, CreateTemplateService)]
    assert [(a.template, a.name, a.replica_set) for a in svcs] == [
        ("baseline", "baseline-svc", s.rs["baseline"].name)]
    ts = s.status.template("baseline")
    assert ts is not None and ts.service_name == "baseline-svc"
    s.ready()
    s.step(T0 + timedelta(seconds=2))
    s.step(T0 + timedelta(seconds=70))
    assert s.status.phase == "Successful"
    s.step(T0 + timedelta(seconds=71))  # scaled to 0
    s.rs["baseline"] = replace(s.rs["baseline"], replicas=0, ready=0, available=0)
    d = s.step(T0 + timedelta(seconds=72))
    assert [a.name for a in d.actions if isinstance(a, DeleteTemplateService)] == ["baseline-svc"]


def test_a_refused_action_turns_its_template_to_error() -> None:
    s = Sim(spec())
    d = s.step(T0)
    sp, _ = parse_experiment_spec(s.raw)
    assert sp is not None
    record_failure("ex", sp, ExperimentStatus(), d, d.actions[0], "quota exceeded", T0)
    ts = d.status.template("baseline")
    assert ts is not None and (ts.status, ts.message) == ("Error", "quota exceeded")
    # the next reconcile ends it with Error
    s.status = d.status
    s.step(T0 + timedelta(seconds=1))
    assert s.status.phase == "Error" and s.status.message == "quota exceeded"


def test_invalid_spec_sets_a_condition_and_creates_nothing() -> None:
    raw = spec()
    raw["templates"][1]["name"] = "baseline"
    s = Sim(raw)
    d = s.step(T0)
    assert not d.actions
    cond = next(c for c in s.status.conditions if c["type"] == "InvalidSpec")
    assert "spec.templates[1].name 'baseline' is used twice" in cond["message"]


def test_spec_errors_name_their_field() -> None:
    bad = spec()
    bad["templates"][0]["selector"] = {"matchLabels": {"app": "other"}}
    bad["templates"][1] = {"name": "canary", "template": {"spec": {}}}
    bad["duration"] = "soon"
    _, errors = parse_experiment_spec(bad)
    assert any("spec.templates[0].selector.matchLabels must match" in e for e in errors)
    assert any("spec.templates[1].selector is required" in e for e in errors)
    assert any(e.startswith("spec.duration:") for e in errors)


def test_placeholders_without_a_value_are_named() -> None:
    sp, _ = parse_experiment_spec(spec())
    assert sp is not None
    try:
        resolve_arg_value("{{templates.canary.podTemplateHash}}", "h", ExperimentStatus(), sp, {})
    except ValueError as e:
        assert "templates.canary.podTemplateHash" in str(e)
    else:
        raise AssertionError("no error")
    assert resolve_arg_value("{{args.x}}", "h", ExperimentStatus(), sp, {}) == "{{args.x}}"


def test_status_round_trips_with_argo_field_names() -> None:
    s = running(spec())
    d = s.status.to_dict()
    assert set(d) >= {"phase", "availableAt", "templateStatuses", "conditions"}
    assert set(d["templateStatuses"][0]) >= {"name", "replicas", "updatedReplicas", "readyReplicas",
                                             "availableReplicas", "status", "lastTransitionTime",
                                             "podTemplateHash"}
    assert ExperimentStatus.from_dict(d).to_dict() == d


def test_a_read_failure_condition_is_cleared_by_the_next_full_observation() -> None:
    s = running(spec())
    s.status.conditions.append({"type": "ReconciliationError", "status": "True",
                                "reason": "ReconciliationError", "message": "forbidden"})
    s.step(T0 + timedelta(seconds=6))
    assert all(c["type"] != "ReconciliationError" for c in s.status.conditions)

"""The canary experiment step (rollouts.controller.experiment_step): the Experiment a
Rollout creates, the step's state from its phase, termination and weights."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.api.constants import POD_TEMPLATE_HASH_LABEL as HASH
from rollouts.api.experiment import parse_experiment_spec
from rollouts.controller.experiment import template_hash
from rollouts.controller.experiment_reconciler import template_replica_set
from rollouts.controller.experiment_step import (
    DONE,
    FAILED,
    INCONCLUSIVE,
    RUNNING,
    TERMINATE_PATCH,
    ExperimentStepError,
    ExperimentStepInput,
    OwnedExperiment,
    Owner,
    build_experiment,
    experiment_name,
    experiments_to_terminate,
    owned_experiments,
    plan_experiment_step,
    step_progress,
    template_weights,
    weight_destinations,
)


def pod(image: str, h: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "demo", HASH: h}},
            "spec": {"containers": [{"name": "app", "image": image,
                                     "ports": [{"containerPort": 8080}]}]}}


STEP: dict[str, Any] = {
    "duration": "1h", "scaleDownDelaySeconds": 5,
    "templates": [
        {"name": "baseline", "specRef": "stable", "weight": 5},
        {"name": "canary", "specRef": "canary", "replicas": 2,
         "metadata": {"labels": {"role": "exp"}, "annotations": {"note": "x"}},
         "service": {"name": "exp-canary"}},
    ],
    "analyses": [{"name": "compare", "templateName": "mann-whitney", "requiredForCompletion": True,
                  "args": [{"name": "baseline-hash", "value": "{{templates.baseline.podTemplateHash}}"},
                           {"name": "stable", "valueFrom": {"podTemplateHashValue": "Stable"}},
                           {"name": "latest", "valueFrom": {"podTemplateHashValue": "Latest"}},
                           {"name": "ns", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                           {"name": "key", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}],
}


def inp(step: dict[str, Any] | None = None, **extra: Any) -> ExperimentStepInput:
    base: dict[str, Any] = dict(
        rollout="demo", step=step or STEP, step_index=2, attempt=3, canary_hash="c4n4ry",
        stable_hash="st4bl3", canary_template=pod("demo:2", "c4n4ry"),
        stable_template=pod("demo:1", "st4bl3"), selector={"matchLabels": {"app": "demo"}},
        rollout_labels={"team": "a"}, owner=Owner(name="demo", uid="u-1"),
        progress_deadline_seconds=120, min_ready_seconds=3,
        rollout_obj={"metadata": {"name": "demo", "namespace": "prod"}})
    base.update(extra)
    return ExperimentStepInput(**base)


def test_experiment_is_named_and_owned_like_argos() -> None:
    ex = build_experiment(inp())
    md = ex["metadata"]
    assert md["name"] == experiment_name("demo", "c4n4ry", 3, 2) == "demo-c4n4ry-3-2"
    assert md["ownerReferences"] == [{"apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
                                      "name": "demo", "uid": "u-1", "controller": True,
                                      "blockOwnerDeletion": True}]
    assert md["labels"] == {"team": "a", HASH: "c4n4ry", "rollouts.dev/rollout": "demo",
                            "rollouts.dev/step": "2"}
    assert ex["spec"]["duration"] == "1h" and ex["spec"]["progressDeadlineSeconds"] == 120
    assert ex["spec"]["scaleDownDelaySeconds"] == 5


def test_templates_take_the_stable_or_canary_pod_template_with_step_metadata() -> None:
    ex = build_experiment(inp())
    base, can = ex["spec"]["templates"]
    assert base["template"]["spec"]["containers"][0]["image"] == "demo:1"
    assert can["template"]["spec"]["containers"][0]["image"] == "demo:2"
    assert base["replicas"] == 1 and can["replicas"] == 2 and can["minReadySeconds"] == 3
    # the Rollout's hash label is dropped: the experiment gives its pods their own
    assert HASH not in base["template"]["metadata"]["labels"]
    assert can["template"]["metadata"]["labels"] == {"app": "demo", "role": "exp"}
    assert can["selector"] == {"matchLabels": {"app": "demo", "role": "exp"}}
    assert can["template"]["metadata"]["annotations"] == {"note": "x"}
    # a Service for a weighted template (named by the controller) and for one that asks
    assert base["service"] == {} and can["service"] == {"name": "exp-canary"}
    # the source templates are not modified
    assert HASH in inp().canary_template["metadata"]["labels"]


def test_the_built_experiment_is_valid_and_its_pods_never_carry_the_rollouts_hash() -> None:
    ex = build_experiment(inp())
    ex["metadata"].update(namespace="prod", uid="e-1")
    spec, errors = parse_experiment_spec(ex["spec"])
    assert spec is not None, errors
    for t in spec.templates:
        h = template_hash("demo-c4n4ry-3-2", t)
        rs = template_replica_set(ex, t, f"x-{h}", h, 1)
        labels = rs["spec"]["template"]["metadata"]["labels"]
        assert labels[HASH] == h and h not in ("c4n4ry", "st4bl3")
        assert labels["rollouts.dev/experiment-template"] == t.name
        assert rs["metadata"]["ownerReferences"][0]["kind"] == "Experiment"
        assert rs["spec"]["selector"]["matchLabels"][HASH] == h


def test_analysis_args_resolved_as_argo_does() -> None:
    ex = build_experiment(inp())
    (a,) = ex["spec"]["analyses"]
    assert a["requiredForCompletion"] is True and a["templateName"] == "mann-whitney"
    assert a["args"] == [
        {"name": "baseline-hash", "value": "{{templates.baseline.podTemplateHash}}"},
        {"name": "stable", "value": "st4bl3"}, {"name": "latest", "value": "c4n4ry"},
        {"name": "ns", "value": "prod"},
        {"name": "key", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]


def test_bad_step_input_is_a_clear_error_naming_the_field() -> None:
    bad = {**STEP, "templates": [{"name": "x", "specRef": "preview"}]}
    with pytest.raises(ExperimentStepError, match=r"steps\[2\].experiment.templates\[0\].specRef"):
        build_experiment(inp(bad))
    bad = {**STEP, "analyses": [{"name": "a", "templateName": "t", "args": [{"name": "n"}]}]}
    with pytest.raises(ExperimentStepError, match=r"analyses\[0\].args\[0\] \(n\) needs value"):
        build_experiment(inp(bad))


@pytest.mark.parametrize(("phase", "state"), [
    (None, RUNNING), ("Pending", RUNNING), ("Running", RUNNING), ("Successful", DONE),
    ("Failed", FAILED), ("Error", FAILED), ("Inconclusive", INCONCLUSIVE)])
def test_step_state_follows_the_experiment_phase(phase: str | None, state: str) -> None:
    assert step_progress("e", phase, "metric m failed").state == state


def test_failed_step_message_carries_the_experiments() -> None:
    assert step_progress("e", "Failed", "metric m failed").message == \
        "Experiment analysis phase is error/failed: metric m failed"


def test_other_experiments_still_going_are_terminated() -> None:
    owned = [OwnedExperiment("cur", "Running"), OwnedExperiment("old", "Running"),
             OwnedExperiment("done", "Successful"), OwnedExperiment("asked", "Running", terminate=True),
             OwnedExperiment("new", "")]
    assert experiments_to_terminate("cur", owned) == ["old", "new"]
    # aborted / promoted fully / not on an experiment step: every one still going
    assert experiments_to_terminate(None, owned) == ["cur", "old", "new"]


def test_weights_go_to_weighted_templates_only_while_running() -> None:
    assert template_weights(STEP) == {"baseline": 5}
    statuses = [{"name": "baseline", "serviceName": "svc-b", "podTemplateHash": "hb"},
                {"name": "canary", "serviceName": "exp-canary", "podTemplateHash": "hc"}]
    assert weight_destinations(STEP, "Pending", statuses) == []
    (w,) = weight_destinations(STEP, "Running", statuses)
    assert (w.template, w.service_name, w.pod_template_hash, w.weight) == ("baseline", "svc-b", "hb", 5)
    assert weight_destinations(STEP, "Successful", statuses) == []


def test_owned_experiments_are_those_the_rollout_controls() -> None:
    def obj(name: str, uid: str, **status: Any) -> dict[str, Any]:
        return {"metadata": {"name": name, "ownerReferences": [{"uid": uid, "controller": True}]},
                "spec": {"terminate": name == "old"}, "status": status}
    got = owned_experiments([obj("cur", "u-1", phase="Running", message="m",
                                 templateStatuses=[{"name": "b"}]),
                             obj("old", "u-1"), obj("other", "u-2", phase="Running")], "u-1")
    assert set(got) == {"cur", "old"}
    assert got["cur"] == OwnedExperiment("cur", "Running", False, "m", ({"name": "b"},))
    assert got["old"].terminate and got["old"].phase == ""
    assert TERMINATE_PATCH == {"spec": {"terminate": True}}


def test_plan_creates_once_then_follows_the_experiment() -> None:
    plan = plan_experiment_step(inp(), {"older": OwnedExperiment("older", "Running")})
    assert plan.name == "demo-c4n4ry-3-2" and plan.create is not None
    assert plan.create["metadata"]["name"] == plan.name
    assert plan.terminate == ["older"] and plan.progress.state == RUNNING and plan.weights == []
    statuses = ({"name": "baseline", "serviceName": "s", "podTemplateHash": "h"},)
    plan = plan_experiment_step(inp(), {plan.name: OwnedExperiment(plan.name, "Running",
                                                                   template_statuses=statuses)})
    assert plan.create is None and plan.terminate == [] and plan.progress.state == RUNNING
    assert [w.weight for w in plan.weights] == [5]
    plan = plan_experiment_step(inp(), {plan.name: OwnedExperiment(plan.name, "Failed", message="bad")})
    assert plan.progress == step_progress(plan.name, "Failed", "bad") and plan.progress.state == FAILED
    # a retried step (next attempt) gets a new Experiment; the failed one is finished, left alone
    retry = plan_experiment_step(inp(attempt=4), {plan.name: OwnedExperiment(plan.name, "Failed")})
    assert retry.create is not None and retry.name == "demo-c4n4ry-4-2" and retry.terminate == []

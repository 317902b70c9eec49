"""What `rollouts get rollout` (table and -o json) says about analysis and the last action,
from status as the controller writes it."""

from __future__ import annotations

from typing import Any

from rollouts.api.summary import summarize
from rollouts.cli.render import detail, to_text


def rollout(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "shop-api", "namespace": "shop", "generation": 3, "uid": "u1"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "shop"}},
                 "template": {"metadata": {"labels": {"app": "shop"}},
                              "spec": {"containers": [{"name": "app", "image": "shop:3"}]}},
                 "strategy": {"canary": {
                     "canaryService": "c", "stableService": "s",
                     "trafficRouting": {"istio": {"virtualService": {"name": "vs"}}},
                     "analysis": {"templates": [{"templateName": "errors"}]},
                     "steps": [{"setWeight": 20},
                               {"analysis": {"templates": [{"templateName": "latency"}]}},
                               {"setWeight": 50}, {"pause": {}}]}}},
        "status": status,
    }


# what decide() writes: status.analysis holds the runs, status.canary only the weights
MID_CANARY = {
    "observedGeneration": 3, "phase": "Progressing", "message": "step 1/4: analysis running",
    "currentPodHash": "7f9c", "stableRS": "5d2a", "currentStepIndex": 1,
    "canary": {"weights": {"canary": {"weight": 20, "podTemplateHash": "7f9c", "serviceName": "c"},
                           "stable": {"weight": 80, "podTemplateHash": "5d2a", "serviceName": "s"}}},
    "analysis": {
        "attempt": 1,
        "step": {"name": "shop-api-7f9c-1-step1", "phase": "Running",
                 "message": "2 of 5 measurements"},
        "background": {"name": "shop-api-7f9c-1-bg", "phase": "Running", "message": ""},
    },
    "lastAction": {"action": "retry", "full": False, "user": "alice", "id": "a1",
                   "requestedAt": "2024-05-01T11:00:00Z", "podHash": "7f9c", "result": "Applied",
                   "processedAt": "2024-05-01T11:00:01Z", "stepIndex": 0},
    "replicas": 5, "readyReplicas": 5, "availableReplicas": 5, "updatedReplicas": 1,
}


def test_analysis_comes_from_status_analysis() -> None:
    s = summarize(rollout(MID_CANARY))
    assert s["analysis"] is not None, "status.analysis holds two runs"
    assert s["analysis"]["attempt"] == 1
    runs = {r["kind"]: r for r in s["analysis"]["runs"]}
    assert runs["step"] == {"kind": "step", "name": "shop-api-7f9c-1-step1", "phase": "Running",
                            "message": "2 of 5 measurements", "revision": "7f9c", "current": True}
    assert runs["background"]["current"] is True
    text = to_text(detail(s, [], []))
    assert "shop-api-7f9c-1-step1" in text and "Running" in text
    assert "earlier revision" not in text


def test_runs_and_action_of_a_replaced_revision_are_not_current() -> None:
    # a new template (revision 9e1b) replaced the canary 7f9c: status still records its
    # runs and the retry applied to it until the new revision's own come
    st = {**MID_CANARY, "currentPodHash": "9e1b", "currentStepIndex": 0,
          "message": "step 0/4: setWeight 20"}
    s = summarize(rollout(st))
    assert all(r["current"] is False and r["revision"] == "7f9c" for r in s["analysis"]["runs"])
    assert s["lastAction"]["current"] is False
    text = to_text(detail(s, [], []))
    assert "retry by alice -> Applied (on earlier revision 7f9c)" in text
    assert "earlier revision or attempt)" in text


def test_runs_of_an_earlier_attempt_are_not_current() -> None:
    st = {**MID_CANARY, "analysis": {**MID_CANARY["analysis"], "attempt": 2}}
    s = summarize(rollout(st))
    assert [r["current"] for r in s["analysis"]["runs"]] == [False, False]


def test_last_action_without_revision_is_unknown_and_no_analysis_is_none() -> None:
    st = {k: v for k, v in MID_CANARY.items() if k != "analysis"}
    st["lastAction"] = {k: v for k, v in MID_CANARY["lastAction"].items() if k != "podHash"}
    s = summarize(rollout(st))
    assert s["analysis"] is None
    assert s["lastAction"]["current"] is None
    assert "earlier revision" not in to_text(detail(s, [], []))


def test_argo_style_run_status_under_status_canary() -> None:
    st = {**{k: v for k, v in MID_CANARY.items() if k != "analysis"}}
    st["canary"] = {**MID_CANARY["canary"], "currentStepAnalysisRunStatus": {
        "name": "shop-api-7f9c-0-step1", "status": "Successful", "message": ""}}
    s = summarize(rollout(st))
    assert [(r["kind"], r["phase"], r["current"]) for r in s["analysis"]["runs"]] == [
        ("step", "Successful", True)]


def test_a_run_recorded_under_both_keys_is_shown_once() -> None:
    st = {**MID_CANARY, "canary": {**MID_CANARY["canary"], "currentStepAnalysisRunStatus": {
        "name": "shop-api-7f9c-1-step1", "status": "Running", "message": ""}}}
    runs = summarize(rollout(st))["analysis"]["runs"]
    assert sorted(r["kind"] for r in runs) == ["background", "step"]

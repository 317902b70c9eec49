"""`get rollout`'s tree, as a user reads it: revisions, ReplicaSets with their role, pods
with status symbols, AnalysisRuns with ✔/✖ counts and the judge's verdict under the run."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from rollouts.api.summary import summarize
from rollouts.cli.render import detail, set_weight, to_text
from rollouts.cli.timefmt import age, fmt_duration
from rollouts.cli.tree import pod_status, rs_status, run_info

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def rollout(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "demo", "namespace": "shop", "generation": 2, "uid": "u1",
                     "creationTimestamp": "2024-05-01T10:30:00Z"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "demo"}},
                 "template": {"metadata": {"labels": {"app": "demo"}},
                              "spec": {"containers": [{"name": "app", "image": "demo:2"}]}},
                 "strategy": {"canary": {"steps": [
                     {"setWeight": 20}, {"analysis": {"templates": [{"templateName": "t"}]}},
                     {"setWeight": 50}, {"pause": {"duration": "5400s"}}]}}},
        "status": status or {
            "observedGeneration": 2, "phase": "Progressing", "message": "step 1/4: analysis",
            "currentPodHash": "bbb", "stableRS": "aaa", "currentStepIndex": 1,
            "canary": {"weights": {"canary": {"weight": 20}, "stable": {"weight": 80}}}},
    }


def rs(h: str, rev: int, image: str, replicas: int, uid: str) -> dict[str, Any]:
    return {"metadata": {"name": f"demo-{h}", "uid": uid, "generation": 1,
                         "creationTimestamp": "2024-05-01T11:00:00Z",
                         "labels": {"rollouts-pod-template-hash": h},
                         "annotations": {"rollouts.dev/revision": str(rev)}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "app", "image": image}]}}},
            "status": {"observedGeneration": 1, "readyReplicas": replicas,
                       "availableReplicas": replicas}}


def pod(name: str, owner_uid: str, *, ready: bool = True, restarts: int = 0,
        waiting: str | None = None, deleting: bool = False) -> dict[str, Any]:
    state: dict[str, Any] = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    md: dict[str, Any] = {"name": name, "creationTimestamp": "2024-05-01T11:55:00Z",
                          "ownerReferences": [{"uid": owner_uid, "controller": True,
                                               "name": name.rsplit("-", 1)[0]}]}
    if deleting:
        md["deletionTimestamp"] = "2024-05-01T11:59:00Z"
    return {"metadata": md, "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": "Running" if not waiting else "Pending", "containerStatuses": [
                {"name": "app", "ready": ready, "restartCount": restarts, "state": state}]}}


JUDGE_RUN = {
    "metadata": {"name": "demo-bbb-0-step1", "creationTimestamp": "2024-05-01T11:58:00Z",
                 "labels": {"rollouts-pod-template-hash": "bbb", "rollouts.dev/analysis": "step"}},
    "status": {"phase": "Running", "metricResults": [
        {"name": "judge", "phase": "Running", "inconclusive": 2, "successful": 1,
         "measurements": [{"phase": "Successful", "decision": "continue"}],
         "evidence": {"decision": "continue",
                      "explanation": "canary 5xx 0.4% vs stable 0.5%: e-value 1.3 < 20"}},
        {"name": "up", "phase": "Running", "successful": 4, "failed": 1}]}}
FAILED_RUN = {
    "metadata": {"name": "demo-aaa-0-step1", "creationTimestamp": "2024-05-01T10:40:00Z",
                 "labels": {"rollouts-pod-template-hash": "aaa", "rollouts.dev/analysis": "step"}},
    "status": {"phase": "Failed", "message": "metric up failed", "metricResults": [
        {"name": "up", "phase": "Failed", "successful": 1, "failed": 3,
         "message": "result 0 is not >= 1"}]}}


def tree_text() -> str:
    rss = [rs("aaa", 1, "demo:1", 3, "ua"), rs("bbb", 2, "demo:2", 1, "ub")]
    rss[1]["status"]["availableReplicas"] = 0  # its pod cannot pull its image
    pods = [pod("demo-aaa-1", "ua"), pod("demo-aaa-2", "ua", restarts=3),
            pod("demo-aaa-3", "ua", deleting=True),
            pod("demo-bbb-1", "ub", ready=False, waiting="ImagePullBackOff"),
            pod("stranger", "someone-else")]
    return to_text(detail(summarize(rollout()), rss, [], NOW, pods=pods,
                          runs=[run_info(JUDGE_RUN), run_info(FAILED_RUN)]))


def test_header_like_argo() -> None:
    text = tree_text()
    assert re.search(r"^Status:\s+◌ Progressing$", text, re.M)
    assert re.search(r"^Strategy:\s+Canary$", text, re.M)
    assert re.search(r"^  Step:\s+1/4: analysis$", text, re.M)  # the current step says what it is
    assert re.search(r"^  SetWeight:\s+20$", text, re.M)
    assert re.search(r"^  ActualWeight:\s+20$", text, re.M)
    assert re.search(r"^Images:\s+demo:1 \(stable\)\n\s+demo:2 \(canary\)$", text, re.M)


def test_tree_shows_revisions_replicasets_and_pods_with_symbols() -> None:
    text = tree_text()
    lines = text.splitlines()
    assert re.search(r"^NAME\s+KIND\s+STATUS\s+AGE\s+INFO$", text, re.M)
    assert re.search(r"^⟳ demo\s+Rollout\s+◌ Progressing\s+1h30m$", text, re.M)
    # newest revision first, each with its ReplicaSet (role marked) and that one's pods
    rev2, rev1 = (lines.index(ln) for ln in lines if re.search(r"# revision:[12]$", ln))
    assert rev2 < rev1 and lines[rev2].startswith("├──") and lines[rev1].startswith("└──")
    assert re.search(r"⧉ demo-bbb\s+ReplicaSet\s+◌ Progressing\s+1h\s+canary$", lines[rev2 + 1])
    assert re.search(r"□ demo-bbb-1\s+Pod\s+⚠ ImagePullBackOff\s+5m\s+ready:0/1$", lines[rev2 + 2])
    assert re.search(r"⧉ demo-aaa\s+ReplicaSet\s+✔ Healthy\s+1h\s+stable$", lines[rev1 + 1])
    aaa_pods = [ln for ln in lines[rev1 + 2:] if "□" in ln]
    assert [ln.split("□ ")[1].split()[0] for ln in aaa_pods] == ["demo-aaa-1", "demo-aaa-2",
                                                                 "demo-aaa-3"]
    assert re.search(r"✔ Running\s+5m\s+ready:1/1,restarts:3$", aaa_pods[1])
    assert "◌ Terminating" in aaa_pods[2]
    assert "stranger" not in text  # a pod of another ReplicaSet is not this rollout's


def test_analysis_runs_with_counts_and_the_judges_verdict() -> None:
    lines = tree_text().splitlines()
    (i,) = [n for n, ln in enumerate(lines) if "α demo-bbb-0-step1" in ln]
    assert re.search(r"α demo-bbb-0-step1 \(step\)\s+AnalysisRun\s+◌ Running\s+2m\s+✔ 5,✖ 1,\? 2$",
                     lines[i])
    # the verdict line sits under its run, in the run's branch
    assert lines[i + 1].lstrip("│ ") == "judge: continue - canary 5xx 0.4% vs stable 0.5%: e-value 1.3 < 20"
    assert lines[i + 1].startswith("│ ")
    (j,) = [n for n, ln in enumerate(lines) if "α demo-aaa-0-step1" in ln]
    assert re.search(r"AnalysisRun\s+✖ Failed\s+1h20m\s+✔ 1,✖ 3$", lines[j])
    assert lines[j + 1].lstrip("│ ") == "up: failed - result 0 is not >= 1"
    # each run under its own revision: the failed run of revision 1 is not the canary's
    assert i < next(n for n, ln in enumerate(lines) if "# revision:1" in ln) < j


def test_runs_from_status_when_the_runs_cannot_be_listed() -> None:
    st = {**rollout()["status"], "analysis": {"attempt": 0, "step": {
        "name": "demo-bbb-0-step1", "phase": "Running", "message": "measuring up"}}}
    text = to_text(detail(summarize(rollout(st)), [rs("bbb", 2, "demo:2", 1, "ub")], [], NOW))
    assert re.search(r"α demo-bbb-0-step1 \(step\)\s+AnalysisRun\s+◌ Running", text)
    assert "measuring up" in text


def test_blue_green_markers() -> None:
    st = {"observedGeneration": 2, "phase": "Paused", "currentPodHash": "bbb", "stableRS": "aaa",
          "blueGreen": {"activeSelector": "aaa", "previewSelector": "bbb"}}
    obj = rollout(st)
    obj["spec"]["strategy"] = {"blueGreen": {"activeService": "a", "previewService": "p"}}
    text = to_text(detail(summarize(obj), [rs("aaa", 1, "demo:1", 3, "ua"),
                                           rs("bbb", 2, "demo:2", 3, "ub")], [], NOW))
    assert re.search(r"^Status:\s+॥ Paused$", text, re.M)
    assert re.search(r"⧉ demo-aaa\s+ReplicaSet\s+✔ Healthy\s+1h\s+active$", text, re.M)
    assert re.search(r"⧉ demo-bbb\s+ReplicaSet\s+✔ Healthy\s+1h\s+preview$", text, re.M)
    assert "SetWeight" not in text


@pytest.mark.parametrize("container, expected", [
    ({"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "restartCount": 4},
     ("CrashLoopBackOff", "0/1", 4)),
    ({"state": {"terminated": {"exitCode": 137}}}, ("ExitCode:137", "0/1", 0)),
    ({"state": {"waiting": {"reason": "ContainerCreating"}}}, ("ContainerCreating", "0/1", 0)),
])
def test_pod_status_words(container: dict[str, Any], expected: tuple[str, str, int]) -> None:
    p = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app"}]},
         "status": {"phase": "Running", "containerStatuses": [{"name": "app", **container}]}}
    assert pod_status(p) == expected


def test_replicaset_status() -> None:
    r = rs("aaa", 1, "x", 0, "u")
    assert rs_status(r) == "ScaledDown"
    r["metadata"]["generation"] = 2
    assert rs_status(r) == "Progressing"  # not yet observed by the ReplicaSet controller


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (0.25, "250ms"), (45, "45s"), (90, "1m30s"), (300, "5m"), (3600, "1h"),
    (5400, "1h30m"), (86400 + 3600, "1d1h"), (float("inf"), "forever")])
def test_durations_print_like_kubectl(seconds: float, text: str) -> None:
    assert fmt_duration(seconds) == text


def test_ages_and_step_durations_use_the_same_format() -> None:
    assert age("2024-05-01T10:30:00Z", NOW) == "1h30m"
    text = to_text(detail(summarize(rollout()), [], [], NOW))
    assert re.search(r"·\s+3\s+pause 1h30m$", text, re.M)  # not "pause 5400s"


def test_set_weight_follows_the_steps() -> None:
    s = summarize(rollout())
    assert set_weight(s) == 20
    assert set_weight({**s, "currentStepIndex": 3}) == 50
    assert set_weight({**s, "currentStepIndex": 4}) == 100
    assert set_weight({**s, "aborted": True}) == 0


def test_json_view_carries_pods_and_runs() -> None:
    from rollouts.cli.fetch import RolloutView

    obj = rollout()
    rss = [rs("bbb", 2, "demo:2", 1, "ub")]
    view = RolloutView(obj, summarize(obj), rss, [], [pod("demo-bbb-1", "ub", restarts=1)],
                       [run_info(JUDGE_RUN)])
    d = view.as_dict()
    assert d["pods"] == [{"name": "demo-bbb-1", "replicaSet": "demo-bbb", "status": "Running",
                          "ready": "1/1", "restarts": 1, "createdAt": "2024-05-01T11:55:00Z"}]
    (run,) = d["analysisRuns"]
    assert (run["name"], run["phase"], run["successful"], run["failed"], run["inconclusive"]) == (
        "demo-bbb-0-step1", "Running", 5, 1, 2)
    assert run["verdicts"][0].startswith("judge: continue - ")
    # runs that could not be listed are unknown, not none
    assert RolloutView(obj, summarize(obj), rss, []).as_dict()["analysisRuns"] is None

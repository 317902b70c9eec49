"""Pure pieces of the CLI: exit codes, formatting, undo/set-image helpers, fast start."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from rollouts.api.summary import list_row, settled_phase, summarize
from rollouts.cli import exitcodes
from rollouts.cli.cmd_spec import image_ops, pick_revision, template_of
from rollouts.cli.common import Output, dump
from rollouts.cli.render import age, detail, event_rows, list_table, replica_set_rows, to_text

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def rollout(status: dict[str, Any] | None = None, generation: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "demo", "namespace": "shop", "generation": generation, "uid": "u1",
                     "creationTimestamp": "2024-05-01T11:00:00Z"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "demo"}},
                 "template": {"metadata": {"labels": {"app": "demo"}},
                              "spec": {"containers": [{"name": "app", "image": "demo:2"}]}},
                 "strategy": {"canary": {
                     "canaryService": "c", "stableService": "s",
                     "trafficRouting": {"istio": {"virtualService": {"name": "vs"}}},
                     "steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50},
                               {"pause": {"duration": "30s"}}]}}},
        "status": status if status is not None else {
            "observedGeneration": 2, "phase": "Paused", "message": "paused at step 1",
            "currentPodHash": "bbb", "stableRS": "aaa", "currentStepIndex": 1,
            "canary": {"weights": {"canary": {"weight": 20}, "stable": {"weight": 80}}},
            "readyReplicas": 5, "replicas": 5},
    }


def rs(h: str, rev: int, image: str, replicas: int = 2) -> dict[str, Any]:
    return {"metadata": {"name": f"demo-{h}", "labels": {"rollouts-pod-template-hash": h},
                         "annotations": {"rollouts.dev/revision": str(rev)}},
            "spec": {"replicas": replicas, "template": {
                "metadata": {"labels": {"app": "demo", "rollouts-pod-template-hash": h},
                             "creationTimestamp": None},
                "spec": {"containers": [{"name": "app", "image": image,
                                         "imagePullPolicy": "IfNotPresent"}]}}},
            "status": {"readyReplicas": replicas, "availableReplicas": replicas}}


def test_status_exit_codes() -> None:
    assert exitcodes.status_exit("Healthy") == 0
    assert exitcodes.status_exit("Degraded") == 1
    assert exitcodes.status_exit(None) == exitcodes.TIMEOUT == 3
    assert len({exitcodes.OK, exitcodes.FAILED, exitcodes.USAGE, exitcodes.TIMEOUT,
                exitcodes.KUBE_ERROR, exitcodes.REJECTED}) == 6


def test_settled_phase_waits_for_the_current_generation() -> None:
    healthy = {"observedGeneration": 2, "phase": "Healthy"}
    assert settled_phase(rollout(healthy)) == "Healthy"
    assert settled_phase(rollout(healthy, generation=3)) is None  # stale: the new spec is unseen
    assert settled_phase(rollout({"observedGeneration": 2, "phase": "Degraded"})) == "Degraded"
    assert settled_phase(rollout()) is None  # Paused


def test_summary_marks_steps_and_weights() -> None:
    s = summarize(rollout())
    assert [x["state"] for x in s["steps"]] == ["done", "current", "pending", "pending"]
    assert s["steps"][3]["pauseSeconds"] == 30
    assert s["weights"] == {"canary": 20, "stable": 80}
    assert s["containers"] == [{"name": "app", "image": "demo:2"}]
    assert s["upToDate"] and s["specErrors"] == []
    assert list_row(rollout())["currentStepIndex"] == 1


def test_summary_of_a_broken_object_never_raises() -> None:
    s = summarize({"metadata": {"name": "x"}, "spec": "nonsense", "status": [1]})
    assert s["phase"] == "Unknown" and s["specErrors"]


def test_detail_view_text() -> None:
    text = to_text(detail(summarize(rollout()), [rs("aaa", 1, "demo:1", 4), rs("bbb", 2, "demo:2", 1)],
                          [{"type": "Normal", "reason": "RolloutPaused", "message": "paused",
                            "lastTimestamp": "2024-05-01T11:59:50Z", "count": 2}], now=NOW))
    assert re.search(r"^Status:\s+॥ Paused", text, re.M)
    assert re.search(r"^  SetWeight:\s+20$", text, re.M)
    assert re.search(r"^  ActualWeight:\s+20$", text, re.M)
    lines = text.splitlines()
    current = next(ln for ln in lines if "▶" in ln)
    assert "pause (until promoted)" in current and " 1 " in current
    assert "pause 30s" in text
    assert re.search(r"# revision:1\n.*⧉ demo-aaa\s+ReplicaSet\s+✔ Healthy\s+-\s+stable", text)
    assert re.search(r"# revision:2\n.*⧉ demo-bbb\s+ReplicaSet\s+✔ Healthy\s+-\s+canary", text)
    assert "10s" in text and "(x2)" in text


def test_list_table_and_age() -> None:
    text = to_text(list_table([list_row(rollout())], all_namespaces=True, now=NOW))
    header, row = text.splitlines()[:2]
    assert header.split()[:3] == ["NAMESPACE", "NAME", "PHASE"]
    assert row.split()[:6] == ["shop", "demo", "Paused", "1/4", "20%", "5/4"]
    assert age("2024-05-01T10:00:00Z", NOW) == "2h" and age(None, NOW) == "-"


def test_replica_set_and_event_ordering() -> None:
    rows = replica_set_rows(summarize(rollout()), [rs("aaa", 1, "demo:1"), rs("bbb", 2, "demo:2"),
                                                   rs("zzz", 0, "demo:0")])
    assert [(r["role"], r["revision"]) for r in rows] == [("canary", 2), ("stable", 1), ("old", 0)]
    evs = [{"reason": r, "lastTimestamp": "2024-05-01T11:00:00Z",
            "metadata": {"resourceVersion": rv}} for r, rv in (("B", "20"), ("A", "9"))]
    assert [e["reason"] for e in event_rows(evs)] == ["A", "B"]  # same second: by version


def test_machine_output() -> None:
    assert dump({"a": 1}, Output.json) == '{\n  "a": 1\n}\n'
    assert dump({"a": [1]}, Output.yaml) == "a:\n- 1\n"


def test_undo_picks_the_previous_revision_and_strips_the_hash_label() -> None:
    rss = [rs("aaa", 1, "demo:1"), rs("bbb", 2, "demo:2"), rs("ccc", 3, "demo:3")]
    assert pick_revision(rss, "ccc", None)["metadata"]["name"] == "demo-bbb"
    assert pick_revision(rss, "bbb", None)["metadata"]["name"] == "demo-aaa"
    assert pick_revision(rss, "ccc", 1)["metadata"]["name"] == "demo-aaa"
    with pytest.raises(ValueError, match="no revision 7"):
        pick_revision(rss, "ccc", 7)
    with pytest.raises(ValueError, match="oldest"):
        pick_revision(rss, "aaa", None)
    tmpl = template_of(rss[0])
    assert tmpl["metadata"] == {"labels": {"app": "demo"}}
    assert rss[0]["spec"]["template"]["metadata"]["labels"]["rollouts-pod-template-hash"] == "aaa"


def test_set_image_ops_are_guarded_by_the_container_name() -> None:
    spec = rollout()["spec"]
    assert image_ops(spec, {"app": "demo:9"}) == [
        {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "app"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "demo:9"}]
    with pytest.raises(ValueError, match="no container named web"):
        image_ops(spec, {"web": "x"})


def test_cli_starts_without_heavy_imports() -> None:
    code = ("import sys, rollouts.cli.main as m\n"
            "heavy = ('scipy', 'numpy', 'kubernetes_asyncio', 'fastapi', 'uvicorn', 'aiohttp',"
            " 'analysis', 'rollouts.controller', 'rollouts.server')\n"
            "print(sorted(n for n in sys.modules if n.split('.')[0] in heavy"
            " or n.startswith(heavy)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    r = subprocess.run([sys.executable, "-m", "rollouts.cli.main", "--help"], capture_output=True,
                       text=True, check=True)
    assert "promote" in r.stdout and "Exit codes" in r.stdout

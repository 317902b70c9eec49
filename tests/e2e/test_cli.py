"""The `rollouts` CLI end to end, with the test bed's admin kubeconfig (a real user)."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rollouts.kube.apply import apply
from rollouts.kube.client import JSON, Kube
from testbed.cluster import TestBed
from tests.e2e.judgekit import at_step, cli, deploy
from tests.e2e.kit import (
    REPO,
    ControllerProcess,
    canary_weight,
    event_where,
    eventually,
    get_rollout,
    phase_is,
)


async def test_promote_full_abort_retry_and_status_exit_codes(
        rkube: Kube, namespace: str, testbed: TestBed,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns, kc = namespace, testbed.kubeconfig
    start_controller()
    first = await deploy(rkube, ns)
    assert (r := await cli("status", "demo", "--timeout=30", kubeconfig=kc, namespace=ns)).code == 0, r
    assert r.out.startswith("Healthy")

    r = await cli("set", "image", "demo", "app=demo:2", kubeconfig=kc, namespace=ns)
    assert r.code == 0, r
    await eventually(lambda: at_step(rkube, ns, 1), 60, "paused at step 1 (pause: {})")
    assert await canary_weight(rkube, ns) == 20
    # paused forever: status times out with its own code
    r = await cli("status", "demo", "--timeout=2s", kubeconfig=kc, namespace=ns)
    assert r.code == 3, r
    assert "timed out" in r.err

    r = await cli("promote", "demo", kubeconfig=kc, namespace=ns)
    assert r.code == 0, r
    assert "promoted" in r.out
    await eventually(lambda: at_step(rkube, ns, 3), 60, "paused at step 3 after promote")
    assert await canary_weight(rkube, ns) == 50
    st = (await get_rollout(rkube, ns))["status"]
    user = st["lastAction"]["user"]
    assert user and user != "unknown" and st["lastAction"]["result"] == "Applied"
    await event_where(rkube, ns, "demo", lambda e: e["reason"] == "RolloutPromoted" and user in e["message"])

    # --full skips the remaining steps (setWeight 80 is never set)
    r = await cli("promote", "demo", "--full", "-o", "json", kubeconfig=kc, namespace=ns)
    assert r.code == 0, r
    assert '"result": "Applied"' in r.out and '"full": true' in r.out
    ro = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "Healthy after --full")
    assert ro["status"]["stableRS"] != first["status"]["stableRS"]
    assert await canary_weight(rkube, ns) == 0
    # nothing to promote on a Healthy rollout: rejected, nothing changes
    r = await cli("promote", "demo", kubeconfig=kc, namespace=ns)
    assert r.code == 5 and "no canary is in progress" in r.err, r
    assert "pendingAction" not in (await get_rollout(rkube, ns))["status"]

    # abort returns traffic to stable; status reports Degraded with exit 1
    await cli("set", "image", "demo", "app=demo:3", kubeconfig=kc, namespace=ns)
    await eventually(lambda: at_step(rkube, ns, 1), 60, "paused at step 1 again")
    r = await cli("abort", "demo", kubeconfig=kc, namespace=ns)
    assert r.code == 0, r
    await eventually(lambda: _weight_is(rkube, ns, 0), 15, "weight 0 after abort")
    r = await cli("status", "demo", "--timeout=30", kubeconfig=kc, namespace=ns)
    assert r.code == 1 and r.out.startswith("Degraded"), r
    r = await cli("promote", "demo", kubeconfig=kc, namespace=ns)
    assert r.code == 5 and "retry it first" in r.err, r

    r = await cli("retry", "demo", kubeconfig=kc, namespace=ns)
    assert r.code == 0, r
    await eventually(lambda: at_step(rkube, ns, 1), 60, "steps restarted by retry")
    r = await cli("promote", "demo", "--full", kubeconfig=kc, namespace=ns)
    assert r.code == 0, r
    r = await cli("status", "demo", "--timeout=60", kubeconfig=kc, namespace=ns)
    assert r.code == 0 and r.out.startswith("Healthy"), r

    r = await cli("status", "nope", "--timeout=5", kubeconfig=kc, namespace=ns)
    assert r.code == 4 and "not found" in r.err, r


async def _weight_is(rkube: Kube, ns: str, w: int) -> bool:
    return await canary_weight(rkube, ns) == w


async def test_pause_resume_undo_restart_list_and_get(
        rkube: Kube, namespace: str, testbed: TestBed,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns, kc = namespace, testbed.kubeconfig
    start_controller()
    # the timed pause leaves room for a CLI start on a loaded machine
    # (20 s: a CLI start took more than 8 s at load 16-20 on 2 cores, and the pause ended first)
    await deploy(rkube, ns, [{"setWeight": 20}, {"pause": {"duration": "20s"}}, {"setWeight": 60},
                             {"pause": {}}])
    await cli("set", "image", "demo", "app=demo:2", kubeconfig=kc, namespace=ns)
    await eventually(lambda: _step_is(rkube, ns, 1), 30, "in the timed pause")
    entered = time.monotonic()
    r = await cli("pause", "demo", kubeconfig=kc, namespace=ns)
    assert r.code == 0, r
    assert (await get_rollout(rkube, ns))["status"]["lastAction"]["stepIndex"] == 1, \
        "the pause was applied during the timed pause"
    # the 20 s pause would have ended: the user's pause holds it
    await asyncio.sleep(max(0.0, entered + 22 - time.monotonic()))
    assert await canary_weight(rkube, ns) == 20
    r = await cli("resume", "demo", kubeconfig=kc, namespace=ns)
    assert r.code == 0, r
    await eventually(lambda: at_step(rkube, ns, 3), 30, "at the indefinite pause")

    # four reads of the same paused state: run at once (each CLI start costs ~1-2 s)
    listed, listed_all, got, got_json = await asyncio.gather(
        cli("list", "rollouts", kubeconfig=kc, namespace=ns),
        cli("list", "rollouts", "-A", "-o", "yaml", kubeconfig=kc),
        cli("get", "rollout", "demo", kubeconfig=kc, namespace=ns),
        cli("get", "rollout", "demo", "-o", "json", kubeconfig=kc, namespace=ns))
    r = listed
    assert r.code == 0 and re.search(r"demo\s+Paused\s+3/4\s+60%", r.out), r
    r = listed_all
    assert r.code == 0 and f"namespace: {ns}" in r.out, r
    r = got
    assert r.code == 0, r
    assert re.search(r"▶\s+3\s+pause \(until promoted\)", r.out), r.out
    assert re.search(r"ActualWeight:\s+60\n", r.out), r.out
    assert "\x1b[" not in r.out  # no colour on a pipe
    r = got_json
    assert '"replicaSets"' in r.out and '"events"' in r.out

    # undo (default: the previous revision) copies its template back into spec
    r = await cli("undo", "demo", kubeconfig=kc, namespace=ns)
    assert r.code == 0 and "revision 1" in r.out, r
    ro = await get_rollout(rkube, ns)
    assert ro["spec"]["template"]["spec"]["containers"][0]["image"] == "demo:1"
    assert "rollouts-pod-template-hash" not in ro["spec"]["template"]["metadata"]["labels"]
    # revision 1 is the stable one: the canary ends at once, traffic back on stable
    back = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 30, "Healthy after undo")
    assert back["status"]["currentPodHash"] == back["status"]["stableRS"]
    assert await canary_weight(rkube, ns) == 0
    r = await cli("undo", "demo", "--to-revision=42", kubeconfig=kc, namespace=ns)
    assert r.code == 1 and "no revision 42" in r.err, r

    r = await cli("restart", "demo", kubeconfig=kc, namespace=ns)
    assert r.code == 0 and "replaced one at a time" in r.out, r
    restart_at = (await get_rollout(rkube, ns))["spec"]["restartAt"]

    async def restarted() -> bool:
        st = (await get_rollout(rkube, ns)).get("status") or {}
        pods = await rkube.get_list(f"/api/v1/namespaces/{ns}/pods", labelSelector="app=demo")
        live = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
        return st.get("restartedAt") == restart_at and bool(live) and \
            all(p["metadata"]["creationTimestamp"] >= restart_at for p in live)

    await eventually(restarted, 60, "every pod replaced after restartAt")
    r = await cli("set", "image", "demo", "nope=x:1", kubeconfig=kc, namespace=ns)
    assert r.code == 1 and "no container named nope" in r.err, r


async def _step_is(rkube: Kube, ns: str, idx: int) -> bool:
    return ((await get_rollout(rkube, ns)).get("status") or {}).get("currentStepIndex") == idx


async def test_get_watch_shows_progress_on_a_pipe_and_live_on_a_tty(
        rkube: Kube, namespace: str, testbed: TestBed,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns, kc = namespace, testbed.kubeconfig
    start_controller()
    await deploy(rkube, ns)
    argv = [sys.executable, "-m", "rollouts.cli.main", "get", "rollout", "demo", "--watch",
            "--timeout=120", f"--kubeconfig={kc}", f"--namespace={ns}", "--interval=0.3"]
    out_path = Path(testbed.workdir) / f"watch-{ns}.txt"
    with open(out_path, "wb") as out:  # noqa: ASYNC230 - a file for the child
        watcher = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)  # noqa: ASYNC220
    # and one under a pseudo-terminal: the live view
    master, slave = pty.openpty()
    live = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=REPO,  # noqa: ASYNC220
                            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"})
    os.close(slave)
    tty_chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(master, tty_chunks), daemon=True)
    reader.start()  # a pty's buffer is small: an unread terminal would block the view
    try:
        await cli("set", "image", "demo", "app=demo:2", kubeconfig=kc, namespace=ns)
        await eventually(lambda: at_step(rkube, ns, 1), 60, "paused at step 1")
        await cli("promote", "demo", kubeconfig=kc, namespace=ns)
        await eventually(lambda: at_step(rkube, ns, 3), 60, "paused at step 3")
        await cli("promote", "demo", "--full", kubeconfig=kc, namespace=ns)
        await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "Healthy")
        await asyncio.sleep(1.5)
    finally:
        for p in (watcher, live):
            p.terminate()
            p.wait(10)
    text = out_path.read_text()
    snapshots = text.split("--- demo at ")
    assert len(snapshots) >= 4, text[-3000:]
    assert "\x1b[" not in text  # a pipe gets plain text
    w20, w50 = r"ActualWeight:\s+20\n", r"ActualWeight:\s+50\n"
    for expected in (r"▶\s+1\s+pause \(until promoted\)", w20,
                     r"▶\s+3\s+pause \(until promoted\)", w50, "Healthy", "RolloutPromoted"):
        assert re.search(expected, text), expected
    # the order a user sees: step 1, then step 3, then Healthy
    assert _at(w20, text) < _at(w50, text) < text.rindex("Healthy")
    reader.join(10)
    tty = b"".join(tty_chunks).decode(errors="replace")
    assert "\x1b[" in tty and "pause (until promoted)" in tty and "Healthy" in tty, tty[-2000:]


def _at(pattern: str, text: str) -> int:
    m = re.search(pattern, text)
    assert m, pattern
    return m.start()


def _drain(fd: int, into: list[bytes]) -> None:
    while True:
        try:
            b = os.read(fd, 65536)
        except OSError:  # EIO once the child has exited
            break
        if not b:
            break
        into.append(b)
    os.close(fd)


async def test_kubectl_plugin_entry_point(rkube: Kube, namespace: str, testbed: TestBed,
                                          installed: None) -> None:
    """`kubectl rollouts ...` runs the `kubectl-rollouts` executable found on PATH. There is
    no kubectl binary here, so this runs that executable as kubectl would."""
    exe = Path(sys.executable).parent / "kubectl-rollouts"
    assert exe.exists()
    listed, status = await asyncio.gather(
        cli("list", "rollouts", kubeconfig=testbed.kubeconfig, namespace=namespace, exe=str(exe)),
        cli("status", "missing", "--timeout=1", kubeconfig=testbed.kubeconfig,
            namespace=namespace, exe=str(exe)))
    assert listed.code == 0 and "No rollouts found" in listed.err, listed
    assert status.code == 4, status


async def test_get_shows_the_running_analysis_and_dates_the_last_action(
        rkube: Kube, namespace: str, testbed: TestBed,
        start_controller: Callable[..., ControllerProcess]) -> None:
    """`get rollout` (table and -o json) shows the AnalysisRun status records (it used to
    show "analysis": null), and an action applied to the previous revision is marked as
    such once a new revision is rolling out (it used to read as this canary's)."""
    ns, kc = namespace, testbed.kubeconfig
    start_controller()
    # a metric that always passes and keeps measuring: the run stays Running
    await apply(rkube, {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "always-up"},
        "spec": {"metrics": [{"name": "up", "interval": "1s", "count": 1000,
                              "successCondition": "result[0] == 1",
                              "provider": {"prometheus": {"address": testbed.prometheus_url,
                                                          "query": "vector(1)"}}}]}}, ns)
    await deploy(rkube, ns, [{"setWeight": 20}, {"pause": {}},
                             {"analysis": {"templates": [{"templateName": "always-up"}]}},
                             {"setWeight": 50}])
    await cli("set", "image", "demo", "app=demo:2", kubeconfig=kc, namespace=ns)
    await eventually(lambda: at_step(rkube, ns, 1), 60, "paused at step 1")
    assert (await cli("promote", "demo", kubeconfig=kc, namespace=ns)).code == 0

    async def running_run() -> JSON | None:
        r = await cli("get", "rollout", "demo", "-o", "json", kubeconfig=kc, namespace=ns)
        assert r.code == 0, r
        view = json.loads(r.out)
        runs = (view.get("analysis") or {}).get("runs") or []
        return view if any(x["kind"] == "step" and x["phase"] == "Running" for x in runs) else None

    view = await eventually(running_run, 60, "the step analysis Running in get -o json")
    st = (await get_rollout(rkube, ns))["status"]
    (run,) = [x for x in view["analysis"]["runs"] if x["kind"] == "step"]
    assert run["name"] == st["analysis"]["step"]["name"] and run["current"] is True
    assert run["revision"] == st["currentPodHash"]
    assert view["lastAction"]["action"] == "promote" and view["lastAction"]["current"] is True
    r = await cli("get", "rollout", "demo", kubeconfig=kc, namespace=ns)
    assert re.search(rf"α {run['name']} \(step\)\s+AnalysisRun\s+◌ Running", r.out), r.out
    assert "earlier revision" not in r.out

    # a new revision replaces the canary: the promote and the run belong to the old one
    old = st["currentPodHash"]
    await cli("set", "image", "demo", "app=demo:3", kubeconfig=kc, namespace=ns)

    async def new_revision_paused() -> JSON | None:
        ro = await at_step(rkube, ns, 1)
        return ro if ro is not None and ro["status"]["currentPodHash"] != old else None

    await eventually(new_revision_paused, 60, "the new revision paused at step 1")
    r = await cli("get", "rollout", "demo", "-o", "json", kubeconfig=kc, namespace=ns)
    view = json.loads(r.out)
    assert view["lastAction"]["action"] == "promote" and view["lastAction"]["current"] is False
    assert all(not x["current"] for x in (view["analysis"] or {"runs": []})["runs"])
    r = await cli("get", "rollout", "demo", kubeconfig=kc, namespace=ns)
    assert "promote by " in r.out and f"(on earlier revision {old})" in r.out, r.out

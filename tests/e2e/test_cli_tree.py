"""`rollouts get rollout [--watch]` on a live rollout: the tree a user reads shows the
revisions, the ReplicaSets with their role, their pods with status symbols, and the
AnalysisRun with its ✖ count and why it failed (the watch view used to show no runs and
no pods). Also: rollout-name completion through kubectl's plugin protocol."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from rollouts.kube.apply import apply
from rollouts.kube.client import Kube
from testbed.cluster import TestBed
from tests.e2e.judgekit import cli, deploy
from tests.e2e.kit import REPO, ControllerProcess, eventually, get_rollout, phase_is


async def test_get_rollout_tree_shows_pods_and_the_failed_analysis_run(
        rkube: Kube, namespace: str, testbed: TestBed,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns, kc = namespace, testbed.kubeconfig
    start_controller()
    # a metric that fails at once: the step's run fails and the canary is aborted
    await apply(rkube, {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "always-down"},
        "spec": {"metrics": [{"name": "up", "interval": "1s", "count": 3, "failureLimit": 1,
                              "successCondition": "result[0] == 1",
                              "provider": {"prometheus": {"address": testbed.prometheus_url,
                                                          "query": "vector(0)"}}}]}}, ns)
    first = await deploy(rkube, ns, [{"setWeight": 20},
                                     {"analysis": {"templates": [{"templateName": "always-down"}]}},
                                     {"setWeight": 50}])
    stable = first["status"]["stableRS"]
    argv = [sys.executable, "-m", "rollouts.cli.main", "get", "rollout", "demo", "--watch",
            "--timeout=150s", f"--kubeconfig={kc}", f"--namespace={ns}", "--interval=0.5"]
    out_path = Path(testbed.workdir) / f"tree-{ns}.txt"
    with open(out_path, "wb") as out:  # noqa: ASYNC230 - a file for the child
        watcher = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)  # noqa: ASYNC220
    try:
        assert (await cli("set", "image", "demo", "app=demo:2", kubeconfig=kc, namespace=ns)).code == 0
        ro = await eventually(lambda: phase_is(rkube, ns, "Degraded"), 90, "aborted by the failed run")
        assert ro is not None
        canary = ro["status"]["currentPodHash"]
        r = await cli("get", "rollout", "demo", kubeconfig=kc, namespace=ns)
        if os.environ.get("ROLLOUTS_CLI_SCREENSHOTS"):
            await _screenshot(rkube, ns, Path(os.environ["ROLLOUTS_CLI_SCREENSHOTS"]))
        await asyncio.sleep(2)  # the watcher's next snapshots
    finally:
        watcher.terminate()
        watcher.wait(10)
    assert r.code == 0, r
    text = r.out
    assert re.search(r"^Status:\s+✖ Degraded aborted$", text, re.M), text  # no trailing blanks
    assert re.search(r"^⟳ demo\s+Rollout\s+✖ Degraded", text, re.M), text
    # newest revision first; the stable ReplicaSet keeps its three Running pods
    assert text.index("# revision:2") < text.index("# revision:1"), text
    assert re.search(rf"⧉ demo-{stable}\s+ReplicaSet\s+✔ Healthy\s+\S+\s+stable$", text, re.M), text
    pods = re.findall(rf"□ demo-{stable}-\w+\s+Pod\s+✔ Running\s+\S+\s+ready:1/1", text)
    assert len(pods) == 3, text
    # the failed run, under the canary's revision, with its counts and its reason
    run = re.search(rf"α (demo-{canary}-\S+) \(step\)\s+AnalysisRun\s+✖ Failed\s+\S+\s+(.*)$",
                    text, re.M)
    assert run, text
    assert "✖ 2" in run.group(2), run.group(0)
    assert text.index("# revision:2") < run.start() < text.index("# revision:1")
    assert re.search(r"up: failed - successCondition .* not met", text), text
    # the watch (on a pipe: a snapshot a change) showed the same tree as it happened
    watched = out_path.read_text()
    assert re.search(r"α demo-\S+ \(step\)\s+AnalysisRun\s+(◌ Running|✖ Failed)", watched), watched[-3000:]
    assert re.search(rf"□ demo-{canary}-\w+\s+Pod\s+", watched), watched[-3000:]
    assert re.search(r"up: failed - ", watched), watched[-3000:]

    # `kubectl rollouts promote d<TAB>`: kubectl runs kubectl_complete-rollouts
    exe = Path(sys.executable).parent / "kubectl_complete-rollouts"
    done = subprocess.run([str(exe), "promote", "-n", ns, "d"], capture_output=True, text=True,  # noqa: ASYNC221
                          env={**os.environ, "KUBECONFIG": kc, "ROLLOUTS_COMPLETE_TIMEOUT": "60"},
                          timeout=120)
    assert done.stdout.splitlines() == ["demo\tDegraded", ":4"], done
    assert (await get_rollout(rkube, ns))["status"]["stableRS"] == stable


async def _screenshot(kube: Kube, ns: str, into: Path) -> None:
    """The terminal's picture of this view, for the docs (ROLLOUTS_CLI_SCREENSHOTS=docs)."""
    from rich.console import Console

    from rollouts.cli.fetch import fetch_view

    view = await fetch_view(kube, ns, "demo")
    view.summary["namespace"] = "shop"  # the namespace of a test run says nothing to a reader
    console = Console(record=True, width=120, force_terminal=True, color_system="truecolor",
                      file=io.StringIO())
    console.print(view.renderable())
    (into / "cli-get-rollout.svg").write_text(console.export_svg(title="rollouts get rollout demo"))

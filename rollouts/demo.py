"""`make demo`: the product's main job, end to end, on the local test bed.

Starts (or reuses) the test bed, the traffic simulator and the controller; deploys a demo
app as a Rollout whose steps are judged by the sequential canary judge on Istio metrics in
Prometheus; releases a good version (promoted to 100 %) and then a bad one (more errors,
slower) that is rolled back automatically, printing progress and the explained verdicts.
Then a blue-green release of a second app: the preview Service gets the new version while
users stay on the old one, and a promote switches the active Service.

    python -m rollouts.demo                    # interactive: leaves everything running
    python -m rollouts.demo --non-interactive  # CI: runs to the end, stops what it started
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from rollouts.kube.apply import apply, apply_files, wait_established
from rollouts.kube.client import JSON, SERVICES, Kube, KubeError, make_api_client
from rollouts.kube.signals import request_action

REPO = Path(__file__).resolve().parent.parent
SIM = "simulator.rollouts.dev/"
GOOD = {SIM + "error-rate": "0.005", SIM + "latency-ms": "40"}
BAD = {SIM + "error-rate": "0.03", SIM + "latency-ms": "80"}
console = Console(stderr=False, highlight=False)


def log(msg: str, style: str = "") -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {msg}", style=style)


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ns: str = args.namespace
        self.procs: list[subprocess.Popen[bytes]] = []
        self.bed: Any = None
        self.started_bed = False

    # -- set-up ------------------------------------------------------------------------
    def start_bed(self) -> None:
        from testbed.__main__ import DEFAULT_DIR
        from testbed.cluster import State, TestBed, _alive

        if self.args.testbed_dir:
            self.bed = TestBed.attach(Path(self.args.testbed_dir))
            return
        if (DEFAULT_DIR / "state.json").exists() and all(
                _alive(p.pid) for p in State.load(DEFAULT_DIR).processes):
            log("reusing the running test bed (make testbed)")
            self.bed = TestBed.attach(DEFAULT_DIR)
            return
        log("starting the test bed: etcd, kube-apiserver, controller-manager, scheduler, kwok, "
            "Prometheus, Alertmanager")
        self.bed = TestBed(workdir=DEFAULT_DIR) if not self.args.non_interactive else TestBed()
        self.bed.start()
        self.started_bed = True

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        logdir = Path(self.bed.workdir) / "logs"
        logdir.mkdir(exist_ok=True)
        out = open(logdir / f"demo-{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        p = subprocess.Popen(argv, stdout=subprocess.PIPE if name == "simulator" else out,
                             stderr=out, cwd=REPO, start_new_session=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.procs.append(p)
        return p

    async def install(self, kube: Kube) -> None:
        crds = await apply_files(kube, sorted((REPO / "crds").glob("*.yaml")))
        await apply_files(kube, [REPO / "deploy" / "00-namespace.yaml", REPO / "deploy" / "10-rbac.yaml"])
        await wait_established(kube, crds)
        try:
            await kube.create("/api/v1/namespaces", {"metadata": {"name": self.ns}})
        except KubeError as e:
            if not e.conflict:
                raise

    def start_simulator_and_controller(self) -> None:
        sim = self.spawn("simulator", [sys.executable, "-m", "testbed.simulator",
                                       f"--kubeconfig={self.bed.kubeconfig}", f"--namespace={self.ns}",
                                       "--rps=600", "--seed=42", "--listen=127.0.0.1:0"])
        assert sim.stdout is not None
        line = sim.stdout.readline().decode().strip()  # "listening 127.0.0.1:PORT"
        if not line.startswith("listening "):
            raise SystemExit(f"the traffic simulator did not start: {line!r}")
        self.bed.add_scrape_target(f"demo-sim-{self.ns}", line.split()[1])
        log(f"traffic simulator (Envoy stand-in) on {line.split()[1]}: 600 req/s, scraped by Prometheus")
        self.spawn("controller", [sys.executable, "-m", "rollouts.cli.main", "controller",
                                  f"--kubeconfig={self.bed.kubeconfig}", f"--namespace={self.ns}",
                                  "--listen=127.0.0.1:0"])
        log("controller started")

    # -- the story ---------------------------------------------------------------------
    def manifests(self, behaviour: dict[str, str], image: str) -> list[JSON]:
        docs = [d for d in yaml.safe_load_all((REPO / "examples" / "rollout.yaml").read_text()) if d]
        templates = [d for d in yaml.safe_load_all(
            (REPO / "examples" / "analysis-templates.yaml").read_text()) if d]
        judge = next(t for t in templates if t["metadata"]["name"] == "canary-judge")
        m = judge["spec"]["metrics"][0]
        m["interval"], m["count"] = "5s", 12  # a one-minute budget per analysis step
        m["provider"]["judge"]["minDwellSeconds"] = 20
        ro = next(d for d in docs if d["kind"] == "Rollout")
        ro["spec"]["template"]["metadata"]["annotations"] = behaviour
        ro["spec"]["template"]["spec"]["containers"][0]["image"] = image
        args = [{"name": "canary-service", "value": "podinfo-canary"},
                {"name": "stable-service", "value": "podinfo-stable"},
                {"name": "prometheus-address", "value": self.bed.prometheus_url}]
        step = {"analysis": {"templates": [{"templateName": "canary-judge"}], "args": args}}
        ro["spec"]["strategy"]["canary"]["steps"] = [
            {"setWeight": 20}, copy.deepcopy(step), {"setWeight": 50}, copy.deepcopy(step),
            {"setWeight": 80}, {"pause": {"duration": "5s"}}]
        ro["spec"]["strategy"]["canary"]["scaleDownDelaySeconds"] = 5
        return [*templates, *docs]

    async def release(self, kube: Kube, behaviour: dict[str, str], image: str) -> None:
        for doc in self.manifests(behaviour, image):
            await apply(kube, doc, self.ns)

    async def follow(self, kube: Kube, until: set[str], timeout: float) -> JSON:
        path = f"/apis/rollouts.dev/v1alpha1/namespaces/{self.ns}/rollouts/podinfo"
        last = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ro = await kube.get(path)
            st = ro.get("status") or {}
            w = ((st.get("canary") or {}).get("weights") or {}).get("canary", {}).get("weight", 0)
            line = (st.get("phase"), st.get("currentStepIndex"), w, st.get("message", ""))
            if line != last:
                last = line
                n = len(ro["spec"]["strategy"]["canary"]["steps"])
                colours = {"Healthy": "green", "Degraded": "red", "Paused": "yellow"}
                style = colours.get(str(st.get("phase")), "")
                log(f"{st.get('phase', '?'):<11} step {st.get('currentStepIndex')}/{n}  canary weight "
                    f"{w:>3}%  {st.get('message', '')}", style)
            if st.get("observedGeneration") == ro["metadata"]["generation"] and st.get("phase") in until \
                    and (st.get("phase") != "Healthy" or st.get("stableRS") == st.get("currentPodHash")):
                return ro
            await asyncio.sleep(0.5)
        raise SystemExit(f"the rollout did not reach {until} within {timeout:.0f}s")

    async def verdicts(self, kube: Kube, hash_: str) -> None:
        data = await kube.get_list(f"/apis/rollouts.dev/v1alpha1/namespaces/{self.ns}/analysisruns")
        for r in sorted(data["items"], key=lambda r: r["metadata"]["creationTimestamp"]):
            if r["metadata"]["labels"].get("rollouts-pod-template-hash") != hash_:
                continue
            st = r.get("status") or {}
            style = "green" if st.get("phase") == "Successful" else "red"
            console.print(f"    [bold]{r['metadata']['name']}[/bold]: [{style}]{st.get('phase')}[/{style}]"
                          f" - {st.get('message', '')}")

    async def run(self) -> int:
        self.start_bed()
        api = await make_api_client(self.bed.kubeconfig)
        kube = Kube(api)
        try:
            await self.install(kube)
            self.start_simulator_and_controller()
            console.rule("[bold]1. first deploy (v1): no previous version, steps skipped")
            await self.release(kube, GOOD, "podinfo:1.0.0")
            await self.follow(kube, {"Healthy"}, 120)
            await asyncio.sleep(5)  # let Prometheus collect some stable history
            console.rule("[bold]2. release v2, a good version: judged at each step, promoted")
            await self.release(kube, GOOD, "podinfo:2.0.0")  # same behaviour, new image
            ro = await self.follow(kube, {"Healthy", "Degraded"}, 420)
            await self.verdicts(kube, ro["status"]["currentPodHash"])
            if ro["status"]["phase"] != "Healthy":
                log("unexpected: the good version was rolled back", "red")
                return 1
            log("v2 promoted to 100 %", "bold green")
            console.rule("[bold]3. release v3, a bad version (6x errors, 2x slower): rolled back")
            await self.release(kube, BAD, "podinfo:3.0.0")
            ro = await self.follow(kube, {"Healthy", "Degraded"}, 300)
            await self.verdicts(kube, ro["status"]["currentPodHash"])
            if ro["status"]["phase"] != "Degraded":
                log("unexpected: the bad version was promoted", "red")
                return 1
            log("v3 rolled back automatically: all traffic is on v2", "bold green")
            if await self.blue_green(kube) != 0:
                return 1
            self.explain()
            if not self.args.non_interactive:
                console.print("\nPress Ctrl-C to stop the demo's controller and simulator "
                              "(the test bed keeps running until `make testbed-down`).")
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                await stop.wait()
            return 0
        finally:
            await api.close()
            self.stop()

    # -- blue-green --------------------------------------------------------------------
    BG = "checkout"

    def bg_manifests(self, image: str) -> list[JSON]:
        app = self.BG
        svcs: list[JSON] = [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{app}-{role}"},
             "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 9898}]}}
            for role in ("active", "preview")]
        ro: JSON = {
            "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": app},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": app}},
                     "template": {"metadata": {"labels": {"app": app}},
                                  "spec": {"containers": [{"name": app, "image": image}]}},
                     "strategy": {"blueGreen": {
                         "activeService": f"{app}-active", "previewService": f"{app}-preview",
                         "autoPromotionEnabled": False, "scaleDownDelaySeconds": 5}}}}
        return [*svcs, ro]

    async def bg_wait(self, kube: Kube, phase: str, timeout: float) -> JSON:
        path = f"/apis/rollouts.dev/v1alpha1/namespaces/{self.ns}/rollouts/{self.BG}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ro = await kube.get(path)
            st = ro.get("status") or {}
            if st.get("observedGeneration") == ro["metadata"]["generation"] and st.get("phase") == phase:
                return ro
            await asyncio.sleep(0.5)
        raise SystemExit(f"the blue-green rollout did not reach {phase} within {timeout:.0f}s")

    async def bg_selectors(self, kube: Kube) -> str:
        out = []
        for role in ("active", "preview"):
            svc = await kube.get(SERVICES.path(self.ns, f"{self.BG}-{role}"))
            out.append(f"{role} -> {(svc['spec'].get('selector') or {}).get('rollouts-pod-template-hash')}")
        return ", ".join(out)

    async def blue_green(self, kube: Kube) -> int:
        console.rule("[bold]4. blue-green (checkout): v1, then v2 on the preview Service, promote")
        for doc in self.bg_manifests("checkout:1.0.0"):
            await apply(kube, doc, self.ns)
        ro = await self.bg_wait(kube, "Healthy", 120)
        v1 = ro["status"]["stableRS"]
        log(f"checkout v1 ({v1}) Healthy: {await self.bg_selectors(kube)}")
        for doc in self.bg_manifests("checkout:2.0.0"):
            await apply(kube, doc, self.ns)
        ro = await self.bg_wait(kube, "Paused", 120)
        v2 = ro["status"]["currentPodHash"]
        log(f"v2 ({v2}) ready on the preview, users still on v1: {await self.bg_selectors(kube)}",
            "yellow")
        await request_action(kube, self.ns, self.BG, "promote", user="demo")
        log("promote recorded")
        ro = await self.bg_wait(kube, "Healthy", 120)
        if ro["status"].get("stableRS") != v2:
            log("unexpected: the blue-green rollout did not switch to v2", "red")
            return 1
        log(f"blue-green: active Service switched to v2: {await self.bg_selectors(kube)}; "
            "v1 scales down in 5 s", "bold green")
        return 0

    def explain(self) -> None:
        b = self.bed
        console.rule("[bold]explore")
        console.print(f"""  export KUBECONFIG={b.kubeconfig}
  rollouts get rollout podinfo -n {self.ns}         # steps, weights, ReplicaSets, analysis
  rollouts get rollout checkout -n {self.ns}        # blue-green: active and preview Services
  rollouts list rollouts -A
  Prometheus:   {b.prometheus_url}/graph
                (try: sum by (destination_service_name) (rate(istio_requests_total[1m])))
  Alertmanager: {b.alertmanager_url}
  logs:         {b.workdir}/logs/""")

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        if self.bed is not None:
            self.bed.remove_scrape_target(f"demo-sim-{self.ns}")
            if self.started_bed and self.args.non_interactive:
                self.bed.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rollouts.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--non-interactive", action="store_true",
                    help="run to the end and stop everything the demo started (for CI)")
    ap.add_argument("--namespace", default="demo")
    ap.add_argument("--testbed-dir", help="attach to a running test bed's run directory")
    args = ap.parse_args(argv)
    try:
        return asyncio.run(Demo(args).run())
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

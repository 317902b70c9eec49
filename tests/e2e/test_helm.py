"""The Helm chart (deploy/helm/rollouts) and the kustomize base (issue 15).

What a user checks: `helm lint` passes; `helm template` with the defaults renders at least
what the plain manifests in deploy/ declare (same objects, same rules, same Deployment
settings); the options render what they say (namespaced RBAC, TLS Secret, plain metrics,
ServiceMonitor, PrometheusRule, Grafana dashboard ConfigMap, notification ConfigMap);
the API server accepts every rendered object (`--dry-run=server`); and `helm install`
gives a release whose ServiceAccount and RBAC are enough for the controller to run a
rollout.

Where things run: helm (built from its Go module, testbed/setup.d/75-helm.sh) and kubectl
talk to the test bed's API server. The bed's pods are kwok's: no container runs, so the
installed Deployment's controller is started here as a process, with the release's
container arguments and a token of the release's ServiceAccount.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rollouts.kube.apply import apply
from rollouts.kube.client import Kube
from tests.e2e.judgekit import free_port
from tests.e2e.kit import (
    REPO,
    canary_weight,
    eventually,
    phase_is,
    rollout,
    services,
    set_image,
    virtual_service,
)

CHART = REPO / "deploy" / "helm" / "rollouts"
KUSTOMIZE = REPO / "deploy" / "kustomize"
CACHE = Path(os.environ.get("TESTBED_CACHE", Path.home() / ".cache" / "rollouts-testbed"))
Obj = dict[str, Any]


def _helm_binary() -> str:
    found = sorted(CACHE.glob("helm-v*/helm"))
    if not found:
        pytest.fail(f"no helm under {CACHE}: testbed/setup.d/75-helm.sh builds it (make setup)")
    return str(found[-1])


HELM = _helm_binary() if CACHE.exists() else "helm"


def helm(*args: str, kubeconfig: str | None = None, check: bool = True,
         stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELM_CACHE_HOME": str(CACHE / "helm-home" / "cache"),
           "HELM_CONFIG_HOME": str(CACHE / "helm-home" / "config"),
           "HELM_DATA_HOME": str(CACHE / "helm-home" / "data")}
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
    r = subprocess.run([HELM, *args], capture_output=True, text=True, env=env, input=stdin,
                       timeout=300)
    if check:
        assert r.returncode == 0, f"helm {' '.join(args)}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


def render(*sets: str, release: str = "rollouts", ns: str = "rollouts-system",
           crds: bool = False) -> list[Obj]:
    args = ["template", release, str(CHART), "-n", ns, *(["--include-crds"] if crds else [])]
    for s in sets:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def find(objs: list[Obj], kind: str, name: str) -> Obj:
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind}/{name}: {len(hits)} rendered"
    return hits[0]


def covers(want: Any, got: Any, path: str = "") -> list[str]:
    """Where ``got`` lacks something of ``want``: every key of a mapping and every item of a
    list of ``want`` must be in ``got`` (list items anywhere in the list)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: {got!r} is not a mapping"]
        return [m for k, v in want.items()
                for m in ([f"{path}.{k}: missing"] if k not in got else covers(v, got[k], f"{path}.{k}"))]
    if isinstance(want, list):
        if not isinstance(got, list):
            return [f"{path}: {got!r} is not a list"]
        return [f"{path}[{i}]: {w!r} not in {got!r}" for i, w in enumerate(want)
                if not any(not covers(w, g) for g in got)]
    return [] if want == got else [f"{path}: {got!r} != {want!r}"]


def test_helm_lint_passes_for_the_defaults_and_every_option() -> None:
    helm("lint", str(CHART))
    helm("lint", str(CHART), "--set", "scope=namespace", "--set", "metrics.secure=false",
         "--set", "metrics.serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true",
         "--set", "grafanaDashboard.enabled=true", "--set", "api.tls.secretName=rollouts-tls",
         "--set", "notifications.create=true")


def test_the_chart_renders_what_the_plain_manifests_in_deploy_declare() -> None:
    objs = render()
    plain = [d for f in sorted((REPO / "deploy").glob("*.yaml"))
             for d in yaml.safe_load_all(f.read_text()) if d]
    assert len(plain) > 10
    for want in plain:
        if want["kind"] == "Namespace":  # helm install --create-namespace makes it
            continue
        got = find(objs, want["kind"], want["metadata"]["name"])
        problems = covers({k: v for k, v in want.items() if k != "metadata"}, got)
        problems += covers(want["metadata"].get("namespace"), got["metadata"].get("namespace"))
        assert not problems, f"{want['kind']}/{want['metadata']['name']}: {problems}"
    # and the RBAC rules are exactly deploy/'s, not only a superset
    for o in plain:
        if o["kind"] in ("ClusterRole", "Role"):
            assert find(objs, o["kind"], o["metadata"]["name"])["rules"] == o["rules"]


def test_the_options_render_what_they_say() -> None:
    objs = render("scope=namespace", "metrics.secure=false", "metrics.serviceMonitor.enabled=true",
                  "prometheusRule.enabled=true", "grafanaDashboard.enabled=true",
                  "api.tls.secretName=rollouts-tls", "notifications.create=true",
                  "notifications.data.subscriptions=- {triggers: ['*']\\, receivers: [hook]}",
                  "image.repository=registry.example/rollouts", "image.tag=9.9.9", "replicas=3",
                  release="ops", ns="ops-system")
    dep = find(objs, "Deployment", "ops-controller")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "registry.example/rollouts:9.9.9" and dep["spec"]["replicas"] == 3
    for arg in ("--namespace=ops-system", "--lease-namespace=ops-system", "--leader-elect",
                "--tls-cert-file=/etc/rollouts/tls/tls.crt", "--metrics-listen=0.0.0.0:8090",
                "--tls-private-key-file=/etc/rollouts/tls/tls.key"):
        assert arg in c["args"], (arg, c["args"])
    volumes = dep["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": "rollouts-tls"}} in volumes
    # namespaced: the controller's resources in a Role; what a Role cannot grant stays cluster-wide
    role = find(objs, "Role", "ops-controller")
    assert role["metadata"]["namespace"] == "ops-system"
    ns_res = {r for rule in role["rules"] for r in rule.get("resources", [])}
    assert "rollouts" in ns_res and "replicasets" in ns_res
    assert not ns_res & {"clusteranalysistemplates", "tokenreviews", "subjectaccessreviews"}
    cluster_res = {r for rule in find(objs, "ClusterRole", "ops-controller")["rules"]
                   for r in rule.get("resources", [])}
    assert cluster_res == {"clusteranalysistemplates", "tokenreviews", "subjectaccessreviews"}
    assert find(objs, "ClusterRole", "ops-metrics-reader")["rules"][0]["nonResourceURLs"] == ["/metrics"]
    assert find(objs, "ClusterRole", "ops-view")["metadata"]["labels"][
        "rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    # Services: the HTTP API and the plain metrics port
    api = find(objs, "Service", "ops-controller")
    assert api["spec"]["ports"][0]["targetPort"] == "https"
    assert find(objs, "Service", "ops-controller-metrics")["spec"]["ports"][0]["targetPort"] == "metrics"
    sm = find(objs, "ServiceMonitor", "ops-controller")
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    # the PrometheusRule carries deploy/monitoring/prometheus-rules.yml's groups unchanged
    rules = yaml.safe_load((REPO / "deploy/monitoring/prometheus-rules.yml").read_text())
    assert find(objs, "PrometheusRule", "ops-controller")["spec"]["groups"] == rules["groups"]
    dash = find(objs, "ConfigMap", "ops-controller-dashboard")
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dash["data"]["rollouts.json"]) == json.loads(
        (REPO / "deploy/monitoring/grafana-dashboard.json").read_text())
    notes = find(objs, "ConfigMap", "rollouts-notifications")
    assert yaml.safe_load(notes["data"]["subscriptions"]) == [{"triggers": ["*"], "receivers": ["hook"]}]


@pytest.mark.parametrize(("sets", "message"), [
    (["scope=everywhere"], "scope must be cluster or namespace"),
    (["leaderElection.enabled=false"], "more than one replica needs leaderElection.enabled"),
    (["watchNamespace=shop"], "watchNamespace is only used with scope: namespace"),
])
def test_bad_values_are_refused_with_a_clear_message(sets: list[str], message: str) -> None:
    args = ["template", "rollouts", str(CHART)]
    for s in sets:
        args += ["--set", s]
    r = helm(*args, check=False)
    assert r.returncode != 0 and message in r.stderr, r.stderr


def test_the_kustomize_base_is_the_rendered_chart_and_the_overlays_build() -> None:
    base = [d for d in yaml.safe_load_all((KUSTOMIZE / "base" / "rollouts.yaml").read_text()) if d]
    assert base == render(), \
        "deploy/kustomize/base/rollouts.yaml is stale: run deploy/kustomize/generate.sh"
    # the base takes the CRDs from crds/Kustomization: every file of crds/
    listed = yaml.safe_load((REPO / "crds" / "Kustomization").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    r = subprocess.run(["kubectl", "kustomize", str(KUSTOMIZE / "base")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(r.stdout) if d]
    assert kinds.count("CustomResourceDefinition") >= 3 and "Namespace" in kinds
    for overlay in sorted((KUSTOMIZE / "overlays").iterdir()):
        r = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, f"{overlay.name}: {r.stderr}"
        assert any(d and d["kind"] == "Deployment" for d in yaml.safe_load_all(r.stdout))


# --- on the test bed --------------------------------------------------------------------

def _kubectl_apply_dry_run(kubeconfig: str, manifest: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "apply", "--dry-run=server",
                           "-f", "-"], input=manifest, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("scope", ["cluster", "namespace"])
async def test_the_api_server_accepts_the_rendered_chart(testbed: Any, namespace: str,
                                                         installed: None, scope: str) -> None:
    release = f"dry{uuid.uuid4().hex[:6]}"
    out = helm("template", release, str(CHART), "-n", namespace, "--set", f"scope={scope}",
               "--set", "api.tls.secretName=x-tls", "--set", "metrics.secure=false",
               "--set", "notifications.create=true").stdout
    r = _kubectl_apply_dry_run(testbed.kubeconfig, out)
    assert r.returncode == 0, r.stderr
    created = [line for line in r.stdout.splitlines() if "(server dry run)" in line]
    assert any(line.startswith("deployment.apps/") for line in created), r.stdout
    assert len(created) == len([d for d in yaml.safe_load_all(out) if d]), r.stdout


async def test_with_monitoring_only_the_prometheus_operator_kinds_need_their_crds(
        testbed: Any, namespace: str, installed: None) -> None:
    """The test bed has no Prometheus Operator: its two kinds are refused for want of their
    CRDs, and every other object (the Grafana dashboard ConfigMap among them) is accepted."""
    out = helm("template", f"dry{uuid.uuid4().hex[:6]}", str(CHART), "-n", namespace,
               "--set", "metrics.serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true",
               "--set", "grafanaDashboard.enabled=true").stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    r = _kubectl_apply_dry_run(testbed.kubeconfig, out)
    refused = [line for line in r.stderr.splitlines() if "no matches for kind" in line]
    others = [line for line in r.stderr.splitlines()
              if line.strip() and line not in refused and "ensure CRDs are installed" not in line]
    assert r.returncode != 0 and len(refused) == 2 and not others, r.stderr
    assert any("ServiceMonitor" in line for line in refused), r.stderr
    assert any("PrometheusRule" in line for line in refused), r.stderr
    created = [line for line in r.stdout.splitlines() if "(server dry run)" in line]
    assert len(created) == len(docs) - 2, r.stdout
    assert any(line.startswith("configmap/") and "-dashboard" in line for line in created), r.stdout


def _start_as_the_pod_would(testbed: Any, release: str, ns: str, args: list[str], token: str,
                            mport: int) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """The controller with the Deployment's arguments and the ServiceAccount's token; only
    the addresses are this machine's (kwok runs no container)."""
    cfg = yaml.safe_load(Path(testbed.kubeconfig).read_text())
    cfg["users"] = [{"name": u["name"], "user": {"token": token}} for u in cfg["users"]]
    kc = Path(testbed.workdir) / f"helm-{release}.kubeconfig"
    kc.write_text(yaml.safe_dump(cfg))
    argv = [a if not a.startswith("--listen=") else f"--listen=127.0.0.1:{free_port()}"
            for a in args]
    log = Path(testbed.workdir) / "logs" / f"helm-{release}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rollouts.cli.main", *argv, f"--kubeconfig={kc}",
             f"--metrics-listen=127.0.0.1:{mport}", "--resync-seconds=5"],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "POD_NAMESPACE": ns})
    return proc, log, kc


@pytest.fixture
def release(testbed: Any, namespace: str) -> Iterator[str]:
    name = f"r{uuid.uuid4().hex[:6]}"
    yield name
    helm("uninstall", name, "-n", namespace, "--wait", "--timeout", "60s",
         kubeconfig=testbed.kubeconfig, check=False)


async def test_helm_install_gives_a_controller_that_runs_a_rollout(
        testbed: Any, rkube: Kube, namespace: str, installed: None, release: str) -> None:
    ns = namespace
    helm("install", release, str(CHART), "-n", ns, "--set", "scope=namespace",
         kubeconfig=testbed.kubeconfig)
    r = helm("status", release, "-n", ns, "-o", "json", kubeconfig=testbed.kubeconfig)
    assert json.loads(r.stdout)["info"]["status"] == "deployed"
    dep = await rkube.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{release}-controller")
    pod = dep["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert f"--namespace={ns}" in args and "--leader-elect" in args

    # the release's ServiceAccount, as the pod would have it
    sa = pod["serviceAccountName"]
    tr = await rkube.create(f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
                            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                             "spec": {"expirationSeconds": 3600}})
    mport = free_port()
    proc, log, kc = _start_as_the_pod_would(testbed, release, ns, args, tr["status"]["token"], mport)
    try:
        async def leading() -> bool:
            try:
                async with httpx.AsyncClient(timeout=3) as c:
                    d = (await c.get(f"http://127.0.0.1:{mport}/readyz?verbose")).json()
                return bool(d.get("leader") and d.get("active"))
            except (httpx.HTTPError, ValueError):
                return False
        await eventually(leading, 60, f"the release's controller leading (log {log})")
        for obj in [*services(), virtual_service()]:
            await apply(rkube, obj, ns)
        await apply(rkube, rollout([{"setWeight": 40}, {"pause": {}}], replicas=2), ns)
        await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy Healthy")
        await set_image(rkube, ns, "demo:2")

        async def weight_40() -> bool:
            return await canary_weight(rkube, ns) == 40
        await eventually(weight_40, 60, "canary weight 40 under the release's RBAC")
        lease = await rkube.get(f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/rollouts-controller")
        assert str(proc.pid) in lease["spec"]["holderIdentity"]
        assert "403" not in log.read_text(errors="replace"), log.read_text()[-3000:]
    except AssertionError as e:
        raise AssertionError(f"{e}\ncontroller log:\n{log.read_text(errors='replace')[-3000:]}") from e
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        kc.unlink(missing_ok=True)
    r = helm("uninstall", release, "-n", ns, "--wait", "--timeout", "60s", kubeconfig=testbed.kubeconfig)
    role = f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{release}-controller"

    async def role_gone() -> bool:
        return await rkube.get_or_none(role) is None
    await eventually(role_gone, 30, "the release's ClusterRole removed by helm uninstall")

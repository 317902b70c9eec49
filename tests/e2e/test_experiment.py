"""Experiments on the test bed, as a user sees them with kubectl: the Experiment's phase,
its ReplicaSets and pods, its AnalysisRuns (issue 13, "Experiments").

The analyses use Argo's web provider against a small health server of the test's own
(127.0.0.1, free port) that answers 1 (good) or 0 (bad).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator

import pytest

from rollouts.api.status import parse_time
from rollouts.kube.apply import apply
from rollouts.kube.client import JSON, PODS, REPLICASETS, SERVICES, Kube
from testbed.cluster import TestBed
from tests.e2e.judgekit import cli
from tests.e2e.kit import (
    HASH,
    ControllerProcess,
    HealthServer,
    analysis_runs,
    deploy,
    events_of,
    eventually,
    get_rollout,
    health_template,
    phase_is,
    rollout,
    services,
    serving,
    virtual_service,
)

EXPERIMENTS = "/apis/rollouts.dev/v1alpha1/namespaces/{ns}/experiments"


@pytest.fixture
def health() -> Iterator[HealthServer]:
    with serving(HealthServer()) as h:
        yield h


def template(name: str, replicas: int) -> JSON:
    labels = {"app": "demo", "color": name}
    return {"name": name, "replicas": replicas, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "app", "image": f"demo:{name}"}]}}}


def experiment(name: str, duration: str = "6s") -> JSON:
    return {"apiVersion": "rollouts.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": name},
            "spec": {"duration": duration, "scaleDownDelaySeconds": 2,
                     "templates": [template("baseline", 1), template("canary", 2)],
                     "analyses": [{"name": "health", "templateName": "health", "args": [
                         {"name": "hash", "value": "{{templates.canary.podTemplateHash}}"}]}]}}


class PhaseRecorder:
    """Every phase of the Experiment a user polling it could have seen, in order."""

    def __init__(self, kube: Kube, ns: str, name: str) -> None:
        self.kube, self.path = kube, EXPERIMENTS.format(ns=ns) + f"/{name}"
        self.phases: list[str] = []
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            ex = await self.kube.get_or_none(self.path)
            phase = ((ex or {}).get("status") or {}).get("phase")
            if phase and (not self.phases or self.phases[-1] != phase):
                self.phases.append(phase)
            await asyncio.sleep(0.2)

    def start(self) -> PhaseRecorder:
        self.task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def _experiment(kube: Kube, ns: str, name: str) -> JSON:
    return await kube.get(EXPERIMENTS.format(ns=ns) + f"/{name}")


async def _ended(kube: Kube, ns: str, name: str) -> JSON | None:
    ex = await _experiment(kube, ns, name)
    return ex if (ex.get("status") or {}).get("phase") in (
        "Successful", "Failed", "Error", "Inconclusive") else None


async def _owned_replica_sets(kube: Kube, ns: str, uid: str) -> dict[str, JSON]:
    data = await kube.get_list(REPLICASETS.path(ns))
    return {rs["metadata"]["labels"]["rollouts.dev/experiment-template"]: rs
            for rs in data["items"]
            if any(o["uid"] == uid for o in rs["metadata"].get("ownerReferences") or [])}


async def _all_scaled_to_zero(kube: Kube, ns: str, uid: str) -> dict[str, JSON] | None:
    rss = await _owned_replica_sets(kube, ns, uid)
    return rss if rss and all(rs["spec"]["replicas"] == 0 for rs in rss.values()) else None


async def test_experiment_runs_its_templates_for_the_duration_then_succeeds_and_scales_down(
        rkube: Kube, namespace: str, health: HealthServer, testbed: TestBed,
        start_controller: Callable[..., ControllerProcess]) -> None:
    """Two templates, one analysis that passes, a 6 s duration: the user sees Pending ->
    Running -> Successful, a ReplicaSet per template named <experiment>-<template>-<hash>
    whose pods become available, the AnalysisRun measuring the canary template's hash and
    Successful, and afterwards both ReplicaSets at 0 replicas."""
    ns = namespace
    start_controller()
    await apply(rkube, health_template(health.url), ns)
    phases = PhaseRecorder(rkube, ns, "exp").start()
    await apply(rkube, experiment("exp"), ns)
    try:
        running = await eventually(lambda: _phase(rkube, ns, "exp", "Running"), 40,
                                   "the experiment Running")
        assert running is not None
        uid = running["metadata"]["uid"]
        st = running["status"]
        assert st["availableAt"]
        tstatus = {t["name"]: t for t in st["templateStatuses"]}
        assert tstatus["baseline"]["availableReplicas"] == 1
        assert tstatus["canary"]["availableReplicas"] == 2
        rss = await _owned_replica_sets(rkube, ns, uid)
        assert set(rss) == {"baseline", "canary"}
        for tname, rs in rss.items():
            h = rs["metadata"]["labels"][HASH]
            assert rs["metadata"]["name"] == f"exp-{tname}-{h}"
            assert tstatus[tname]["podTemplateHash"] == h
            assert rs["spec"]["template"]["metadata"]["labels"]["rollouts.dev/experiment-template"] == tname
        pods = (await rkube.get_list(PODS.path(ns), labelSelector="rollouts.dev/experiment=exp"))["items"]
        assert len(pods) == 3
        ended = await eventually(lambda: _ended(rkube, ns, "exp"), 40, "the experiment ended")
        assert ended is not None
        await asyncio.sleep(0.5)
    finally:
        await phases.stop()
    assert ended["status"]["phase"] == "Successful", ended["status"]
    # Pending may pass faster than one poll; the order never changes
    assert phases.phases in (["Pending", "Running", "Successful"], ["Running", "Successful"]), \
        phases.phases
    reasons = [e["reason"] for e in await events_of(rkube, ns, "exp")]
    assert reasons.index("ExperimentRunning") < reasons.index("ExperimentSuccessful"), reasons
    runs = await analysis_runs(rkube, ns)
    assert len(runs) == 1 and runs[0]["metadata"]["name"] == "exp-health"
    assert runs[0]["status"]["phase"] == "Successful"
    assert {a["name"]: a["value"] for a in runs[0]["spec"]["args"]} == {
        "hash": rss["canary"]["metadata"]["labels"][HASH]}
    assert runs[0]["metadata"]["ownerReferences"][0]["kind"] == "Experiment"
    assert [(r["name"], r["analysisRun"], r["phase"]) for r in ended["status"]["analysisRuns"]] == [
        ("health", "exp-health", "Successful")]
    done = next(c for c in ended["status"]["conditions"] if c["type"] == "Progressing")
    assert (done["status"], done["reason"]) == ("False", "ExperimentCompleted")
    finished, available = parse_time(done["lastTransitionTime"]), parse_time(ended["status"]["availableAt"])
    assert finished is not None and available is not None
    assert (finished - available).total_seconds() >= 6  # the duration, counted from availableAt
    await eventually(lambda: _all_scaled_to_zero(rkube, ns, uid), 20,
                     "the ReplicaSets scaled to 0 after scaleDownDelaySeconds")
    # what `rollouts get experiment` tells the user
    r = await cli("get", "experiment", "exp", "-o", "json", kubeconfig=testbed.kubeconfig, namespace=ns)
    assert r.code == 0, r
    view = json.loads(r.out)
    assert view["phase"] == "Successful"
    assert [(t["name"], t["status"]) for t in view["templates"]] == [
        ("baseline", "Successful"), ("canary", "Successful")]
    r = await cli("get", "experiment", "exp", kubeconfig=testbed.kubeconfig, namespace=ns)
    assert r.code == 0 and "Status:       Successful" in r.out and "exp-health" in r.out, r
    r = await cli("get", "experiment", "nope", kubeconfig=testbed.kubeconfig, namespace=ns)
    assert r.code == 4, r  # not found


async def test_experiment_whose_analysis_fails_ends_failed_before_its_duration(
        rkube: Kube, namespace: str, health: HealthServer,
        start_controller: Callable[..., ControllerProcess]) -> None:
    """The analysis fails: the experiment ends Failed with the run's message long before its
    10-minute duration, and its ReplicaSets are scaled to 0."""
    ns = namespace
    health.answer = 0
    start_controller()
    await apply(rkube, health_template(health.url), ns)
    await apply(rkube, experiment("bad", duration="10m"), ns)
    ended = await eventually(lambda: _ended(rkube, ns, "bad"), 40, "the experiment ended")
    assert ended is not None
    st = ended["status"]
    assert st["phase"] == "Failed", st
    assert st["analysisRuns"][0]["phase"] == "Failed"
    assert st["availableAt"]  # it did run its templates first
    await eventually(lambda: _all_scaled_to_zero(rkube, ns, ended["metadata"]["uid"]), 20,
                     "the ReplicaSets scaled to 0")


async def _phase(kube: Kube, ns: str, name: str, phase: str) -> JSON | None:
    ex = await kube.get_or_none(EXPERIMENTS.format(ns=ns) + f"/{name}")
    if ex is None:
        return None
    st = ex.get("status") or {}
    if st.get("phase") in ("Failed", "Error", "Inconclusive"):
        raise AssertionError(f"the experiment ended {st.get('phase')}: {st.get('message')}")
    return ex if st.get("phase") == phase else None


async def test_experiment_without_duration_runs_until_terminated_with_its_template_service(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    """No duration and no required analysis: it keeps running; the template with ``service``
    gets a Service selecting exactly its pods. The user sets spec.terminate: the experiment
    ends Successful, its ReplicaSets go to 0 and the Service is removed."""
    ns = namespace
    start_controller()
    ex = experiment("open")
    del ex["spec"]["duration"], ex["spec"]["analyses"]
    ex["spec"]["scaleDownDelaySeconds"] = 0
    canary = ex["spec"]["templates"][1]
    canary["service"] = {"name": "open-canary"}
    canary["template"]["spec"]["containers"][0]["ports"] = [{"name": "http", "containerPort": 8080}]
    await apply(rkube, ex, ns)
    running = await eventually(lambda: _phase(rkube, ns, "open", "Running"), 40, "Running")
    assert running is not None
    uid = running["metadata"]["uid"]
    svc = await eventually(lambda: rkube.get_or_none(SERVICES.path(ns, "open-canary")), 20,
                           "the template's Service")
    assert svc is not None
    tstatus = {t["name"]: t for t in running["status"]["templateStatuses"]}
    assert svc["spec"]["selector"][HASH] == tstatus["canary"]["podTemplateHash"]
    assert [p["port"] for p in svc["spec"]["ports"]] == [8080]
    selected = (await rkube.get_list(PODS.path(ns), labelSelector=",".join(
        f"{k}={v}" for k, v in svc["spec"]["selector"].items())))["items"]
    assert len(selected) == 2  # the canary template's pods, not the baseline's
    await asyncio.sleep(3)
    assert (await _experiment(rkube, ns, "open"))["status"]["phase"] == "Running"
    await rkube.merge_patch(EXPERIMENTS.format(ns=ns) + "/open", {"spec": {"terminate": True}})
    ended = await eventually(lambda: _ended(rkube, ns, "open"), 20, "the experiment ended")
    assert ended is not None
    assert ended["status"]["phase"] == "Successful", ended["status"]
    await eventually(lambda: _all_scaled_to_zero(rkube, ns, uid), 20, "the ReplicaSets at 0")
    await eventually(lambda: _gone(rkube, SERVICES.path(ns, "open-canary")), 20,
                     "the template's Service deleted")


async def _gone(kube: Kube, path: str) -> bool:
    return await kube.get_or_none(path) is None


async def test_experiment_with_a_missing_analysis_template_ends_error_saying_which(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    """Bad input: the analysis names an AnalysisTemplate that does not exist. The user reads
    Error and the template's name in the Experiment's message; nothing keeps running."""
    ns = namespace
    start_controller()
    await apply(rkube, experiment("typo"), ns)
    ended = await eventually(lambda: _ended(rkube, ns, "typo"), 30, "the experiment ended")
    assert ended is not None
    st = ended["status"]
    assert st["phase"] == "Error", st
    assert "AnalysisTemplate health not found" in st["message"]
    assert not await analysis_runs(rkube, ns)
    await eventually(lambda: _all_scaled_to_zero(rkube, ns, ended["metadata"]["uid"]), 20,
                     "the ReplicaSets at 0")


async def test_a_controller_killed_while_the_experiment_runs_resumes_it(
        rkube: Kube, namespace: str, health: HealthServer,
        start_controller: Callable[..., ControllerProcess]) -> None:
    """SIGKILL while Running: a new controller finds everything in the Experiment's status
    and its ReplicaSets, ends it Successful no earlier than availableAt + duration, with no
    second AnalysisRun and no second ReplicaSet."""
    ns = namespace
    first = start_controller()
    await apply(rkube, health_template(health.url), ns)
    await apply(rkube, experiment("kill", duration="8s"), ns)
    running = await eventually(lambda: _phase(rkube, ns, "kill", "Running"), 40, "Running")
    assert running is not None
    first.kill()
    await asyncio.sleep(2)
    start_controller()
    ended = await eventually(lambda: _ended(rkube, ns, "kill"), 40, "the experiment ended")
    assert ended is not None
    st = ended["status"]
    assert st["phase"] == "Successful", st
    done = next(c for c in st["conditions"] if c["type"] == "Progressing")
    finished, available = parse_time(done["lastTransitionTime"]), parse_time(st["availableAt"])
    assert finished is not None and available is not None
    assert (finished - available).total_seconds() >= 8
    assert len(await analysis_runs(rkube, ns)) == 1
    rss = await _owned_replica_sets(rkube, ns, ended["metadata"]["uid"])
    data = await rkube.get_list(REPLICASETS.path(ns), labelSelector="rollouts.dev/experiment=kill")
    assert len(data["items"]) == len(rss) == 2


async def test_experiment_pods_labelled_like_a_rollouts_are_left_alone_by_it(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    """An Experiment whose pods carry the Rollout's selector labels (as a step's
    specRef templates do): the Rollout neither adopts, scales nor deletes its ReplicaSets
    and its replica counts stay its own; the Experiment runs its course."""
    ns = namespace
    start_controller()
    await deploy(rkube, ns, rollout([{"setWeight": 50}, {"pause": {}}], replicas=3), *services(),
                 virtual_service(), what="the Rollout Healthy")
    ex = experiment("twin", duration="4s")
    del ex["spec"]["analyses"]
    await apply(rkube, ex, ns)
    running = await eventually(lambda: _phase(rkube, ns, "twin", "Running"), 40, "Running")
    assert running is not None
    uid = running["metadata"]["uid"]
    await asyncio.sleep(2)  # a few Rollout reconciles with the experiment's pods present
    ro = await get_rollout(rkube, ns)
    st = ro["status"]
    assert (st["phase"], st.get("replicas"), st.get("availableReplicas")) == ("Healthy", 3, 3), st
    rss = await _owned_replica_sets(rkube, ns, uid)
    assert {t: rs["spec"]["replicas"] for t, rs in rss.items()} == {"baseline": 1, "canary": 2}
    for rs in rss.values():
        assert [o["kind"] for o in rs["metadata"]["ownerReferences"]] == ["Experiment"]
    ended = await eventually(lambda: _ended(rkube, ns, "twin"), 30, "the experiment ended")
    assert ended is not None and ended["status"]["phase"] == "Successful"
    assert (await phase_is(rkube, ns, "Healthy")) is not None


async def test_controller_rbac_covers_experiment_owners(controller_kubeconfig: str,
                                                       namespace: str) -> None:
    """ReplicaSets, Services and AnalysisRuns name their Experiment as owner with
    blockOwnerDeletion: with the OwnerReferencesPermissionEnforcement admission plugin (off
    on the test bed) that needs update on experiments/finalizers. Asked with the
    controller's own token; the other experiment rights are exercised by the tests above."""
    from kubernetes_asyncio import client, config

    cfg = client.Configuration()
    await config.load_kube_config(config_file=controller_kubeconfig, client_configuration=cfg)
    async with client.ApiClient(cfg) as api:
        kube = Kube(api)

        async def allowed(**attrs: str) -> bool:
            review = await kube.create(
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                 "spec": {"resourceAttributes": {"namespace": namespace, **attrs}}})
            return bool(review["status"].get("allowed"))

        assert await allowed(group="rollouts.dev", resource="experiments",
                             subresource="finalizers", verb="update")
        assert await allowed(group="rollouts.dev", resource="experiments", verb="create")


async def test_the_experiment_built_for_a_rollouts_experiment_step_runs(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    """The Experiment ``experiment_step`` builds from a live Rollout (stable and canary
    templates from its ReplicaSet, a weighted template, owned by the Rollout) is accepted
    by the CRD and runs to Successful with the Rollout untouched."""
    from rollouts.controller.experiment_step import ExperimentStepInput, Owner, build_experiment

    ns = namespace
    start_controller()
    ro = await deploy(rkube, ns, rollout([{"setWeight": 50}, {"pause": {}}], replicas=2),
                      *services(), virtual_service(), what="the Rollout Healthy")
    stable = ro["status"]["stableRS"]
    rs = (await rkube.get_list(REPLICASETS.path(ns), labelSelector=f"{HASH}={stable}"))["items"][0]
    step = {"duration": "3s", "scaleDownDelaySeconds": 0,
            "templates": [{"name": "baseline", "specRef": "stable", "weight": 5},
                          {"name": "canary", "specRef": "canary", "replicas": 2}]}
    body = build_experiment(ExperimentStepInput(
        rollout="demo", step=step, step_index=0, attempt=1, canary_hash=stable, stable_hash=stable,
        canary_template=rs["spec"]["template"], stable_template=rs["spec"]["template"],
        selector=ro["spec"]["selector"], rollout_labels={},
        owner=Owner(name="demo", uid=ro["metadata"]["uid"]), progress_deadline_seconds=60))
    await rkube.create(EXPERIMENTS.format(ns=ns), body)
    name = body["metadata"]["name"]
    ended = await eventually(lambda: _ended(rkube, ns, name), 40, "the step's experiment ended")
    assert ended is not None
    assert ended["status"]["phase"] == "Successful", ended["status"]
    hashes = {t["name"]: t["podTemplateHash"] for t in ended["status"]["templateStatuses"]}
    assert stable not in hashes.values()  # its pods never answer for the Rollout's revision
    st = (await get_rollout(rkube, ns))["status"]
    assert (st["phase"], st["stableRS"], st.get("availableReplicas")) == ("Healthy", stable, 2)

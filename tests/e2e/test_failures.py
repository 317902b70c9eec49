"""A failed action is never invisible: what a user sees when the API server refuses the
ReplicaSet of a pod template the Rollout's CRD accepted.

The user reads the Rollout: its Progressing condition carries the API server's own
message, a Warning Event names it, the phase is no longer Healthy for the new
generation and turns Degraded once progressDeadlineSeconds pass; traffic stays where it
was; and fixing the template recovers without any restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Callable
from typing import Any

from rollouts.kube.apply import apply
from rollouts.kube.client import JSON, Kube, KubeError
from tests.e2e.kit import (
    EVENTS,
    ROLLOUTS,
    ControllerProcess,
    canary_weight,
    eventually,
    get_rollout,
    phase_is,
    replica_sets,
    rollout,
    services,
    virtual_service,
)

DEADLINE_S = 8
STEPS = [{"setWeight": 50}]


def _progressing(ro: JSON) -> dict[str, Any]:
    conds = (ro.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == "Progressing"), {})


async def _warnings(rkube: Kube, ns: str, reason: str) -> list[JSON]:
    data = await rkube.get_list(EVENTS.path(ns))
    return [e for e in data["items"] if e.get("type") == "Warning" and e.get("reason") == reason
            and e["involvedObject"].get("kind") == "Rollout"]


async def _set_template(rkube: Kube, ns: str, edit: Callable[[JSON], None]) -> int:
    ro = await get_rollout(rkube, ns)
    tmpl = copy.deepcopy(ro["spec"]["template"])
    edit(tmpl)
    updated = await rkube.merge_patch(ROLLOUTS.path(ns, "demo"), {"spec": {"template": tmpl}})
    return int(updated["metadata"]["generation"])


async def _reported(rkube: Kube, ns: str, generation: int, reason: str) -> JSON | None:
    ro = await get_rollout(rkube, ns)
    st = ro.get("status") or {}
    cond = _progressing(ro)
    ok = (st.get("observedGeneration") == generation and cond.get("status") == "False"
          and cond.get("reason") == reason)
    return ro if ok else None


def _with_deadline(ro: JSON) -> JSON:
    ro["spec"]["progressDeadlineSeconds"] = DEADLINE_S
    return ro


def _rename(name: str) -> Callable[[JSON], None]:
    def edit(tmpl: JSON) -> None:
        tmpl["spec"]["containers"][0]["name"] = name
    return edit


async def test_a_rejected_replica_set_is_reported_degrades_at_the_deadline_and_recovers(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    ctl = start_controller()
    for obj in [*services(), virtual_service()]:
        await apply(rkube, obj, ns)
    await apply(rkube, _with_deadline(rollout(STEPS, replicas=3, scaleDownDelaySeconds=1)), ns)
    healthy = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy Healthy")
    stable = healthy["status"]["stableRS"]

    # An update the CRD accepts but the API server refuses for the ReplicaSet.
    gen = await _set_template(rkube, ns, _rename("Bad_Name!"))
    ro = await eventually(lambda: _reported(rkube, ns, gen, "ReplicaSetCreateError"), 20,
                          "the rejection in the Progressing condition")
    cond = _progressing(ro)
    # The API server's own words, so the user knows what to fix.
    assert 'Invalid value: "Bad_Name!"' in cond["message"], cond
    assert "containers[0].name" in cond["message"], cond
    assert ro["status"]["phase"] in ("Progressing", "Degraded"), ro["status"]  # never Healthy now
    assert "ReplicaSetCreateError" in ro["status"]["message"]
    warnings = await eventually(lambda: _warnings(rkube, ns, "ReplicaSetCreateError"), 10,
                                "a Warning Event")
    assert 'Invalid value: "Bad_Name!"' in warnings[0]["message"]
    # Nothing moved: all traffic and pods on the stable revision, as status says.
    assert await canary_weight(rkube, ns) == 0
    assert ro["status"]["stableRS"] == stable
    assert ro["status"]["canary"]["weights"]["canary"]["weight"] == 0
    assert set(await replica_sets(rkube, ns)) == {stable}

    # No progress for progressDeadlineSeconds: Degraded, said once more as a Warning.
    ro = await eventually(lambda: phase_is(rkube, ns, "Degraded"), DEADLINE_S + 20, "Degraded")
    assert ro["status"]["message"].startswith("ProgressDeadlineExceeded")
    assert 'Invalid value: "Bad_Name!"' in ro["status"]["message"]
    await eventually(lambda: _warnings(rkube, ns, "ProgressDeadlineExceeded"), 10,
                     "a ProgressDeadlineExceeded Warning")
    # retried with backoff, not in a hot loop: Events are aggregated and counted
    await asyncio.sleep(3)
    attempts = sum(int(e.get("count") or 1) for e in await _warnings(rkube, ns, "ReplicaSetCreateError"))
    assert 2 <= attempts <= 40, attempts

    # Fixing the template recovers: the new revision goes through its steps to Healthy.
    gen = await _set_template(rkube, ns, _rename("app2"))
    ro = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 90, "Healthy after the fix")
    assert ro["metadata"]["generation"] == gen
    assert ro["status"]["stableRS"] != stable
    assert _progressing(ro)["status"] == "True"
    assert "Traceback" not in ctl.output()


async def test_a_first_deploy_with_an_oversized_annotation_is_reported(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    # 300 kB of pod annotation: the Rollout is accepted, every ReplicaSet is refused (the
    # API server allows 256 kB of annotations per object).
    ns = namespace
    start_controller()
    for obj in [*services(), virtual_service()]:
        await apply(rkube, obj, ns)
    ro = _with_deadline(rollout(STEPS, replicas=2))
    ro["spec"]["template"]["metadata"]["annotations"] = {"example.com/blob": "x" * 300_000}
    await apply(rkube, ro, ns)
    got = await eventually(lambda: _reported(rkube, ns, 1, "ReplicaSetCreateError"), 30,
                           "the rejection in the Progressing condition")
    assert "Too long" in _progressing(got)["message"], _progressing(got)
    assert "annotations" in _progressing(got)["message"]
    await eventually(lambda: phase_is(rkube, ns, "Degraded"), DEADLINE_S + 20, "Degraded")
    assert await replica_sets(rkube, ns) == {}

    def drop(tmpl: JSON) -> None:
        tmpl["metadata"]["annotations"] = None  # a merge patch deletes what is null

    await _set_template(rkube, ns, drop)
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "Healthy after the fix")


async def test_pods_refused_by_a_quota_show_as_replica_failure(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    # The ReplicaSet is accepted but its pods are not (a ResourceQuota here; a webhook
    # denying pods looks the same): the ReplicaSet's ReplicaFailure shows on the Rollout.
    ns = namespace
    await _deployed(rkube, ns, start_controller)
    quota = f"/api/v1/namespaces/{ns}/resourcequotas"
    await rkube.create(quota, {"metadata": {"name": "no-more-pods"}, "spec": {"hard": {"pods": "2"}}})
    await _set_template(rkube, ns, _rename("app2"))

    async def replica_failure() -> dict[str, Any] | None:
        conds = ((await get_rollout(rkube, ns)).get("status") or {}).get("conditions") or []
        return next((c for c in conds if c.get("type") == "ReplicaFailure"), None)

    cond = await eventually(replica_failure, 60, "ReplicaFailure on the Rollout")
    assert cond["status"] == "True" and cond["reason"] == "FailedCreate", cond
    assert "quota" in cond["message"], cond
    assert await canary_weight(rkube, ns) == 0  # no pods, no traffic

    await rkube.delete(f"{quota}/no-more-pods")
    await eventually(lambda: _gone(replica_failure), 60, "ReplicaFailure gone once pods are created")
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 90, "Healthy")


async def _deployed(rkube: Kube, ns: str, start_controller: Callable[..., ControllerProcess]) -> None:
    """The controller running and a 2-replica rollout's first revision Healthy."""
    start_controller()
    for obj in [*services(), virtual_service()]:
        await apply(rkube, obj, ns)
    await apply(rkube, rollout(STEPS, replicas=2), ns)
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy Healthy")


async def _gone(check: Callable[[], Any]) -> bool:
    return await check() is None


async def test_an_admission_policy_denying_the_replica_set_is_reported_with_its_message(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    # An admission check (here a ValidatingAdmissionPolicy answering 403 Forbidden, as a
    # webhook would) refuses the canary's ReplicaSet: its message reaches the Rollout.
    ns = namespace
    await _deployed(rkube, ns, start_controller)
    adm = "/apis/admissionregistration.k8s.io/v1"
    name = f"deny-forbidden-image-{ns}"[:63]
    await rkube.create(f"{adm}/validatingadmissionpolicies", {
        "metadata": {"name": name},
        "spec": {"failurePolicy": "Fail",
                 "matchConstraints": {"resourceRules": [{
                     "apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE"],
                     "resources": ["replicasets"]}]},
                 "validations": [{
                     "expression": "!object.spec.template.spec.containers.exists("
                                   "c, c.image == 'demo:forbidden')",
                     "message": "image demo:forbidden is not allowed in this namespace",
                     "reason": "Forbidden"}]}})
    try:
        await rkube.create(f"{adm}/validatingadmissionpolicybindings", {
            "metadata": {"name": name},
            "spec": {"policyName": name, "validationActions": ["Deny"],
                     "matchResources": {"namespaceSelector": {
                         "matchLabels": {"kubernetes.io/metadata.name": ns}}}}})
        await eventually(lambda: _denied(rkube, ns), 30, "the policy in force")

        def forbidden(tmpl: JSON) -> None:
            tmpl["spec"]["containers"][0]["image"] = "demo:forbidden"

        gen = await _set_template(rkube, ns, forbidden)
        ro = await eventually(lambda: _reported(rkube, ns, gen, "ReplicaSetCreateError"), 20,
                              "the denial in the Progressing condition")
        msg = _progressing(ro)["message"]
        assert "image demo:forbidden is not allowed in this namespace" in msg and "HTTP 403" in msg, msg
        assert ro["status"]["phase"] != "Healthy"
        await eventually(lambda: _warnings(rkube, ns, "ReplicaSetCreateError"), 10, "a Warning Event")
    finally:
        for kind in ("validatingadmissionpolicybindings", "validatingadmissionpolicies"):
            with contextlib.suppress(Exception):
                await rkube.delete(f"{adm}/{kind}/{name}")

    def allowed(tmpl: JSON) -> None:
        tmpl["spec"]["containers"][0]["image"] = "demo:2"

    await _set_template(rkube, ns, allowed)
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 90, "Healthy after the fix")


async def _denied(rkube: Kube, ns: str) -> bool:
    """A server-side dry run of a ReplicaSet the policy refuses is refused."""
    body = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "probe"},
            "spec": {"selector": {"matchLabels": {"probe": "x"}}, "template": {
                "metadata": {"labels": {"probe": "x"}},
                "spec": {"containers": [{"name": "a", "image": "demo:forbidden"}]}}}}
    try:
        await rkube.create(f"/apis/apps/v1/namespaces/{ns}/replicasets", body, dryRun="All")
    except KubeError as e:
        return e.status == 403
    return False

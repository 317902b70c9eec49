"""A controller that cannot list what it needs yet (its RBAC or CRDs applied after it
started) neither crashes nor sits silent: it says what it cannot list and why, and starts
on its own once that is fixed. What the user checks: the log line, the process still up,
then the Rollout Healthy without a restart."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from rollouts.kube.apply import apply
from rollouts.kube.client import JSON, Kube
from testbed.cluster import TestBed
from tests.e2e.kit import ControllerProcess, eventually, phase_is, rollout, services, virtual_service

RBAC = "/apis/rbac.authorization.k8s.io/v1"


def _without_listing_rollouts(rules: list[JSON]) -> list[JSON]:
    out: list[JSON] = []
    for rule in rules:
        if "rollouts.dev" in rule.get("apiGroups", []) and "rollouts" in rule.get("resources", []):
            rest = [r for r in rule["resources"] if r != "rollouts"]
            if rest:
                out.append({**rule, "resources": rest})
            out.append({**rule, "resources": ["rollouts"],
                        "verbs": [v for v in rule["verbs"] if v not in ("list", "watch", "*")]})
        else:
            out.append(rule)
    return out


async def _kubeconfig_of(rkube: Kube, testbed: TestBed, ns: str, sa: str) -> str:
    tr = await rkube.create(f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
                            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                             "spec": {"expirationSeconds": 3600}})
    cfg: dict[str, Any] = yaml.safe_load(Path(testbed.kubeconfig).read_text())  # noqa: ASYNC240
    cfg["users"] = [{"name": "admin", "user": {"token": tr["status"]["token"]}}]
    path = Path(testbed.workdir) / f"startup-{ns}.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


async def test_a_controller_not_allowed_to_list_rollouts_says_so_and_starts_once_allowed(
        rkube: Kube, testbed: TestBed, installed: None, namespace: str,
        stopping_controllers: list[ControllerProcess]) -> None:
    # Regression: it waited 60 s for its caches, then died with a bare TimeoutError.
    shipped = await rkube.get(f"{RBAC}/clusterroles/rollouts-controller")
    ns = namespace
    await rkube.create(f"/api/v1/namespaces/{ns}/serviceaccounts",
                       {"metadata": {"name": "ctl"}})
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "ctl"}, "rules": _without_listing_rollouts(shipped["rules"])}
    await rkube.create(f"{RBAC}/namespaces/{ns}/roles", role)
    await rkube.create(f"{RBAC}/namespaces/{ns}/rolebindings", {
        "metadata": {"name": "ctl"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ctl"},
        "subjects": [{"kind": "ServiceAccount", "name": "ctl", "namespace": ns}]})
    kubeconfig = await _kubeconfig_of(rkube, testbed, ns, "ctl")
    for obj in [*services(), virtual_service(), rollout([{"setWeight": 50}], replicas=2)]:
        await apply(rkube, copy.deepcopy(obj), ns)

    ctl = ControllerProcess(kubeconfig, ns, Path(testbed.workdir) / "logs").start()
    stopping_controllers.append(ctl)
    try:
        async def says_why() -> bool:
            return "cannot start: rollouts not listed yet: HTTP 403" in ctl.output()

        await eventually(says_why, 20, "the controller saying it may not list rollouts")
        assert ctl.proc is not None and ctl.proc.poll() is None, ctl.output()[-2000:]
        assert await phase_is(rkube, ns, "Healthy") is None  # nothing acted yet

        await rkube.replace(f"{RBAC}/namespaces/{ns}/roles/ctl",
                            {**role, "rules": shipped["rules"],
                             "metadata": (await rkube.get(f"{RBAC}/namespaces/{ns}/roles/ctl"))["metadata"]})
        got = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60,
                               "Healthy once the controller may list rollouts")
        assert got is not None
        assert ctl.proc.poll() is None
        assert "Traceback" not in ctl.output()
    finally:
        ctl.terminate()

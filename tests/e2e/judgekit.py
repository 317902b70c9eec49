"""Helpers for the manual-judgement tests: the CLI as a process, ServiceAccount tokens."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from dataclasses import dataclass

from rollouts.kube.apply import apply
from rollouts.kube.client import JSON, Kube
from tests.e2e.kit import REPO, eventually, get_rollout, phase_is, rollout, services, virtual_service

STEPS: list[JSON] = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {}},
                     {"setWeight": 80}]


@dataclass
class Result:
    code: int
    out: str
    err: str


async def cli(*args: str, kubeconfig: str, namespace: str | None = None,
              exe: str | None = None, timeout: float = 90) -> Result:
    """Runs the `rollouts` entry point (or another one) as a user would."""
    argv = [exe] if exe else [sys.executable, "-m", "rollouts.cli.main"]
    argv += [*args, f"--kubeconfig={kubeconfig}"]
    if namespace:
        argv.append(f"--namespace={namespace}")
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "160"})
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return Result(proc.returncode if proc.returncode is not None else -1, out.decode(), err.decode())


async def deploy(kube: Kube, ns: str, steps: list[JSON] | None = None) -> JSON:
    for obj in [*services(), virtual_service()]:
        await apply(kube, obj, ns)
    await apply(kube, rollout(steps or STEPS, scaleDownDelaySeconds=2, replicas=3), ns)
    result: JSON = await eventually(lambda: phase_is(kube, ns, "Healthy"), 60, "first deploy Healthy")
    return result


async def at_step(kube: Kube, ns: str, idx: int) -> JSON | None:
    ro = await get_rollout(kube, ns)
    st = ro.get("status") or {}
    up = st.get("observedGeneration") == ro["metadata"]["generation"]
    return ro if up and st.get("currentStepIndex") == idx and st.get("phase") == "Paused" else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def service_account_token(kube: Kube, ns: str, name: str, verbs: list[str]) -> str:
    """A ServiceAccount allowed ``verbs`` on rollouts in ``ns`` only, and a token for it."""
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name},
            "rules": [{"apiGroups": ["rollouts.dev"], "resources": ["rollouts"], "verbs": verbs}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": name},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
               "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]}
    for obj in (sa, role, binding):
        await apply(kube, obj, ns)
    tr = await kube.create(f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token",
                           {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                            "spec": {"expirationSeconds": 3600}})
    token: str = tr["status"]["token"]
    return token

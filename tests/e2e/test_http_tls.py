"""Secure by default: what a user sees of the controller's listener.

HTTPS without any flag (a self-signed certificate made at start, or one from files such
as a mounted Secret), tokens for our own audience, /metrics behind TokenReview and a
SubjectAccessReview on the non-resource URL (the shipped ``rollouts-metrics-reader``
ClusterRole), /healthz and /readyz open to the kubelet.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from rollouts.kube.apply import apply
from rollouts.kube.client import Kube
from rollouts.server.tls import self_signed_pem
from testbed.cluster import TestBed
from tests.e2e.judgekit import service_account_token
from tests.e2e.kit import ControllerProcess
from tests.e2e.test_http_api import serve

CLUSTER_ROLE_BINDINGS = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _token(rkube: Kube, ns: str, sa: str, audiences: list[str] | None = None) -> str:
    spec: dict[str, object] = {"expirationSeconds": 3600}
    if audiences:
        spec["audiences"] = audiences
    tr = await rkube.create(f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
                            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                             "spec": spec})
    token: str = tr["status"]["token"]
    return token


async def test_https_by_default_with_audiences_and_metrics_behind_rbac(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    audience = f"rollouts.dev/e2e-{uuid.uuid4().hex[:6]}"
    served = await serve(start_controller, f"--audience={audience}")
    base = served.base
    assert base.startswith("https://")
    port = int(base.rsplit(":", 1)[1])

    # plain HTTP on that port gets no answer; a client trusting only the usual CAs refuses
    # the self-signed certificate; a client pinning it gets through, for 127.0.0.1
    with pytest.raises(httpx.HTTPError):
        async with httpx.AsyncClient() as plain:
            await plain.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        async with httpx.AsyncClient() as default_trust:
            await default_trust.get(f"{base}/healthz", timeout=5)
    cert = ssl.PEM_cert_to_DER_cert(served.pem)
    assert len(hashlib.sha256(cert).hexdigest()) == 64

    judge = await service_account_token(rkube, ns, "judge", ["get", "list"])
    scraper = await service_account_token(rkube, ns, "scraper", ["get"])
    binding = f"{ns}-scraper"[:63]
    await rkube.create(CLUSTER_ROLE_BINDINGS, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": binding, "labels": {"e2e": "true"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "rollouts-metrics-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "scraper", "namespace": ns}]})
    try:
        async with httpx.AsyncClient(verify=served.verify, timeout=30) as http:
            # the kubelet's probes carry no token
            assert (await http.get(f"{base}/healthz")).text == "ok"
            assert (await http.get(f"{base}/readyz")).status_code == 200

            # /metrics: no token 401; a token without the ClusterRole 403; with it 200
            r = await http.get(f"{base}/metrics")
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
            r = await http.get(f"{base}/metrics", headers=_auth(judge))
            assert r.status_code == 403 and "/metrics" in r.json()["detail"], r.text

            async def scraped() -> bool:  # RBAC caches take a moment to see the binding
                r = await http.get(f"{base}/metrics", headers=_auth(scraper))
                return r.status_code == 200 and "workqueue_depth" in r.text
            for _ in range(40):
                if await scraped():
                    break
                await asyncio.sleep(0.5)
            else:
                raise AssertionError("the metrics reader never got /metrics")

            # a token minted for our audience is accepted, and so is the API server's
            # own; a token for someone else's audience is not
            rollouts = f"{base}/api/v1/namespaces/{ns}/rollouts"
            ours = await _token(rkube, ns, "judge", [audience])
            r = await http.get(rollouts, headers=_auth(ours))
            assert r.status_code == 200, r.text
            assert (await http.get(rollouts, headers=_auth(judge))).status_code == 200
            vault = await _token(rkube, ns, "judge", ["vault"])
            r = await http.get(rollouts, headers=_auth(vault))
            assert r.status_code == 401, r.text
    finally:
        await rkube.delete(f"{CLUSTER_ROLE_BINDINGS}/{binding}")


async def test_certificate_from_files_and_tokens_for_other_audiences_refused_by_default(
        rkube: Kube, namespace: str, testbed: TestBed,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    # what a kubernetes.io/tls Secret mounted into the pod would hold
    cert_pem, key_pem = self_signed_pem(["127.0.0.1", "rollouts-controller.rollouts-system.svc"])
    tls_dir = Path(testbed.workdir) / f"tls-{ns}"
    tls_dir.mkdir(parents=True, exist_ok=True)
    (tls_dir / "tls.crt").write_bytes(cert_pem)
    (tls_dir / "tls.key").write_bytes(key_pem)
    served = await serve(start_controller, f"--tls-cert-file={tls_dir / 'tls.crt'}",
                         f"--tls-private-key-file={tls_dir / 'tls.key'}")
    assert served.pem.strip() == cert_pem.decode().strip()  # that certificate is served

    await apply(rkube, {"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": "judge"}}, ns)
    await service_account_token(rkube, ns, "judge", ["list"])
    async with httpx.AsyncClient(verify=ssl.create_default_context(cadata=cert_pem.decode()),
                                 timeout=30) as http:
        rollouts = f"{served.base}/api/v1/namespaces/{ns}/rollouts"
        # without --audience, only tokens for the API server's audience are accepted
        other = await _token(rkube, ns, "judge", ["rollouts.dev/not-configured"])
        assert (await http.get(rollouts, headers=_auth(other))).status_code == 401
        apiserver = await _token(rkube, ns, "judge")
        assert (await http.get(rollouts, headers=_auth(apiserver))).status_code == 200

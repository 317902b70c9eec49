"""The HTTP API end to end: Kubernetes tokens, TokenReview + SubjectAccessReview, actions.

The controller runs as in production: with deploy/'s RBAC (not admin), serving the API on
a known port over HTTPS with the self-signed certificate it makes at start (the tests pin
that certificate, as a careful client would). Callers are ServiceAccounts of the test
namespace with their own Roles.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from rollouts.kube.client import Kube
from testbed.cluster import TestBed
from tests.e2e.judgekit import at_step, deploy, free_port, service_account_token
from tests.e2e.kit import (
    ControllerProcess,
    canary_weight,
    event_where,
    eventually,
    get_rollout,
    phase_is,
    set_image,
)

API = "/api/v1/namespaces/{ns}/rollouts/{name}"


@dataclass
class Served:
    base: str
    verify: ssl.SSLContext | bool  # trusts exactly the controller's certificate
    pem: str  # that certificate ("" over plain HTTP)


async def serve(start: Callable[..., ControllerProcess], *extra: str) -> Served:
    """A controller with its API on a known port; HTTPS with its certificate pinned, or
    plain HTTP when ``extra`` holds --insecure-http."""
    port = free_port()
    proc = start(f"--listen=127.0.0.1:{port}", *extra)
    plain = "--insecure-http" in extra
    served = Served(f"{'http' if plain else 'https'}://127.0.0.1:{port}", True, "")

    async def ready() -> bool:
        try:
            if not plain and not served.pem:
                served.pem = await asyncio.to_thread(ssl.get_server_certificate,
                                                     ("127.0.0.1", port), timeout=2)
                served.verify = ssl.create_default_context(cadata=served.pem)
            async with httpx.AsyncClient(verify=served.verify) as c:
                return (await c.get(f"{served.base}/readyz", timeout=2)).status_code == 200
        except (httpx.HTTPError, OSError):
            return False
    await eventually(ready, 60, f"controller ready on {served.base} (log {proc.log})")
    return served


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_promote_and_abort_over_http_with_rbac(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    served = await serve(start_controller)
    base = served.base
    judge = await service_account_token(rkube, ns, "judge", ["get", "list", "promote", "abort"])
    viewer = await service_account_token(rkube, ns, "viewer", ["get", "list"])
    await deploy(rkube, ns)
    await set_image(rkube, ns, "demo:2")
    await eventually(lambda: at_step(rkube, ns, 1), 60, "paused at step 1")
    url = base + API.format(ns=ns, name="demo")
    async with httpx.AsyncClient(timeout=30, verify=served.verify) as http:
        before = (await get_rollout(rkube, ns))["status"]
        # no token, a bad token: 401; a token without the verb: 403; status unchanged
        r = await http.post(f"{url}/promote", json={})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), r.text
        r = await http.post(f"{url}/promote", json={}, headers=_auth("not-a-token"))
        assert r.status_code == 401, r.text
        r = await http.post(f"{url}/promote", json={}, headers=_auth(viewer))
        assert r.status_code == 403 and f"system:serviceaccount:{ns}:viewer" in r.text, r.text
        r = await http.get(url, headers=_auth(viewer))  # but it may read
        assert r.status_code == 200 and r.json()["currentStepIndex"] == 1, r.text
        await asyncio.sleep(2)
        after = (await get_rollout(rkube, ns))["status"]
        assert after == before and await canary_weight(rkube, ns) == 20

        # malformed body: 422 with a readable message, nothing recorded
        r = await http.post(f"{url}/promote", content=b"{not json", headers={
            **_auth(judge), "Content-Type": "application/json"})
        assert r.status_code == 422 and "JSON" in r.json()["message"], r.text
        r = await http.post(f"{url}/promote", json={"full": "very"}, headers=_auth(judge))
        assert r.status_code == 422 and "full" in r.json()["message"], r.text
        r = await http.post(f"{url}/promote", json={"ful": True}, headers=_auth(judge))
        assert r.status_code == 422, r.text
        # non-JSON numbers, deep nesting and "truthy" values are refused, never a 500 and
        # never a promote: what the user sees is a 4xx and an unchanged rollout
        for body in (b'{"full": NaN}', b'{"full": Infinity}', b"[" * 100_000, b"[" * 10_000,
                     b'{"full": "yes"}', b'{"full": "on"}', b'{"full": 1}'):
            r = await http.post(f"{url}/promote", content=body, headers={
                **_auth(judge), "Content-Type": "application/json"})
            assert r.status_code in (413, 422), (body[:20], r.status_code, r.text[:300])
        r = await http.post(base + API.format(ns=ns, name="nope") + "/promote", json={},
                            headers=_auth(judge))
        assert r.status_code == 404, r.text
        assert "pendingAction" not in (await get_rollout(rkube, ns))["status"]

        # the judge promotes: the rollout continues, recorded as the ServiceAccount
        r = await http.post(f"{url}/promote", json={"full": False}, headers=_auth(judge))
        assert r.status_code == 202, r.text
        caller = f"system:serviceaccount:{ns}:judge"
        assert r.json()["user"] == caller
        await eventually(lambda: at_step(rkube, ns, 3), 60, "paused at step 3 after HTTP promote")
        assert await canary_weight(rkube, ns) == 50
        st = (await get_rollout(rkube, ns))["status"]
        assert st["lastAction"]["user"] == caller and st["lastAction"]["result"] == "Applied"
        await event_where(rkube, ns, "demo",
                          lambda e: e["reason"] == "RolloutPromoted" and caller in e["message"])
        view = (await http.get(url, headers=_auth(judge))).json()
        assert [s["state"] for s in view["steps"]] == ["done", "done", "done", "current", "pending"]
        assert view["weights"] == {"canary": 50, "stable": 50}

        # abort over HTTP: traffic back to stable; then nothing left to abort or promote (409)
        r = await http.post(f"{url}/abort", headers=_auth(judge))
        assert r.status_code == 202, r.text
        await eventually(lambda: _weight_is(rkube, ns, 0), 15, "weight 0 after HTTP abort")
        await eventually(lambda: phase_is(rkube, ns, "Degraded"), 15, "Degraded")
        r = await http.post(f"{url}/abort", headers=_auth(judge))
        assert r.status_code == 409 and "already aborted" in r.text, r.text
        # a plain promote does not lift an abort (promote --full would, as in Argo)
        r = await http.post(f"{url}/promote", json={"full": False}, headers=_auth(judge))
        assert r.status_code == 409 and "retry it first" in r.text, r.text
        # retry is not among the judge's verbs
        r = await http.post(f"{url}/retry", headers=_auth(judge))
        assert r.status_code == 403, r.text

        r = await http.get(f"{base}/api/v1/namespaces/{ns}/rollouts", headers=_auth(judge))
        assert r.status_code == 200 and [i["name"] for i in r.json()["items"]] == ["demo"], r.text
        # this controller manages one namespace: "all rollouts" are that namespace's
        r = await http.get(f"{base}/api/v1/rollouts", headers=_auth(judge))
        assert r.status_code == 200 and {i["namespace"] for i in r.json()["items"]} == {ns}, r.text


async def _weight_is(rkube: Kube, ns: str, w: int) -> bool:
    return await canary_weight(rkube, ns) == w


async def test_token_allowed_in_one_namespace_is_forbidden_in_another(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    # plain HTTP when asked for explicitly (e.g. behind a TLS-terminating mesh)
    base = (await serve(start_controller, "--insecure-http")).base
    assert base.startswith("http://")
    judge = await service_account_token(rkube, ns, "judge", ["get", "list", "promote"])
    other = f"{ns[:50]}-b"
    await rkube.create("/api/v1/namespaces", {"metadata": {"name": other, "labels": {"e2e": "true"}}})
    try:
        # the same rights in its own namespace, none in the other
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.get(f"{base}/api/v1/namespaces/{ns}/rollouts", headers=_auth(judge))
            assert r.status_code == 200, r.text
            for method, path in (("GET", ""), ("POST", "/promote")):
                r = await http.request(method, base + API.format(ns=other, name="demo") + path,
                                       headers=_auth(judge), json={} if method == "POST" else None)
                assert r.status_code == 403, r.text
            r = await http.get(f"{base}/api/v1/namespaces/{other}/rollouts", headers=_auth(judge))
            assert r.status_code == 403, r.text
            # the docs are served; they need no token
            assert (await http.get(f"{base}/docs")).status_code == 200
            schema = (await http.get(f"{base}/openapi.json")).json()
            assert "/api/v1/namespaces/{namespace}/rollouts/{name}/promote" in schema["paths"]
    finally:
        await rkube.delete(f"/api/v1/namespaces/{other}")


@pytest.mark.timeout(900)
async def test_fuzzing_the_api_from_its_openapi_schema_finds_no_server_error(
        rkube: Kube, namespace: str, testbed: TestBed,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    served = await serve(start_controller)
    base = served.base
    token = await service_account_token(
        rkube, ns, "fuzzer", ["get", "list", "promote", "abort", "retry", "pause", "resume"])
    await deploy(rkube, ns)
    await set_image(rkube, ns, "demo:2")
    await eventually(lambda: at_step(rkube, ns, 1), 60, "paused at step 1")
    st = Path(sys.executable).parent / "schemathesis"
    if not st.exists():
        pytest.fail("schemathesis is missing: it is in the test extras (make test installs it)")
    workdir = Path(testbed.workdir) / f"schemathesis-{ns}"
    workdir.mkdir(parents=True, exist_ok=True)
    # round 2 aims every request at the real rollout, so actions reach request_action
    # (202, 409) instead of stopping at 404
    config = workdir / "fixed.toml"
    config.write_text(f'[parameters]\n"path.namespace" = "{ns}"\n"path.name" = "demo"\n')
    ca = workdir / "controller-ca.pem"
    ca.write_text(served.pem)
    for extra in ([], ["--config-file", str(config)]):
        argv = [str(st), *extra, "run", f"{base}/openapi.json", "--tls-verify", str(ca),
                "-H", f"Authorization: Bearer {token}",
                "--checks", "not_a_server_error", "--max-examples", "30", "--workers", "1",
                "--phases", "examples,coverage,fuzzing", "--seed", "20240601",
                "--request-timeout", "30", "--no-color", "--report", "junit",
                "--report-dir", str(workdir)]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            cwd=workdir)  # its example database goes there, not into the repository
        out, _ = await asyncio.wait_for(proc.communicate(), 400)
        text = out.decode(errors="replace")
        assert proc.returncode == 0, text[-6000:]
        assert " passed" in text and "failed" not in text.split("Test cases:")[-1], text[-3000:]
        if extra:
            assert "Missing test data" not in text, text[-3000:]

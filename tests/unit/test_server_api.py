"""The HTTP API against a fake Kubernetes API: auth order, status codes, one action written."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rollouts.kube.auth import Authorizer, TTLCache
from rollouts.kube.client import KubeError
from rollouts.server.api import install

ROLLOUT: dict[str, Any] = {
    "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
    "metadata": {"name": "demo", "namespace": "a", "generation": 1, "resourceVersion": "7"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
             "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c"}]}},
             "strategy": {"canary": {"canaryService": "c", "stableService": "s", "steps": [{"pause": {}}],
                                     "trafficRouting": {"istio": {"virtualService": {"name": "v"}}}}}},
    "status": {"observedGeneration": 1, "phase": "Paused", "stableRS": "old", "currentPodHash": "new",
               "currentStepIndex": 0},
}
# token -> (username, {(verb, namespace)})
USERS = {"judge": ("sa:judge", {("get", "a"), ("list", "a"), ("promote", "a"), ("abort", "a")}),
         "viewer": ("sa:viewer", {("get", "a")})}


class FakeKube:
    def __init__(self) -> None:
        self.objects = {("a", "demo"): copy.deepcopy(ROLLOUT)}
        self.patches: list[dict[str, Any]] = []
        self.reviews = 0

    async def create(self, path: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.reviews += 1
        if path.endswith("tokenreviews"):
            u = USERS.get(body["spec"]["token"])
            return {"status": {"authenticated": bool(u), "user": {"username": u[0]} if u else {}}}
        spec = body["spec"]
        attrs = spec["resourceAttributes"]
        allowed = any(name == spec["user"] and (attrs["verb"], attrs["namespace"]) in rights
                      for name, rights in USERS.values())
        return {"status": {"allowed": allowed}}

    async def get(self, path: str) -> dict[str, Any]:
        parts = path.split("/")
        key = (parts[parts.index("namespaces") + 1], parts[-1])
        if key not in self.objects:
            raise KubeError(404, "not found")
        return copy.deepcopy(self.objects[key])

    async def get_list(self, path: str, **_: Any) -> dict[str, Any]:
        return {"items": [copy.deepcopy(o) for o in self.objects.values()]}

    async def merge_patch(self, path: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.patches.append(body)
        obj = self.objects[("a", "demo")]
        obj["status"].update(body["status"])
        return obj


@pytest.fixture
def api() -> tuple[TestClient, FakeKube]:
    kube = FakeKube()
    app = FastAPI()
    install(app, kube)  # type: ignore[arg-type]
    return TestClient(app), kube


URL = "/api/v1/namespaces/a/rollouts/demo"


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_401_403_before_anything_else(api: tuple[TestClient, FakeKube]) -> None:
    c, kube = api
    assert c.post(f"{URL}/promote").status_code == 401
    assert c.post(f"{URL}/promote", headers=h("bogus")).status_code == 401
    r = c.post(f"{URL}/promote", headers=h("viewer"), content=b"{bad")
    assert r.status_code == 403 and "sa:viewer cannot promote" in r.json()["detail"]
    assert c.post("/api/v1/namespaces/b/rollouts/demo/promote", headers=h("judge")).status_code == 403
    assert c.get("/api/v1/namespaces/a/rollouts/nope", headers=h("viewer")).status_code == 404
    assert kube.patches == []


def test_promote_records_the_caller(api: tuple[TestClient, FakeKube]) -> None:
    c, kube = api
    r = c.post(f"{URL}/promote", headers=h("judge"), json={"full": True})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["user"] == "sa:judge" and body["full"] is True and body["podHash"] == "new"
    (patch,) = kube.patches
    assert patch["metadata"] == {"resourceVersion": "7"}
    assert patch["status"]["pendingAction"]["user"] == "sa:judge"
    # a second action while one is pending: 409, nothing written
    r = c.post(f"{URL}/abort", headers=h("judge"))
    assert r.status_code == 409 and "pending" in r.json()["detail"]
    assert len(kube.patches) == 1


def test_409_and_422(api: tuple[TestClient, FakeKube]) -> None:
    c, kube = api
    kube.objects[("a", "demo")]["status"]["phase"] = "Healthy"
    kube.objects[("a", "demo")]["status"]["stableRS"] = "new"
    r = c.post(f"{URL}/promote", headers=h("judge"))
    assert r.status_code == 409 and "no canary is in progress" in r.json()["detail"]
    r = c.post(f"{URL}/promote", headers={**h("judge"), "Content-Type": "application/json"},
               content=b"{bad")
    assert r.status_code == 422 and "JSON" in r.json()["message"]
    r = c.post(f"{URL}/promote", headers=h("judge"), json={"full": "yes please"})
    assert r.status_code == 422 and r.json()["message"].startswith("full:")
    assert c.get("/api/v1/namespaces/A_B/rollouts/demo", headers=h("judge")).status_code == 422
    assert kube.patches == []


def test_get_and_list(api: tuple[TestClient, FakeKube]) -> None:
    c, _ = api
    r = c.get(URL, headers=h("viewer"))
    assert r.status_code == 200 and r.json()["steps"][0]["state"] == "current"
    assert c.get("/api/v1/namespaces/a/rollouts", headers=h("viewer")).status_code == 403
    r = c.get("/api/v1/namespaces/a/rollouts", headers=h("judge"))
    assert [i["name"] for i in r.json()["items"]] == ["demo"]


async def test_decisions_are_cached_briefly() -> None:
    now = [0.0]
    kube = FakeKube()
    authz = Authorizer(kube, ttl=10, clock=lambda: now[0])  # type: ignore[arg-type]
    user = await authz.authenticate("judge")
    assert user is not None and await authz.authenticate("bogus") is None
    assert await authz.allowed("judge", user, "promote", "a", "demo")
    n = kube.reviews
    assert await authz.authenticate("judge") == user and await authz.authenticate("bogus") is None
    assert await authz.allowed("judge", user, "promote", "a", "demo")
    assert kube.reviews == n  # all from the cache
    now[0] = 11
    assert await authz.allowed("judge", user, "promote", "a", "demo")
    assert kube.reviews == n + 1


def test_ttl_cache_evicts_oldest() -> None:
    c: TTLCache[str, int] = TTLCache(ttl=5, size=2, clock=lambda: 0.0)
    for i, k in enumerate("abc"):
        c.put(k, i)
    assert c.lookup("a") == (False, None) and c.lookup("c") == (True, 2)

"""The HTTP API against a fake Kubernetes API: auth order, status codes, one action written.

The app is the controller's own (``rollouts.server.app.create_app``), so what is tested
here is what ``--listen`` serves, /metrics and health included.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rollouts.kube.auth import Authorizer, TTLCache
from rollouts.kube.client import KubeError
from rollouts.observability.metrics import ControllerMetrics
from rollouts.server.api import MAX_BODY_BYTES
from rollouts.server.app import create_app, create_plain_metrics_app

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
# token -> (username, {(verb, namespace)}); ("get", "/metrics") is the non-resource URL
USERS = {"judge": ("sa:judge", {("get", "a"), ("list", "a"), ("promote", "a"), ("abort", "a")}),
         "viewer": ("sa:viewer", {("get", "a")}),
         "prometheus": ("sa:prometheus", {("get", "/metrics")})}
APISERVER_AUDIENCE = "https://kubernetes.default.svc"
# tokens minted for another audience than the API server's: token -> (username, audience)
AUDIENCE_TOKENS = {"ci-for-rollouts": ("sa:ci", "rollouts.dev/api"),
                   "ci-for-vault": ("sa:ci", "vault")}


class FakeKube:
    """TokenReview and SubjectAccessReview as the API server answers them."""

    def __init__(self) -> None:
        self.objects = {("a", "demo"): copy.deepcopy(ROLLOUT)}
        self.patches: list[dict[str, Any]] = []
        self.reviews = 0
        self.token_reviews: list[dict[str, Any]] = []
        self.review_delay = 0.0

    async def create(self, path: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.reviews += 1
        if path.endswith("tokenreviews"):
            self.token_reviews.append(body["spec"])
            await asyncio.sleep(self.review_delay)
            return self._token_review(body["spec"])
        spec = body["spec"]
        attrs = spec.get("resourceAttributes") or spec["nonResourceAttributes"]
        where = attrs.get("namespace", attrs.get("path"))
        allowed = any(name == spec["user"] and (attrs["verb"], where) in rights
                      for name, rights in USERS.values())
        return {"status": {"allowed": allowed}}

    @staticmethod
    def _token_review(spec: dict[str, Any]) -> dict[str, Any]:
        wanted = spec.get("audiences") or [APISERVER_AUDIENCE]
        token = spec["token"]
        if token in USERS:
            user, audience = USERS[token][0], APISERVER_AUDIENCE
        elif token in AUDIENCE_TOKENS:
            user, audience = AUDIENCE_TOKENS[token]
        else:
            return {"status": {"authenticated": False}}
        if audience not in wanted:  # the service-account authenticator is audience-aware
            return {"status": {"authenticated": False, "error": "token audiences are invalid"}}
        return {"status": {"authenticated": True, "user": {"username": user},
                           "audiences": [audience] if spec.get("audiences") else []}}

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


def app_for(kube: FakeKube, **kw: Any) -> TestClient:
    return TestClient(create_app(kube, ready=lambda: True, metrics=ControllerMetrics(),  # type: ignore[arg-type]
                                 **kw))


@pytest.fixture
def api() -> tuple[TestClient, FakeKube]:
    kube = FakeKube()
    return app_for(kube), kube


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


# --- item 7: no body makes a 500, booleans are strict --------------------------------

BAD_BODIES = [
    pytest.param(b'{"full": NaN}', id="NaN"),
    pytest.param(b'{"full": Infinity}', id="Infinity"),
    pytest.param(b'{"full": -Infinity}', id="-Infinity"),
    pytest.param(b'{"full": 1e999}', id="overflowing-float"),
    pytest.param(b"[" * 100_000, id="100000-nested-brackets"),
    pytest.param(b"[" * 10_000, id="10000-nested-brackets"),
    pytest.param(b'{"full": ' + b"[" * 5000 + b"]" * 5000 + b"}", id="deep-but-closed"),
    pytest.param(b'{"full": "yes"}', id="yes"),
    pytest.param(b'{"full": "on"}', id="on"),
    pytest.param(b'{"full": "true"}', id="string-true"),
    pytest.param(b'{"full": 1}', id="one"),
    pytest.param(b'{"full": 0}', id="zero"),
    pytest.param(b'{"full": null}', id="null"),
    pytest.param(b"null", id="body-null"),
    pytest.param(b"[true]", id="body-array"),
    pytest.param(b'{"full": "\xe9"}', id="invalid-utf8"),
    pytest.param(b'{"full": true} trailing', id="trailing"),
]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_any_bad_promote_body_is_a_4xx_that_writes_nothing(
        api: tuple[TestClient, FakeKube], body: bytes) -> None:
    c, kube = api
    r = c.post(f"{URL}/promote", content=body,
               headers={**h("judge"), "Content-Type": "application/json"})
    if len(body) > MAX_BODY_BYTES:
        assert r.status_code == 413, r.text
    else:
        assert r.status_code == 422, r.text
        detail = r.json()
        assert detail["message"] and all(set(e) == {"type", "loc", "msg"} for e in detail["detail"])
    assert len(r.content) < 2000  # the offending input is not echoed back
    assert kube.patches == []


def test_an_oversized_promote_body_is_a_413(api: tuple[TestClient, FakeKube]) -> None:
    c, kube = api
    big = b'{"full": false, "x": "' + b"a" * 100_000 + b'"}'
    r = c.post(f"{URL}/promote", content=big, headers=h("judge"))
    assert r.status_code == 413 and "larger than" in r.json()["detail"]

    def chunks() -> Any:  # no Content-Length: counted while streaming
        for _ in range(10):
            yield b"[" * 4096
    r = c.post(f"{URL}/promote", content=chunks(), headers=h("judge"))
    assert r.status_code == 413
    assert kube.patches == []


@pytest.mark.parametrize("body", [b'{"full": true}', b'{"full": false}', b"{}", b"", b"  "])
def test_real_booleans_and_empty_bodies_are_accepted(
        api: tuple[TestClient, FakeKube], body: bytes) -> None:
    c, kube = api
    r = c.post(f"{URL}/promote", content=body, headers=h("judge"))
    assert r.status_code == 202, r.text
    assert r.json()["full"] is (body == b'{"full": true}')
    assert len(kube.patches) == 1


# --- item 8: audiences, negative cache, /metrics behind auth, open health ---------------

def test_tokens_for_our_audience_are_accepted_as_well_as_the_api_servers() -> None:
    kube = FakeKube()
    theirs = app_for(kube)
    assert theirs.get(URL, headers=h("ci-for-rollouts")).status_code == 401
    ours = app_for(kube, audiences=("rollouts.dev/api",))
    kube.token_reviews.clear()
    assert ours.get(URL, headers=h("ci-for-rollouts")).status_code == 403  # known: sa:ci
    assert kube.token_reviews[0]["audiences"] == ["rollouts.dev/api"]
    assert ours.get(URL, headers=h("viewer")).status_code == 200  # the API server's audience
    assert ours.get(URL, headers=h("ci-for-vault")).status_code == 401  # someone else's


async def test_a_rejected_token_is_not_reviewed_again_for_a_while() -> None:
    now = [0.0]
    kube = FakeKube()
    authz = Authorizer(kube, ttl=10, clock=lambda: now[0], negative_ttl=5)  # type: ignore[arg-type]
    for _ in range(100):
        assert await authz.authenticate("bogus") is None
    assert len(kube.token_reviews) == 1
    now[0] = 6  # briefly: a token that becomes valid is not refused for long
    assert await authz.authenticate("bogus") is None
    assert len(kube.token_reviews) == 2


async def test_concurrent_requests_with_one_bad_token_make_one_token_review() -> None:
    kube = FakeKube()
    kube.review_delay = 0.05
    authz = Authorizer(kube)  # type: ignore[arg-type]
    results = await asyncio.gather(*(authz.authenticate("bogus") for _ in range(200)))
    assert results == [None] * 200
    assert len(kube.token_reviews) == 1


async def test_a_flood_of_distinct_bad_tokens_is_bounded_and_keeps_good_tokens_cached() -> None:
    kube = FakeKube()
    authz = Authorizer(kube, clock=lambda: 0.0, negative_size=64,  # type: ignore[arg-type]
                       max_reviews=4)
    assert await authz.authenticate("judge") is not None
    in_flight = peak = 0
    real_create = kube.create

    async def counting(path: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await real_create(path, body, **kw)
        finally:
            in_flight -= 1
    kube.create = counting  # type: ignore[method-assign]
    await asyncio.gather(*(authz.authenticate(f"bad-{i}") for i in range(5000)))
    assert peak <= 4  # never more than max_reviews TokenReviews at once
    n = len(kube.token_reviews)
    assert await authz.authenticate("judge") is not None  # still cached: no review
    assert len(kube.token_reviews) == n


def test_metrics_need_a_token_allowed_to_get_the_metrics_url(api: tuple[TestClient, FakeKube]) -> None:
    c, _ = api
    r = c.get("/metrics")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert c.get("/metrics", headers=h("bogus")).status_code == 401
    r = c.get("/metrics", headers=h("judge"))  # may promote, but not read /metrics
    assert r.status_code == 403 and "nonResourceURLs" in r.json()["detail"]
    r = c.get("/metrics", headers=h("prometheus"))
    assert r.status_code == 200 and "controller_runtime_reconcile_total" in r.text
    # and that token gets nothing from the rollouts API
    assert c.get(URL, headers=h("prometheus")).status_code == 403


def test_health_and_docs_need_no_token(api: tuple[TestClient, FakeKube]) -> None:
    c, kube = api
    assert c.get("/healthz").text == "ok" and c.get("/readyz").status_code == 200
    assert c.get("/openapi.json").status_code == 200 and c.get("/docs").status_code == 200
    assert kube.reviews == 0
    not_ready = TestClient(create_app(kube, ready=lambda: False))  # type: ignore[arg-type]
    assert not_ready.get("/readyz").status_code == 503


def test_the_plain_metrics_listener_serves_only_metrics_and_health() -> None:
    c = TestClient(create_plain_metrics_app(ControllerMetrics(), ready=lambda: True))
    assert c.get("/metrics").status_code == 200 and c.get("/healthz").status_code == 200
    assert c.get("/readyz").status_code == 200
    assert c.get(URL).status_code == 404 and c.get("/openapi.json").status_code == 404

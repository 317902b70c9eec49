"""The dashboard's server side against a fake Kubernetes API: auth on every data call,
the RBAC answers that decide which buttons show, the rollout tree (ReplicaSets and pods by
role), the judge's evidence over time replayed from a run's snapshots, and pages and
Swagger UI served from the controller's own files (nothing from a CDN)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rollouts.kube.client import KubeError
from rollouts.metrics import judge
from rollouts.server.app import create_app
from rollouts.server.dashboard import evidence, routes
from rollouts.server.dashboard.tree import replica_sets

UID = "uid-demo"
JUDGE = {"address": "http://prometheus:9090", "alpha": "{{args.alpha}}",
         "canary": {"requests": "sum(c)", "errors": "sum(ce)"},
         "baseline": {"requests": "sum(b)", "errors": "sum(be)"}}


def snapshots(n: int, canary_rate: float) -> list[dict[str, Any]]:
    return [{"t": 1000.0 + 30 * i,
             "canary": {"requests": 200.0 * i, "errors": 200.0 * i * canary_rate},
             "baseline": {"requests": 2000.0 * i, "errors": 2000.0 * i * 0.01}} for i in range(1, n + 1)]


def run(snaps: list[dict[str, Any]], *, alpha: dict[str, Any] | None = None, rv: str = "5",
        name: str = "demo-new-0-step-1") -> dict[str, Any]:
    return {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": name, "namespace": "a", "uid": f"u-{name}", "resourceVersion": rv,
                     "creationTimestamp": "2026-11-30T20:00:00Z",
                     "labels": {"rollouts.dev/rollout": "demo", "rollouts-pod-template-hash": "new",
                                "rollouts.dev/analysis": "step", "rollouts.dev/step": "1"},
                     "ownerReferences": [{"uid": UID, "controller": True, "kind": "Rollout"}]},
        "spec": {"args": [alpha if alpha is not None else {"name": "alpha", "value": "0.05"}],
                 "metrics": [{"name": "judge", "provider": {"judge": JUDGE}}]},
        "status": {"phase": "Running", "metricResults": [{
            "name": "judge", "phase": "Running", "count": len(snaps), "successful": len(snaps),
            "measurements": [{"phase": "Successful", "value": "continue", "decision": "continue",
                              "finishedAt": f"2026-11-30T20:0{i}:00Z"} for i in range(len(snaps))],
            "judgeSnapshots": snaps, "evidence": {"explanation": "latest"}}]},
    }


# ---- the judge's evidence over time (pure)

def test_history_has_one_point_per_snapshot_and_ends_at_the_controllers_verdict() -> None:
    snaps = snapshots(8, canary_rate=0.02)  # 2 x the stable error rate: the evidence grows
    h = evidence.judge_history(run(snaps), "judge", run(snaps)["status"]["metricResults"][0])
    pts = h["points"]
    assert "error" not in h and [p["t"] for p in pts] == [s["t"] for s in snaps]
    final = judge.verdict({**JUDGE, "alpha": "0.05"}, snaps).metrics[0]
    last = pts[-1]["tests"]["error-rate"]
    assert last["eValue"] == pytest.approx(final.e_value) and last["threshold"] == final.threshold
    assert last["low"] == pytest.approx(final.ci_low)
    e = [p["tests"]["error-rate"]["eValue"] for p in pts if "error-rate" in p["tests"]]
    # a worse canary: the e-value rises over the looks
    assert len(e) == len(snaps) - 1 and e == sorted(e) and e[-1] > 2 * e[0]
    # per-arm error rates and request counts (counted from the first snapshot on)
    assert pts[-1]["canaryErrorRate"] == pytest.approx(0.02)
    assert pts[-1]["baselineErrorRate"] == pytest.approx(0.01)
    assert pts[-1]["canaryRequests"] < pts[-1]["baselineRequests"]


def test_history_of_a_healthy_canary_stays_below_the_threshold() -> None:
    snaps = snapshots(6, canary_rate=0.01)
    pts = evidence.judge_history(run(snaps), "judge", run(snaps)["status"]["metricResults"][0])["points"]
    tests = [p["tests"]["error-rate"] for p in pts if "error-rate" in p["tests"]]
    assert tests and all(t["eValue"] < t["threshold"] for t in tests)
    assert {p["decision"] for p in pts} == {"continue"}


def test_history_says_why_when_a_parameter_comes_from_a_secret() -> None:
    secret = {"name": "alpha", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    r = run(snapshots(3, 0.01), alpha=secret)
    h = evidence.judge_history(r, "judge", r["status"]["metricResults"][0])
    assert h["points"] == [] and "args.alpha" in h["error"]


def test_history_of_a_bad_snapshot_is_an_error_not_an_exception() -> None:
    r = run([{"canary": {"requests": 1.0}, "baseline": {"requests": 1.0}}])  # no time
    h = evidence.judge_history(r, "judge", r["status"]["metricResults"][0])
    assert h["points"] == [] and "cannot be replayed" in h["error"]


def test_run_view_lists_measurements_newest_bounded() -> None:
    r = run(snapshots(40, 0.01))
    v = evidence.run_view(r)
    m = v["metrics"][0]
    assert v["kind"] == "step" and v["step"] == "1" and v["revision"] == "new"
    assert m["measurementsTotal"] == 40 and len(m["measurements"]) == evidence.MAX_MEASUREMENTS
    assert len(m["judge"]["history"]["points"]) == 40
    # a non-judge metric has no judge block
    plain = copy.deepcopy(r)
    plain["spec"]["metrics"] = [{"name": "judge", "provider": {"prometheus": {"query": "x"}}}]
    del plain["status"]["metricResults"][0]["judgeSnapshots"]
    assert "judge" not in evidence.run_view(plain)["metrics"][0]


# ---- the tree (pure)

def _rs(h: str, rev: int, uid: str = UID) -> dict[str, Any]:
    return {"metadata": {"name": f"demo-{h}", "uid": f"rs-{h}", "labels": {"rollouts-pod-template-hash": h},
                         "annotations": {"rollouts.dev/revision": str(rev)},
                         "ownerReferences": [{"uid": uid, "controller": True}]},
            "spec": {"replicas": 1,
                     "template": {"spec": {"containers": [{"name": "c", "image": f"img:{rev}"}]}}},
            "status": {"readyReplicas": 1, "availableReplicas": 1}}


def _pod(name: str, h: str, owner: str, *, waiting: str = "") -> dict[str, Any]:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {"metadata": {"name": name, "labels": {"rollouts-pod-template-hash": h},
                         "creationTimestamp": "2026-11-30T20:00:00Z",
                         "ownerReferences": [{"uid": owner, "controller": True}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"ready": not waiting, "restartCount": 2 if waiting else 0, "state": state}]}}


def test_tree_gives_each_replicaset_its_role_and_only_its_own_pods() -> None:
    summary = {"revisions": {"canary": "new", "stable": "old"}, "blueGreen": None}
    rows = replica_sets(summary, [_rs("old", 1), _rs("new", 2), _rs("older", 0)], [
        _pod("p-old", "old", "rs-old"), _pod("p-new", "new", "rs-new", waiting="CrashLoopBackOff"),
        _pod("stray", "new", "someone-else")])
    assert [(r["role"], r["revision"]) for r in rows] == [("canary", 2), ("stable", 1), ("old", 0)]
    assert [p["name"] for p in rows[0]["pods"]] == ["p-new"]
    assert rows[0]["pods"][0] | {"age": "", "createdAt": ""} == {
        "name": "p-new", "status": "CrashLoopBackOff", "ready": "0/1", "restarts": 2,
        "age": "", "createdAt": ""}
    bg = {"revisions": {"canary": "new", "stable": "old"},
          "blueGreen": {"activeSelector": "old", "previewSelector": "new"}}
    assert [r["role"] for r in replica_sets(bg, [_rs("old", 1), _rs("new", 2)], [])] == ["preview", "active"]


# ---- the routes, against a fake API server

ROLLOUT: dict[str, Any] = {
    "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
    "metadata": {"name": "demo", "namespace": "a", "uid": UID, "generation": 1},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
             "template": {"metadata": {"labels": {"app": "d"}},
                          "spec": {"containers": [{"name": "c", "image": "i:2"}]}},
             "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}},
    "status": {"observedGeneration": 1, "phase": "Paused", "stableRS": "old", "currentPodHash": "new",
               "currentStepIndex": 1,
               "canary": {"weights": {"canary": {"weight": 20}, "stable": {"weight": 80}}}},
}
USERS = {"judge": ("sa:judge", {"get", "list", "promote", "abort"}), "viewer": ("sa:viewer", {"get"}),
         "nobody": ("sa:nobody", set())}


class FakeKube:
    def __init__(self) -> None:
        self.runs = [run(snapshots(5, 0.01))]
        self.reviews: list[dict[str, Any]] = []
        self.lists: list[str] = []

    async def create(self, path: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        spec = body["spec"]
        if path.endswith("tokenreviews"):
            u = USERS.get(spec["token"])
            return {"status": {"authenticated": bool(u), **({"user": {"username": u[0]}} if u else {})}}
        self.reviews.append(spec)
        attrs = spec["resourceAttributes"]
        allowed = any(n == spec["user"] and attrs["verb"] in verbs and attrs["namespace"] == "a"
                      for n, verbs in USERS.values())
        return {"status": {"allowed": allowed}}

    async def get(self, path: str) -> dict[str, Any]:
        if path.endswith("/rollouts/demo") and "/namespaces/a/" in path:
            return copy.deepcopy(ROLLOUT)
        raise KubeError(404, "not found")

    async def get_list(self, path: str, **q: Any) -> dict[str, Any]:
        self.lists.append(path)
        if path.endswith("/replicasets"):
            return {"items": [_rs("old", 1), _rs("new", 2), _rs("x", 3, uid="another-rollout")]}
        if path.endswith("/pods"):
            return {"items": [_pod("p-new", "new", "rs-new"), _pod("p-old", "old", "rs-old")]}
        if path.endswith("/analysisruns"):
            return {"items": copy.deepcopy(self.runs)}
        if path.endswith("/events"):
            return {"items": [{"reason": "RolloutPaused", "message": "paused", "type": "Normal",
                               "lastTimestamp": "2026-11-30T20:00:00Z", "involvedObject": {"uid": UID}}]}
        return {"items": [copy.deepcopy(ROLLOUT)]}


@pytest.fixture
def fake() -> FakeKube:
    return FakeKube()


@pytest.fixture
def client(fake: FakeKube) -> TestClient:
    return TestClient(create_app(fake, ready=lambda: True))  # type: ignore[arg-type]


def bearer(t: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {t}"}


BASE = "/api/v1/namespaces/a/rollouts/demo"


def test_every_data_call_needs_a_valid_token(client: TestClient) -> None:
    for path in ("/api/v1/whoami", f"{BASE}/access", f"{BASE}/tree"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers=bearer("forged")).status_code == 401, path
    r = client.get("/api/v1/whoami", headers=bearer("viewer"))
    assert r.status_code == 200 and r.json() == {"username": "sa:viewer", "groups": []}


def test_access_answers_the_verbs_rbac_grants_this_caller(client: TestClient, fake: FakeKube) -> None:
    r = client.get(f"{BASE}/access", headers=bearer("judge"))
    assert r.json()["verbs"] == {"get": True, "promote": True, "abort": True, "retry": False,
                                 "pause": False, "resume": False}
    # asked about the caller, on this rollout, by SubjectAccessReview
    assert {(s["user"], s["resourceAttributes"]["name"]) for s in fake.reviews} == {("sa:judge", "demo")}
    r = client.get(f"{BASE}/access", headers=bearer("nobody"))
    assert r.status_code == 200 and not any(r.json()["verbs"].values())


def test_access_outside_the_managed_namespace_grants_nothing(fake: FakeKube) -> None:
    c = TestClient(create_app(fake, ready=lambda: True, namespace="other"))  # type: ignore[arg-type]
    assert not any(c.get(f"{BASE}/access", headers=bearer("judge")).json()["verbs"].values())


def test_tree_needs_get_on_the_rollout(client: TestClient, fake: FakeKube) -> None:
    r = client.get(f"{BASE}/tree", headers=bearer("nobody"))
    assert r.status_code == 403 and "sa:nobody cannot get" in r.json()["detail"]
    assert fake.lists == []  # refused before anything is read
    assert client.get("/api/v1/namespaces/a/rollouts/nope/tree", headers=bearer("viewer")).status_code == 404


def test_tree_has_replicasets_pods_runs_and_evidence(client: TestClient) -> None:
    t = client.get(f"{BASE}/tree", headers=bearer("viewer")).json()
    assert t["rollout"]["currentStepIndex"] == 1 and t["rollout"]["weights"] == {"canary": 20, "stable": 80}
    assert [(r["role"], [p["name"] for p in r["pods"]]) for r in t["replicaSets"]] == [
        ("canary", ["p-new"]), ("stable", ["p-old"])]  # another rollout's ReplicaSet is not listed
    (a,) = t["analysisRuns"]
    assert a["phase"] == "Running" and len(a["metrics"][0]["judge"]["history"]["points"]) == 5
    assert t["events"][0]["reason"] == "RolloutPaused"


def test_tree_stands_without_events_when_they_cannot_be_listed(client: TestClient, fake: FakeKube,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    real = fake.get_list

    async def no_events(path: str, **q: Any) -> dict[str, Any]:
        if path.endswith("/events"):
            raise KubeError(403, "events is forbidden")
        return await real(path, **q)
    monkeypatch.setattr(fake, "get_list", no_events)
    r = client.get(f"{BASE}/tree", headers=bearer("viewer"))
    assert r.status_code == 200 and r.json()["events"] == [], r.text
    assert "events is forbidden" in r.json()["eventsError"] and r.json()["replicaSets"]


def test_an_unchanged_run_is_not_replayed_again(client: TestClient, fake: FakeKube,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = routes.run_view
    monkeypatch.setattr(routes, "run_view", lambda r: calls.append(1) or real(r))
    for _ in range(3):
        client.get(f"{BASE}/tree", headers=bearer("viewer"))
    assert len(calls) == 1
    fake.runs[0]["metadata"]["resourceVersion"] = "6"  # a new measurement: replayed
    client.get(f"{BASE}/tree", headers=bearer("viewer"))
    assert len(calls) == 2


# ---- pages and files: all from the controller, nothing from elsewhere

EXTERNAL = re.compile(r"""(src|href)\s*=\s*["']?(https?:)?//""", re.I)


def test_dashboard_page_and_files_are_local_and_locked_to_this_origin(client: TestClient) -> None:
    r = client.get("/dashboard/")
    assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
    assert not EXTERNAL.search(r.text)
    for asset in re.findall(r'(?:src|href)="(/dashboard/static/[^"]+)"', r.text):
        a = client.get(asset)
        assert a.status_code == 200 and len(a.content) > 100, asset
        assert "cdn" not in a.text.lower() and not EXTERNAL.search(a.text), asset
    assert client.get("/", follow_redirects=False).headers["location"] == "/dashboard/"


def test_swagger_ui_is_served_from_local_files(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200 and "SwaggerUIBundle" in r.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert assets and all(a.startswith("/docs/static/") for a in assets), assets
    for a in assets:
        assert client.get(a).status_code == 200, a
    js = client.get("/docs/static/swagger-ui-bundle.js")
    assert len(js.content) > 500_000  # the real bundle, not a placeholder
    # the 3.1 document FastAPI writes needs Swagger UI 5
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
    assert re.search(rb'"5\.\d+\.\d+"', js.content)

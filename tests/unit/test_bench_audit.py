"""The controller benchmark's server-side step latencies: the first object version that met
each milestone (as the benchmark's watches saw it) looked up by resourceVersion in the
API server's audit log, both ends of a step timed by the API server's stageTimestamp."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from benchmarks._controller_scale import (
    ARGO_ROLLOUTS,
    AUDIT_POLICY,
    ROLLOUTS,
    SRV_AVAIL_HEALTHY,
    SRV_AVAIL_W20,
    SRV_W20_STEP,
    Observer,
    Version,
    audit_commit_times,
    audit_time,
    server_latencies,
)

NS = "bench-20-0"


def event(verb: str, resource: str, name: str, rv: str, ts: str, *, group: str = "",
          sub: str | None = None, code: int = 200, stage: str = "ResponseComplete",
          kind: str = "Object") -> str:
    """One audit.k8s.io/v1 Event as kube-apiserver's JSON backend writes it (one line)."""
    ref: dict[str, Any] = {"resource": resource, "namespace": NS, "name": name,
                           "apiGroup": group, "apiVersion": "v1"}
    if sub:
        ref["subresource"] = sub
    resp: dict[str, Any] = (
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "reason": "Conflict", "code": code} if code >= 300 else
        {"kind": kind, "apiVersion": f"{group}/v1" if group else "v1",
         "metadata": {"name": name, "namespace": NS, "resourceVersion": rv}})
    return json.dumps({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
        "auditID": f"id-{name}-{rv}-{ts}", "stage": stage,
        "requestURI": f"/apis/{group}/v1/namespaces/{NS}/{resource}/{name}",
        "verb": verb, "user": {"username": "admin"}, "sourceIPs": ["127.0.0.1"],
        "objectRef": ref, "responseStatus": {"metadata": {}, "code": code},
        "requestObject": {"metadata": {"name": name}}, "responseObject": resp,
        "requestReceivedTimestamp": ts, "stageTimestamp": ts,
    })


def rs_version(name: str, rv: str) -> Version:
    return Version("apps", "replicasets", NS, name, rv)


def test_stage_timestamp_keeps_microseconds() -> None:
    a, b = audit_time("2026-12-01T04:10:00.123456Z"), audit_time("2026-12-01T04:10:01.000001Z")
    assert b - a == pytest.approx(0.876545, abs=1e-6)


def test_commit_time_is_the_earliest_successful_write_of_that_version() -> None:
    rs = rs_version("app-0000-aaa", "101")
    lines = [
        event("update", "replicasets", "app-0000-aaa", "100", "2026-12-01T04:10:00.000000Z",
              group="apps", sub="status"),
        event("update", "replicasets", "app-0000-aaa", "101", "2026-12-01T04:10:00.250000Z",
              group="apps", sub="status"),
        # a no-op write answers with the same resourceVersion, later: not the commit
        event("update", "replicasets", "app-0000-aaa", "101", "2026-12-01T04:10:02.000000Z",
              group="apps", sub="status"),
        # a conflict answers with a Status, no version
        event("update", "replicasets", "app-0000-aaa", "", "2026-12-01T04:09:00.000000Z",
              group="apps", code=409),
        # another stage (not logged under the policy, but read defensively) and a cut line
        event("update", "replicasets", "app-0000-aaa", "101", "2026-12-01T04:09:59.000000Z",
              group="apps", stage="RequestReceived"),
        '{"kind":"Event","stage":"ResponseComplete","verb":"upd',
        "",
    ]
    times, writes = audit_commit_times(lines, {rs})
    assert times == {rs: audit_time("2026-12-01T04:10:00.250000Z")}
    assert writes == 4  # complete write events read, whether wanted or not


def test_latencies_from_watch_versions_and_audit_log_with_one_version_not_found() -> None:
    """Three rollouts through create and change, as the watches see them; the audit log has
    every write but one (the third rollout's Paused status, e.g. dropped or written before
    the log started): its weight -> step pair is skipped and counted."""
    obs = Observer([f"{NS}/app-{i}" for i in range(3)], ROLLOUTS)
    lines: list[str] = []

    def ts(sec: float) -> str:
        return f"2026-12-01T04:10:{sec:09.6f}Z"

    for i in range(3):
        app, key = f"app-{i}", f"{NS}/app-{i}"
        base = 10.0 * i
        # create: stable RS all available (rv 1i1), then Rollout Healthy (rv 1i2)
        stable = {"metadata": {"name": f"{app}-s", "namespace": NS, "resourceVersion": f"1{i}1",
                               "labels": {"rollouts-pod-template-hash": "s"},
                               "ownerReferences": [{"kind": "Rollout", "name": app}]},
                  "spec": {"replicas": 1}, "status": {"availableReplicas": 1}}
        obs.on_rs(stable, 0.0)
        lines.append(event("update", "replicasets", f"{app}-s", f"1{i}1", ts(base + 0.100000),
                           group="apps", sub="status"))
        healthy = {"apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
                   "metadata": {"name": app, "namespace": NS, "generation": 1,
                                "resourceVersion": f"1{i}2"},
                   "status": {"observedGeneration": 1, "phase": "Healthy", "stableRS": "s"}}
        obs.on_rollout(healthy, 0.0)
        lines.append(event("patch", "rollouts", app, f"1{i}2", ts(base + 0.130000),
                           group="rollouts.dev", sub="status"))
        # change: canary RS created, then available (rv 2i1); VS at 20 (2i2); Paused (2i3)
        obs.t[key].patched = 1.0
        canary: dict[str, Any] = {
            "metadata": {"name": f"{app}-c", "namespace": NS, "resourceVersion": f"2{i}0",
                         "labels": {"rollouts-pod-template-hash": "c"},
                         "ownerReferences": [{"kind": "Rollout", "name": app}]},
            "spec": {"replicas": 1}, "status": {}}
        obs.on_rs(canary, 2.0)
        canary = {**canary, "metadata": {**canary["metadata"], "resourceVersion": f"2{i}1"},
                  "status": {"availableReplicas": 1}}
        obs.on_rs(canary, 3.0)
        lines.append(event("create", "replicasets", f"{app}-c", f"2{i}0", ts(base + 1.0),
                           group="apps"))
        lines.append(event("update", "replicasets", f"{app}-c", f"2{i}1", ts(base + 2.000000),
                           group="apps", sub="status"))
        vs = {"metadata": {"name": app, "namespace": NS, "resourceVersion": f"2{i}2"},
              "spec": {"http": [{"route": [
                  {"destination": {"host": f"{app}-stable"}, "weight": 80},
                  {"destination": {"host": f"{app}-canary"}, "weight": 20}]}]}}
        obs.on_vs(vs, 4.0)
        lines.append(event("patch", "virtualservices", app, f"2{i}2", ts(base + 2.040000),
                           group="networking.istio.io"))
        paused = {"metadata": {"name": app, "namespace": NS, "generation": 2,
                               "resourceVersion": f"2{i}3"},
                  "status": {"observedGeneration": 2, "phase": "Paused", "currentStepIndex": 1,
                             "canary": {"weights": {"canary": {"weight": 20}}}}}
        obs.on_rollout(paused, 5.0)
        if i != 2:
            lines.append(event("patch", "rollouts", app, f"2{i}3", ts(base + 2.070000 + 0.01 * i),
                               group="rollouts.dev", sub="status"))

    # the watch milestones carry the version that met them
    rt = obs.t[f"{NS}/app-1"]
    assert rt.weight20_v == Version("networking.istio.io", "virtualservices", NS, "app-1", "212")
    assert rt.paused_v == Version("rollouts.dev", "rollouts", NS, "app-1", "213")
    assert rt.rs_available_v["c"] == rs_version("app-1-c", "211")

    pairs = obs.version_pairs()
    assert {k: len(v) for k, v in pairs.items()} == {
        SRV_AVAIL_HEALTHY: 3, SRV_AVAIL_W20: 3, SRV_W20_STEP: 3}
    wanted = {v for ps in pairs.values() for pair in ps for v in pair}
    times, writes = audit_commit_times(lines, wanted)
    assert writes == len(lines) == 17
    assert len(times) == len(wanted) - 1  # app-2's Paused version is not in the log

    srv = server_latencies(pairs, times)
    assert (srv[SRV_AVAIL_HEALTHY].matched, srv[SRV_AVAIL_HEALTHY].unmatched) == (3, 0)
    assert srv[SRV_AVAIL_HEALTHY].values == pytest.approx([0.03] * 3, abs=1e-6)
    assert (srv[SRV_AVAIL_W20].matched, srv[SRV_AVAIL_W20].unmatched) == (3, 0)
    assert srv[SRV_AVAIL_W20].values == pytest.approx([0.04] * 3, abs=1e-6)
    assert (srv[SRV_W20_STEP].matched, srv[SRV_W20_STEP].unmatched) == (2, 1)
    assert srv[SRV_W20_STEP].values == pytest.approx([0.03, 0.04], abs=1e-6)


def test_versions_name_the_group_of_the_controller_watched() -> None:
    obs = Observer([f"{NS}/app"], ARGO_ROLLOUTS)
    obs.on_rollout({"metadata": {"name": "app", "namespace": NS, "generation": 2,
                                 "resourceVersion": "7"},
                    "status": {"observedGeneration": "2", "phase": "Healthy", "stableRS": "s"}},
                   0.0)
    v = obs.t[f"{NS}/app"].healthy_v
    assert v == Version("argoproj.io", "rollouts", NS, "app", "7")
    # a write to the same name and version in the other group is another object
    line = event("update", "rollouts", "app", "7", "2026-12-01T04:10:00.000000Z",
                 group="rollouts.dev", sub="status")
    assert audit_commit_times([line], {v})[0] == {}


def test_policy_logs_only_the_writes_that_mark_a_step() -> None:
    pol = yaml.safe_load(AUDIT_POLICY)
    assert pol["apiVersion"] == "audit.k8s.io/v1" and pol["kind"] == "Policy"
    assert set(pol["omitStages"]) == {"RequestReceived", "ResponseStarted", "Panic"}
    first, last = pol["rules"]
    assert first["level"] == "RequestResponse"
    assert set(first["verbs"]) == {"create", "update", "patch"}
    groups = {r["group"]: set(r["resources"]) for r in first["resources"]}
    assert {"replicasets", "replicasets/status"} <= groups["apps"]
    assert groups["networking.istio.io"] == {"virtualservices"}
    assert groups["argoproj.io"] == groups["rollouts.dev"] == {"rollouts", "rollouts/status"}
    assert last == {"level": "None"}

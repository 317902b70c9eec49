"""Alerting end to end: the real Alertmanager and Prometheus of the test bed, local
webhook and Slack-format receivers, the controller as a process with the shipped RBAC."""

from __future__ import annotations

import asyncio
import base64
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from rollouts.kube.apply import apply
from rollouts.kube.client import Kube
from rollouts.kube.signals import request_action
from testbed.cluster import TestBed
from tests.e2e.kit import (
    REPO,
    ControllerProcess,
    eventually,
    get_rollout,
    phase_is,
    rollout,
    services,
    set_image,
    virtual_service,
)
from tests.e2e.test_analysis import (  # the analysis tests' set-up: simulator, templates
    SIM,
    analysis_step,
    judge_template,
    release,
    simulator,  # noqa: F401  (fixture)
)

STEPS: list[dict[str, Any]] = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """A local HTTP server recording the JSON bodies POSTed to it, in arrival order."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.url = ""

    async def _post(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        return web.Response(text="ok")


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", r._post)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    r.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield r
    finally:
        await runner.cleanup()


async def _deploy(rkube: Kube, ns: str) -> str:
    for obj in [*services(), virtual_service()]:
        await apply(rkube, obj, ns)
    await apply(rkube, rollout(STEPS, replicas=3, scaleDownDelaySeconds=2,
                               abortScaleDownDelaySeconds=2), ns)
    ro = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "first deploy Healthy")
    assert ro is not None
    return str(ro["status"]["stableRS"])


async def _at_pause(rkube: Kube, ns: str) -> bool:
    st = (await get_rollout(rkube, ns)).get("status") or {}
    return st.get("phase") == "Paused" and st.get("currentStepIndex") == 1


def _metrics(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


async def _groups(testbed: TestBed, ns: str) -> list[Any]:
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{testbed.alertmanager_url}/api/v2/alerts/groups",
                        params={"filter": f'namespace="{ns}"'})
        r.raise_for_status()
        return list(r.json())


async def _prom(testbed: TestBed, query: str) -> list[Any]:
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{testbed.prometheus_url}/api/v1/query", params={"query": query})
        r.raise_for_status()
        return list(r.json()["data"]["result"])


async def test_aborted_canary_fires_one_alert_resolved_after_retry_and_promotion(
        rkube: Kube, namespace: str, testbed: TestBed,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    port = _free_port()
    job = f"rollouts-{ns}"
    testbed.add_scrape_target(job, f"127.0.0.1:{port}")
    async with receiver() as am_hook:
        testbed.route_alerts("namespace", ns, am_hook.url)
        try:
            ctl = start_controller(f"--metrics-listen=127.0.0.1:{port}",
                                   f"--alertmanager-url={testbed.alertmanager_url}",
                                   "--alert-resend-seconds=2", "--notifications-configmap=")
            await _deploy(rkube, ns)
            healthy_q = f'rollout_phase{{namespace="{ns}",rollout="demo",phase="Healthy"}} == 1'
            await eventually(lambda: _prom(testbed, healthy_q), 30, "Prometheus scraping the controller")
            await set_image(rkube, ns, "demo:2")
            await eventually(lambda: _at_pause(rkube, ns), 60, "canary paused at step 1")
            await request_action(rkube, ns, "demo", "abort", user="e2e-user")
            await eventually(lambda: phase_is(rkube, ns, "Degraded"), 60, "aborted: Degraded")

            async def one_firing_group() -> list[Any] | None:
                groups = await _groups(testbed, ns)
                active = [g for g in groups if any(a["status"]["state"] == "active" for a in g["alerts"])]
                return groups if active else None

            groups = await eventually(one_firing_group, 30, "a firing alert group")
            await asyncio.sleep(5)  # re-sent twice meanwhile: still exactly one group, one alert
            groups = await _groups(testbed, ns)
            assert len(groups) == 1, groups
            (alert,) = groups[0]["alerts"]
            assert alert["status"]["state"] == "active"
            assert alert["labels"] == {"alertname": "RolloutAborted", "namespace": ns,
                                       "rollout": "demo", "severity": "critical"}
            assert "aborted by e2e-user" in alert["annotations"]["description"]
            assert ns in alert["annotations"]["summary"]

            # retry: the canary restarts (the alert holds), then a promotion makes it Healthy
            await request_action(rkube, ns, "demo", "retry", user="e2e-user")
            await eventually(lambda: _at_pause(rkube, ns), 60, "retried canary paused at step 1")
            assert len(await _groups(testbed, ns)) == 1
            await request_action(rkube, ns, "demo", "promote", user="e2e-user")
            await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "promoted: Healthy")

            async def resolved() -> bool:
                groups = await _groups(testbed, ns)
                return not any(a["status"]["state"] == "active" for g in groups for a in g["alerts"])

            await eventually(resolved, 30, "alert resolved in Alertmanager")
            # Alertmanager itself notified: firing, then resolved (its webhook, send_resolved)
            await eventually(lambda: _has_status(am_hook, "resolved"), 30, "resolved notification")
            statuses = [b["status"] for b in am_hook.bodies]
            assert statuses[0] == "firing" and statuses[-1] == "resolved", statuses
            assert {a["labels"]["alertname"] for b in am_hook.bodies for a in b["alerts"]} == {
                "RolloutAborted"}

            # Prometheus scraped the controller: the phase went to Degraded and back
            q = f'changes(rollout_phase{{namespace="{ns}",rollout="demo",phase="Degraded"}}[10m])'
            res = await eventually(lambda: _prom(testbed, f"({q}) >= 2"), 20, "phase change in PromQL")
            assert float(res[0]["value"][1]) >= 2
            healthy = await _prom(testbed, healthy_q)
            assert healthy and healthy[0]["metric"]["job"] == job
            m = _metrics(port)
            assert m[("rollouts_notifications_sent_total",
                      frozenset({("type", "alertmanager"), ("receiver", "alertmanager")}))] >= 3
            assert ctl.proc is not None and ctl.proc.poll() is None
        finally:
            testbed.route_alerts("namespace", ns, None)
            testbed.remove_scrape_target(job)


async def _has_status(r: Receiver, status: str) -> bool:
    return any(b.get("status") == status for b in r.bodies)


async def _notifications_rbac(rkube: Kube, ns: str) -> None:
    """The shipped notifications Role, bound in the test namespace (standing in for the
    controller's own namespace)."""
    for doc in yaml.safe_load_all((REPO / "deploy" / "10-rbac.yaml").read_text()):
        if doc and doc["metadata"]["name"] == "rollouts-controller-notifications":
            doc["metadata"]["namespace"] = ns
            await apply(rkube, doc, ns)


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


async def test_webhook_and_slack_receivers_in_order_and_a_dead_one_changes_nothing(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    port = _free_port()
    dead_url = f"http://127.0.0.1:{_free_port()}/nobody-listens"
    async with receiver() as hook, receiver() as slack:
        await _notifications_rbac(rkube, ns)
        await apply(rkube, _secret("rollouts-notifications", {
            "hook": hook.url, "slack": slack.url, "dead": dead_url}), ns)
        await apply(rkube, {"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "rollouts-notifications"}, "data": {
            "receiver.hook": "type: webhook\n"
                             "url: {secretKeyRef: {name: rollouts-notifications, key: hook}}\n",
            "receiver.chat": "type: slack\nchannel: '#deploys'\n"
                             "url: {secretKeyRef: {name: rollouts-notifications, key: slack}}\n",
            "receiver.dead": "type: webhook\n"
                             "url: {secretKeyRef: {name: rollouts-notifications, key: dead}}\n",
            "subscriptions": yaml.safe_dump([
                {"triggers": ["*"], "receivers": ["hook", "dead"]},
                {"triggers": ["on-rollout-paused", "on-rollout-completed"], "receivers": ["chat"]},
            ]),
        }}, ns)
        start_controller(f"--metrics-listen=127.0.0.1:{port}", f"--controller-namespace={ns}")
        first = await _deploy(rkube, ns)
        await set_image(rkube, ns, "demo:2")
        await eventually(lambda: _at_pause(rkube, ns), 60, "canary paused at step 1")
        await request_action(rkube, ns, "demo", "promote", user="e2e-user")
        ro = await eventually(lambda: phase_is(rkube, ns, "Healthy"), 60, "promoted: Healthy")
        assert ro is not None
        # the dead receiver changed nothing: the canary ran its steps and was promoted
        assert ro["status"]["stableRS"] != first
        assert ro["status"]["stableRS"] == ro["status"]["currentPodHash"]

        async def done() -> bool:
            return any(b["trigger"] == "on-rollout-completed" for b in hook.bodies) and len(slack.bodies) >= 2

        await eventually(done, 30, "the completion notification")
        interesting = {"on-rollout-updated", "on-rollout-step-completed", "on-rollout-paused",
                       "on-rollout-promoted", "on-rollout-completed"}
        seen = [b["trigger"] for b in hook.bodies if b["trigger"] in interesting]
        assert seen == ["on-rollout-updated",  # first revision
                        "on-rollout-updated",  # new revision: canary steps start
                        "on-rollout-step-completed",  # setWeight 20
                        "on-rollout-paused",
                        "on-rollout-promoted",
                        "on-rollout-step-completed",  # setWeight 60
                        "on-rollout-completed"], seen
        assert all(b["version"] == "rollouts.dev/v1" and b["rollout"]["namespace"] == ns
                   and b["rollout"]["name"] == "demo" for b in hook.bodies)
        promoted = next(b for b in hook.bodies if b["trigger"] == "on-rollout-promoted")
        assert "e2e-user" in promoted["event"]["message"]
        assert [b["channel"] for b in slack.bodies] == ["#deploys", "#deploys"]
        assert "on-rollout-paused" in slack.bodies[0]["text"] and "demo" in slack.bodies[0]["text"]
        assert "on-rollout-completed" in slack.bodies[1]["text"]
        assert slack.bodies[1]["attachments"][0]["fields"][0] == {
            "title": "Phase", "value": "Healthy", "short": True}

        def dead_failures() -> float:
            return sum(v for (name, labels), v in _metrics(port).items()
                       if name == "rollouts_notifications_failed_total"
                       and dict(labels).get("receiver") == "dead")

        async def counted() -> float:
            return dead_failures()

        await eventually(counted, 60, "the dead receiver counted as failed")
        m = _metrics(port)
        assert m[("rollouts_notifications_sent_total",
                  frozenset({("type", "webhook"), ("receiver", "hook")}))] == len(hook.bodies)
        assert not any(labels and dict(labels).get("receiver") in ("hook", "chat")
                       for (name, labels), _ in m.items() if name == "rollouts_notifications_failed_total")


def test_promtool_accepts_the_shipped_rules() -> None:
    rules = REPO / "deploy" / "monitoring" / "prometheus-rules.yml"
    out = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    # the PrometheusRule object carries the same groups
    obj = yaml.safe_load((REPO / "deploy" / "monitoring" / "prometheusrule.yaml").read_text())
    assert obj["kind"] == "PrometheusRule"
    assert obj["spec"] == yaml.safe_load(Path(rules).read_text())


async def test_grafana_dashboard_queries_are_valid_promql(testbed: TestBed) -> None:
    import json

    dash = json.loads((REPO / "deploy" / "monitoring" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    for e in exprs:
        q = e.replace("$namespace", ".*").replace("$rollout", ".*")
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{testbed.prometheus_url}/api/v1/query", params={"query": q})
        assert r.status_code == 200, (e, r.text)


@pytest.mark.usefixtures("simulator")
async def test_analysis_rollback_is_one_alert_with_the_verdict_resolved_after_retry_and_promotion(
        rkube: Kube, namespace: str, testbed: TestBed,
        start_controller: Callable[..., ControllerProcess]) -> None:
    ns, prom = namespace, testbed.prometheus_url
    start_controller(f"--alertmanager-url={testbed.alertmanager_url}", "--alert-resend-seconds=2",
                     "--notifications-configmap=")
    steps = [{"setWeight": 20}, analysis_step("canary-judge", prom), {"setWeight": 50}]
    await release(rkube, ns, steps, [judge_template(count=40)], prom,
                  canary={SIM + "error-rate": "0.03"})
    await eventually(lambda: phase_is(rkube, ns, "Degraded"), 150, "rolled back by analysis")

    async def firing() -> list[Any] | None:
        groups = await _groups(testbed, ns)
        return groups if any(a["status"]["state"] == "active" for g in groups for a in g["alerts"]) else None

    await eventually(firing, 30, "a firing alert group")
    await asyncio.sleep(4)
    groups = await _groups(testbed, ns)
    assert len(groups) == 1, groups
    (alert,) = groups[0]["alerts"]
    assert alert["labels"]["alertname"] == "RolloutAnalysisFailed"
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["rollout"] == "demo"
    desc = alert["annotations"]["description"]
    assert "error" in desc and "aborted" in desc, desc

    # retry, then a good promotion (full: past the analysis the bad canary would fail again)
    await request_action(rkube, ns, "demo", "retry", user="e2e-user")
    await eventually(lambda: phase_is(rkube, ns, "Progressing"), 60, "retried")
    await request_action(rkube, ns, "demo", "promote", user="e2e-user", full=True)
    await eventually(lambda: phase_is(rkube, ns, "Healthy"), 90, "promoted: Healthy")

    async def resolved() -> bool:
        groups = await _groups(testbed, ns)
        return not any(a["status"]["state"] == "active" for g in groups for a in g["alerts"])

    await eventually(resolved, 30, "alert resolved")

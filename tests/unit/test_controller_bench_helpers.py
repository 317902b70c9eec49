"""The side-by-side controller benchmark's pure parts: reading each controller's own request
counter from its /metrics text, and the target verdicts (never 'met' beside a figure that
does not meet the target)."""

from __future__ import annotations

from benchmarks._controller_scale import argo_metrics, ours_metrics
from benchmarks.controller_benchmark import verdict

C = "controller_clientset_k8s_request_total"
LEASE = 'name="argo-rollouts-controller-lock",namespace="argo-rollouts",status_code="200"'
ARGO_TEXT = f"""\
# HELP {C} Number of kubernetes requests executed during application reconciliation.
# TYPE {C} counter
{C}{{kind="leases",{LEASE},verb="Get"}} 31
{C}{{kind="leases",{LEASE},verb="Update"}} 30
{C}{{kind="rollouts",name="N/A",namespace="",status_code="200",verb="List"}} 1
{C}{{kind="rollouts",name="N/A",namespace="",status_code="200",verb="Watch"}} 2
{C}{{kind="app-1",name="status",namespace="ns",status_code="200",verb="Update"}} 4
{C}{{kind="",name="",namespace="",status_code="201",verb="Create"}} 5
rollout_reconcile_sum{{name="a",namespace="ns"}} 0.5
rollout_reconcile_count{{name="a",namespace="ns"}} 4
rollout_reconcile_count{{name="b",namespace="ns"}} 6
workqueue_depth{{name="rollouts"}} 3
workqueue_depth{{name="services"}} 9
"""

OURS_TEXT = """\
rollouts_kube_api_requests_total{verb="PUT",resource="leases",code="200"} 30.0
rollouts_kube_api_requests_total{verb="GET",resource="rollouts",code="200"} 1.0
rollouts_kube_api_requests_total{verb="WATCH",resource="rollouts",code="200"} 2.0
rollouts_kube_api_requests_total{verb="PATCH",resource="services",code="422"} 1.0
controller_runtime_reconcile_total{controller="rollout",result="success"} 7.0
controller_runtime_reconcile_total{controller="experiment",result="success"} 100.0
"""


def test_argo_counter_is_read_by_resource_and_verb() -> None:
    m = argo_metrics(ARGO_TEXT)
    assert m.api[("leases", "get")] == 31 and m.api[("leases", "update")] == 30
    assert m.api[("rollouts", "list")] == 1 and m.api[("rollouts", "watch")] == 2
    assert m.api[("*/status", "update")] == 4  # the parser's kind was the object's name
    assert m.api[("(create, kind unparsed)", "create")] == 5  # a protobuf body it cannot read
    assert m.requests == 73
    assert m.reconciles == 10 and m.reconcile_time_sum == 0.5
    assert m.depth == 3  # the rollouts queue only


def test_our_counter_is_read_with_argo_verbs_and_every_code() -> None:
    m = ours_metrics(OURS_TEXT)
    assert m.api[("leases", "update")] == 30 and m.api[("rollouts", "get")] == 1
    assert m.api[("rollouts", "watch")] == 2 and m.api[("services", "patch")] == 1
    assert m.requests == 34
    assert m.reconciles == 7  # the rollout controller's reconciles only


def test_a_window_counts_only_what_grew() -> None:
    before, after = ours_metrics(OURS_TEXT), ours_metrics(OURS_TEXT.replace("} 30.0", "} 45.0"))
    d = after.minus(before)
    assert dict(d.api) == {("leases", "update"): 15}


def test_verdict_never_says_met_beside_a_figure_over_argo() -> None:
    assert verdict("idle_req_min", 30.0, [30.0, 31.0], 100).startswith("met")
    v = verdict("idle_req_min", 31.0, [30.0, 40.0], 100)
    assert v.startswith("missed") and "1.03 x" in v and "met against 1 of 2" in v
    assert verdict("req_change", 5.0, [], 100) == "no Argo figure"
    assert verdict("cpu_change_ms", float("nan"), [1.0], 100) == "not measured"


def test_latency_verdict_names_its_size_and_overrun() -> None:
    assert "within at N = 100" in verdict("avail_w20_p99", 0.9, [2.0], 100)
    assert "over by 0.50 s" in verdict("w20_step_p99", 1.5, [2.0], 1000)
    assert "p99 <= 2 s at N = 5,000" in verdict("avail_w20_p99", 1.5, [], 5000)

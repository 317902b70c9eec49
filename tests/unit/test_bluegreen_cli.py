"""What a user reads of a blue-green rollout: `rollouts get rollout` (table, detail, -o json,
the HTTP API's summary) shows the active and preview Services and the revision each selects;
`rollouts lint` accepts a good blue-green manifest and names the field of a bad one."""

from __future__ import annotations

from typing import Any

from rollouts.api.summary import list_row, summarize
from rollouts.cli.lint import lint_text
from rollouts.cli.render import detail, list_table, replica_set_rows, to_text
from rollouts.server.models import RolloutListItem, RolloutView

GOOD = """\
apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata:
  name: shop
spec:
  replicas: 3
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers: [{name: app, image: shop:2}]
  strategy:
    blueGreen:
      activeService: shop-active
      previewService: shop-preview
      autoPromotionEnabled: false
      previewReplicaCount: 1
      scaleDownDelaySeconds: 30
      scaleDownDelayRevisionLimit: 2
      abortScaleDownDelaySeconds: 10
      prePromotionAnalysis:
        templates: [{templateName: smoke}]
      postPromotionAnalysis:
        templates: [{templateName: smoke}]
      activeMetadata: {labels: {role: active}}
      previewMetadata: {labels: {role: preview}}
      antiAffinity:
        preferredDuringSchedulingIgnoredDuringExecution: {weight: 50}
"""


def rollout(status: dict[str, Any]) -> dict[str, Any]:
    import yaml
    obj: dict[str, Any] = yaml.safe_load(GOOD)
    obj["metadata"].update(namespace="shop", generation=2)
    obj["status"] = status
    return obj


PAUSED = {
    "observedGeneration": 2, "phase": "Paused", "currentPodHash": "v2", "stableRS": "v1",
    "message": "preview v2 ready: waiting for promote to switch the active Service",
    "pauseConditions": [{"reason": "BlueGreenPause", "startTime": "2024-05-01T12:00:00Z"}],
    "blueGreen": {"activeSelector": "v1", "previewSelector": "v2",
                  "prePromotionAnalysisRunStatus": {"name": "shop-v2-1-pre", "status": "Successful"}},
    "analysis": {"attempt": 1, "prePromotion": {"name": "shop-v2-1-pre", "phase": "Successful",
                                                "message": ""}},
}


def test_summary_names_the_services_and_their_revisions() -> None:
    s = summarize(rollout(PAUSED))
    assert s["strategy"] == "blueGreen"
    assert s["blueGreen"] == {"activeService": "shop-active", "previewService": "shop-preview",
                              "activeSelector": "v1", "previewSelector": "v2",
                              "scaleUpPreviewCheckPoint": False}
    assert s["analysis"]["runs"] == [{"kind": "prePromotion", "name": "shop-v2-1-pre",
                                      "phase": "Successful", "message": "", "revision": "v2",
                                      "current": True}]
    # the HTTP API's models keep them
    view = RolloutView.model_validate(s).model_dump()
    assert view["blueGreen"]["activeSelector"] == "v1" and view["strategy"] == "blueGreen"
    assert RolloutListItem.model_validate(list_row(rollout(PAUSED))).strategy == "blueGreen"


def test_get_rollout_shows_active_and_preview() -> None:
    s = summarize(rollout(PAUSED))
    rss = [{"metadata": {"name": f"shop-{h}", "labels": {"rollouts-pod-template-hash": h},
                         "annotations": {"rollouts.dev/revision": str(i + 1)}},
            "spec": {"replicas": n}, "status": {"availableReplicas": n}}
           for i, (h, n) in enumerate((("v1", 3), ("v2", 1)))]
    assert [(r["hash"], r["role"]) for r in replica_set_rows(s, rss)] == [("v2", "preview"),
                                                                        ("v1", "active")]
    text = " ".join(to_text(detail(s, rss, [])).split())
    assert "Active: shop-active -> v1" in text
    assert "Preview: shop-preview -> v2" in text
    assert "Weights:" not in text and "Step:" not in text
    row = to_text(list_table([list_row(rollout(PAUSED))], False))
    assert "shop" in row and "%" not in row


def test_lint_accepts_a_good_blue_green_manifest() -> None:
    findings, ours = lint_text(GOOD, "bg.yaml")
    assert ours == 1 and findings == [], [str(f) for f in findings]


def test_lint_names_the_field_of_bad_blue_green_input() -> None:
    bad = GOOD.replace("previewService: shop-preview", "previewService: shop-active")
    findings, _ = lint_text(bad, "bg.yaml")
    assert any("activeService and previewService must be different" in str(f) for f in findings)
    bad = GOOD.replace("previewReplicaCount: 1", "previewReplicaCount: 5")
    findings, _ = lint_text(bad, "bg.yaml")
    assert any("previewReplicaCount (5) must not exceed spec.replicas (3)" in str(f) for f in findings)


def test_exported_metrics_name_the_blue_green_strategy() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from rollouts.observability.collectors import RolloutCollector
    from rollouts.observability.metrics import ControllerMetrics
    m = ControllerMetrics()
    m.register(RolloutCollector(lambda: [rollout(PAUSED)]))
    body, _ = m.render()
    info = [s.labels for fam in text_string_to_metric_families(body.decode()) for s in fam.samples
            if s.name == "rollout_info"]
    assert info == [{"namespace": "shop", "rollout": "shop", "strategy": "blueGreen",
                     "traffic_router": "none"}]

"""The Argo Rollouts fields this controller does not implement: the one list.

The CRD accepts each of them (so the API server neither refuses nor silently prunes an Argo
user's manifest) and ``parse_spec`` reports each one set as an InvalidSpec error naming it,
which ``rollouts lint`` shows too. The README's "Known gaps" lists the same paths (a unit
test keeps them equal). Implementing a field means removing its entry here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True)
class Gap:
    path: str  # from the Rollout: "spec.a.b"; "[]" stands for every item of a list
    what: str  # what the field does in Argo, for the message
    # values that ask for what this controller does anyway (accepted, not a gap)
    allowed: tuple[Any, ...] = ()


CANARY: Final = "spec.strategy.canary"
BLUE_GREEN: Final = "spec.strategy.blueGreen"
STEP: Final = f"{CANARY}.steps[]"
ROUTING: Final = f"{CANARY}.trafficRouting"

GAPS: Final[tuple[Gap, ...]] = (
    Gap("spec.analysis", "AnalysisRun history limits"),
    Gap("spec.rollbackWindow", "fast rollback to recent revisions"),
    Gap("spec.selector.matchExpressions", "set-based selectors; use matchLabels"),
    Gap("spec.workloadRef.scaleDown", "scaling the referenced Deployment down; only 'never' is "
                                      "supported: the Deployment is left as it is",
        allowed=("never",)),
    Gap(f"{BLUE_GREEN}.maxUnavailable", "a rolling replacement of the active pods"),
    *(Gap(f"{BLUE_GREEN}.{a}.{k}", what) for a in ("prePromotionAnalysis", "postPromotionAnalysis")
      for k, what in (("analysisRunMetadata", "labels and annotations on AnalysisRuns"),
                      ("dryRun", "dry-run metrics set on the Rollout; set dryRun in the "
                                 "AnalysisTemplate"),
                      ("measurementRetention", "measurement retention set on the Rollout; "
                                               "set it in the AnalysisTemplate"))),
    Gap(f"{CANARY}.minPodsPerReplicaSet", "a minimum canary pod count"),
    Gap(f"{CANARY}.pingPong", "ping-pong Services"),
    Gap(f"{CANARY}.replicaProgressThreshold", "a partial-availability threshold"),
    Gap(f"{CANARY}.scaleDownDelayRevisionLimit", "a cap on old revisions kept running"),
    Gap(f"{CANARY}.analysis.analysisRunMetadata", "labels and annotations on AnalysisRuns"),
    Gap(f"{CANARY}.analysis.dryRun", "dry-run metrics set on the Rollout; set dryRun in the "
                                     "AnalysisTemplate"),
    Gap(f"{CANARY}.analysis.measurementRetention", "measurement retention set on the Rollout; "
                                                   "set it in the AnalysisTemplate"),
    Gap(f"{STEP}.analysis.analysisRunMetadata", "labels and annotations on AnalysisRuns"),
    Gap(f"{STEP}.analysis.dryRun", "dry-run metrics set on the Rollout; set dryRun in the "
                                   "AnalysisTemplate"),
    Gap(f"{STEP}.analysis.measurementRetention", "measurement retention set on the Rollout; "
                                                 "set it in the AnalysisTemplate"),
    Gap(f"{STEP}.experiment.templates[].weight", "traffic to an experiment's pods through the "
                                                 "router; experiment pods get no traffic here"),
    Gap(f"{STEP}.plugin", "step plugins"),
    Gap(f"{ROUTING}.ambassador", "Ambassador traffic routing; use istio, nginx, alb, smi or gatewayAPI"),
    Gap(f"{ROUTING}.apisix", "APISIX traffic routing; use istio, nginx, alb, smi or gatewayAPI"),
    Gap(f"{ROUTING}.appMesh", "App Mesh traffic routing; use istio, nginx, alb, smi or gatewayAPI"),
    Gap(f"{ROUTING}.traefik", "Traefik traffic routing; use istio, nginx, alb, smi or gatewayAPI"),
    Gap(f"{ROUTING}.plugins", "traffic router plugins"),
    Gap(f"{ROUTING}.maxTrafficWeight", "a traffic weight scale other than 100"),
    Gap(f"{ROUTING}.istio.destinationRule.additionalSubsetNames",
        "extra DestinationRule subsets labelled with the canary hash"),
)

# step kinds of Argo that are gaps (parse_spec leaves them to this list)
UNSUPPORTED_STEP_KINDS: Final = frozenset(
    g.path.removeprefix(f"{STEP}.") for g in GAPS
    if g.path.startswith(f"{STEP}.") and "." not in g.path.removeprefix(f"{STEP}."))


def _segments(path: str) -> list[str]:
    # "spec.strategy.canary.steps[].experiment" -> [strategy, canary, steps, [], experiment]
    return [p for p in path.removeprefix("spec.").replace("[]", ".[]").split(".") if p]


def _found(node: Any, segs: list[str], at: str) -> Iterator[tuple[str, Any]]:
    if not segs:
        yield at, node
        return
    head, rest = segs[0], segs[1:]
    if head == "[]":
        if isinstance(node, list):
            for i, item in enumerate(node):
                yield from _found(item, rest, f"{at}[{i}]")
    elif isinstance(node, dict) and node.get(head) is not None:
        yield from _found(node[head], rest, f"{at}.{head}")


def unsupported_fields(spec: Any) -> list[str]:
    """One error per gap set in a Rollout's spec, naming the field and what it does in Argo."""
    out = []
    for g in GAPS:
        for at, value in _found(spec, _segments(g.path), "spec"):
            if g.allowed and value in g.allowed:
                continue
            out.append(f"{at} is not supported by this controller ({g.what})")
    return out

"""What ``decide`` reads and what it returns: observations in, status, actions and Events out.

Shared by every strategy. Nothing here performs I/O: the reconciler gathers the
observations and runs the actions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rollouts.api.routing import HeaderRoute, MirrorRoute
from rollouts.api.spec import AntiAffinity, PodMetadata, RolloutSpec
from rollouts.api.status import RolloutStatus
from rollouts.controller.experiment_step import OwnedExperiment

# --- inputs --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaSetObs:
    hash: str
    name: str
    replicas: int
    ready: int = 0
    available: int = 0
    revision: int = 0
    current: int = 0  # pods that exist (status.replicas), available or not
    # the ephemeral metadata its pods carry now (canonical JSON, "" for none): see SetPodMetadata
    ephemeral: str = ""


@dataclass(frozen=True)
class PodObs:
    """A pod of one of our ReplicaSets (only gathered while a restartAt is pending)."""

    name: str
    created: datetime
    deleting: bool = False

@dataclass(frozen=True)
class AnalysisRunObs:
    name: str
    phase: str  # Pending | Running | Successful | Failed | Inconclusive | Error
    message: str = ""
    terminated: bool = False

@dataclass(frozen=True)
class Observations:
    template: dict[str, Any] | None
    replica_sets: dict[str, ReplicaSetObs] = field(default_factory=dict)
    # Problems with objects the spec names (missing Service, route not found, ...).
    environment_errors: tuple[str, ...] = ()
    # This rollout's AnalysisRuns by name.
    analysis_runs: dict[str, AnalysisRunObs] = field(default_factory=dict)
    pods: tuple[PodObs, ...] = ()
    # This rollout's Experiments (experiment steps) by name.
    experiments: dict[str, OwnedExperiment] = field(default_factory=dict)

@dataclass(frozen=True)
class RolloutInput:
    namespace: str
    name: str
    generation: int
    spec: RolloutSpec | None
    spec_errors: tuple[str, ...]
    status: RolloutStatus


# --- outputs -------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateReplicaSet:
    hash: str
    replicas: int
    revision: int
    # Argo's antiAffinity: the new pods avoid the nodes of revision ``avoid_hash``'s pods
    anti_affinity: AntiAffinity | None = None
    avoid_hash: str | None = None
    # the ephemeral metadata of the role the new pods play (canaryMetadata, ...): pods are
    # born with it rather than waiting for a later reconcile to label them
    metadata: PodMetadata | None = None

@dataclass(frozen=True)
class ScaleReplicaSet:
    hash: str
    replicas: int

@dataclass(frozen=True)
class DeleteReplicaSet:
    hash: str

@dataclass(frozen=True)
class SetTraffic:
    """Stable Service/subset -> stable_hash, canary -> canary_hash, canary_weight % to canary,
    and exactly these header and mirror routes (setHeaderRoute/setMirrorRoute) in place."""

    stable_hash: str
    canary_hash: str
    canary_weight: int
    header_routes: tuple[HeaderRoute, ...] = ()
    mirror_routes: tuple[MirrorRoute, ...] = ()

@dataclass(frozen=True, kw_only=True)
class PointService:
    """Service ``service`` selects the pods of revision ``pod_hash`` (blue-green's active and
    preview Services)."""

    service: str
    pod_hash: str


@dataclass(frozen=True, kw_only=True)
class SetPodMetadata:
    """The ephemeral labels and annotations of one revision's pods (its role's metadata:
    canary/stable, active/preview), on its ReplicaSet's pod template and on its running pods;
    keys set earlier and no longer wanted are removed."""

    hash: str
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class CreateAnalysisRun:
    """Create run ``name`` from a step's (or the background) ``analysis`` block.

    The hashes are those of this decision (``podTemplateHashValue: Stable|Latest``): a run
    created in the reconcile that starts a new revision measures that revision, not the
    one the status named before.
    """

    name: str
    analysis: dict[str, Any]
    kind: str  # "step" | "background"
    step_index: int | None = None
    stable_hash: str
    canary_hash: str

@dataclass(frozen=True, kw_only=True)
class CreateExperiment:
    """Create the Experiment of experiment step ``step_index`` for this decision's revisions
    (the reconciler builds it from the step and the two pod templates)."""

    name: str
    step_index: int
    attempt: int
    stable_hash: str
    canary_hash: str


@dataclass(frozen=True, kw_only=True)
class RemoveRouting:
    """Take back what the routers of ``previous`` (a trafficRouting the spec no longer has)
    wrote and ``current`` does not write any more: weights back to the stable, managed routes
    and owned objects (canary Ingress, TrafficSplit) gone."""

    previous: dict[str, Any]
    current: dict[str, Any] | None


@dataclass(frozen=True)
class TerminateExperiment:
    name: str


@dataclass(frozen=True)
class TerminateAnalysisRun:
    name: str

@dataclass(frozen=True)
class DeletePod:
    name: str

ClusterAction = (CreateReplicaSet | ScaleReplicaSet | DeleteReplicaSet | SetTraffic
                 | PointService | SetPodMetadata | CreateAnalysisRun | TerminateAnalysisRun
                 | CreateExperiment | TerminateExperiment | RemoveRouting | DeletePod)

@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str

@dataclass
class Decision:
    status: RolloutStatus
    actions: list[ClusterAction] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    rollout: str = ""
    analysis_runs: dict[str, AnalysisRunObs] = field(default_factory=dict)
    experiments: dict[str, OwnedExperiment] = field(default_factory=dict)

    def wake_in(self, seconds: float) -> None:
        s = max(0.5, seconds)
        self.requeue_after = s if self.requeue_after is None else min(self.requeue_after, s)

    def normal(self, reason: str, message: str) -> None:
        self.events.append(Event("Normal", reason, message))

    def warning(self, reason: str, message: str) -> None:
        self.events.append(Event("Warning", reason, message))

def _digest(obj: Any) -> str:
    return hashlib.sha256(
        json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()

def template_hash(template: dict[str, Any]) -> str:
    """Stable short hash of a pod template: the label value that names a revision."""
    return _digest(template)[:10]

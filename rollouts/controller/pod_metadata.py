"""Ephemeral pod metadata (Argo's canaryMetadata/stableMetadata, activeMetadata/previewMetadata):
labels and annotations a revision's pods carry for the role they play now.

Pure: ``metadata_actions`` compares what each ReplicaSet carries (``ReplicaSetObs.ephemeral``,
recorded by the reconciler in an annotation) with what its role asks for, and returns the
actions for the ReplicaSets that differ, so a steady rollout sends nothing.
"""

from __future__ import annotations

import json
from dataclasses import replace

from rollouts.api.spec import PodMetadata
from rollouts.controller.decision import CreateReplicaSet, Decision, ReplicaSetObs, SetPodMetadata


def canonical_metadata(labels: dict[str, str], annotations: dict[str, str]) -> str:
    """The form recorded on a ReplicaSet: "" when its pods carry no role metadata."""
    if not (labels or annotations):
        return ""
    return json.dumps({"labels": labels, "annotations": annotations}, sort_keys=True,
                      separators=(",", ":"))


def canonical(md: PodMetadata | None) -> str:
    return canonical_metadata(md.labels, md.annotations) if md is not None else ""


def metadata_actions(d: Decision, rss: dict[str, ReplicaSetObs],
                     roles: dict[str, PodMetadata | None]) -> None:
    """``roles``: pod template hash -> the metadata of its role (None: no role metadata).
    A ReplicaSet not named has no role any more and loses its metadata at once, pods and all
    (as in Argo: a previous stable kept for its scale-down delay must not claim the role)."""
    for h, rs in rss.items():
        if h in roles:
            want = roles[h]
        elif rs.ephemeral:
            want = None
        else:
            continue
        if canonical(want) != rs.ephemeral:
            d.actions.append(SetPodMetadata(
                hash=h, labels=dict(want.labels) if want else {},
                annotations=dict(want.annotations) if want else {}))


def born_with_role(d: Decision, roles: dict[str, PodMetadata | None]) -> None:
    """A ReplicaSet this decision creates carries its role's metadata from the start (as in
    Argo): a steady rollout may not be reconciled again soon after, and its pods would
    otherwise wait unlabelled for ``metadata_actions``. Call after the replica actions."""
    d.actions[:] = [replace(a, metadata=roles[a.hash])
                    if isinstance(a, CreateReplicaSet) and roles.get(a.hash) is not None else a
                    for a in d.actions]

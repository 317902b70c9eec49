"""Reading a rollout with what its views show: its ReplicaSets, their pods, its
AnalysisRuns and its latest Events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rollouts.api.constants import GROUP, VERSION
from rollouts.api.summary import summarize
from rollouts.cli.tree import RunInfo, pod_status, run_info
from rollouts.kube.client import EVENTS, JSON, PODS, REPLICASETS, Kube, KubeError, Resource
from rollouts.kube.signals import ROLLOUTS

ANALYSIS_RUNS = Resource(GROUP, VERSION, "analysisruns")
ROLLOUT_LABEL = f"{GROUP}/rollout"


@dataclass
class RolloutView:
    obj: JSON
    summary: dict[str, Any]
    replica_sets: list[JSON]
    events: list[JSON]
    pods: list[JSON] = field(default_factory=list)
    # None: the AnalysisRuns could not be listed (RBAC); views fall back to status' records
    runs: list[RunInfo] | None = None

    def renderable(self) -> Any:
        """What `get rollout` prints: header, tree, steps, events."""
        from rollouts.cli.render import detail

        return detail(self.summary, self.replica_sets, self.events, pods=self.pods, runs=self.runs)

    def as_dict(self) -> dict[str, Any]:
        from rollouts.cli.render import event_rows, replica_set_rows

        return {**self.summary, "replicaSets": replica_set_rows(self.summary, self.replica_sets),
                "pods": [pod_row(p) for p in self.pods],
                "analysisRuns": None if self.runs is None else [r.as_dict() for r in self.runs],
                "events": event_rows(self.events, limit=20)}


def pod_row(pod: JSON) -> dict[str, Any]:
    md = pod.get("metadata") or {}
    status, ready, restarts = pod_status(pod)
    owner = next((o.get("name") for o in md.get("ownerReferences") or [] if o.get("controller")), None)
    return {"name": md.get("name"), "replicaSet": owner, "status": status, "ready": ready,
            "restarts": restarts, "createdAt": md.get("creationTimestamp")}


def _owned_by(obj: JSON, uids: set[str]) -> bool:
    return any(o.get("uid") in uids and o.get("controller")
               for o in (obj.get("metadata") or {}).get("ownerReferences") or [])


async def owned_replica_sets(kube: Kube, obj: JSON) -> list[JSON]:
    md = obj["metadata"]
    data = await kube.get_list(REPLICASETS.path(md["namespace"]),
                               labelSelector="rollouts-pod-template-hash")
    return [rs for rs in data.get("items") or [] if _owned_by(rs, {md.get("uid")})]


async def _optional_list(kube: Kube, path: str, **query: Any) -> list[JSON] | None:
    """A list the view can do without: None when the user may not read it."""
    try:
        data = await kube.get_list(path, **query)
    except KubeError as e:
        if e.status in (401, 403, 404):
            return None
        raise
    return list(data.get("items") or [])


async def fetch_view(kube: Kube, namespace: str, name: str, with_events: bool = True) -> RolloutView:
    obj = await kube.get(ROLLOUTS.path(namespace, name))
    rss = await owned_replica_sets(kube, obj)
    rs_uids = {str((rs.get("metadata") or {}).get("uid")) for rs in rss}
    pods = [p for p in await _optional_list(kube, PODS.path(namespace),
                                            labelSelector="rollouts-pod-template-hash") or []
            if _owned_by(p, rs_uids)]
    raw_runs = await _optional_list(kube, ANALYSIS_RUNS.path(namespace),
                                    labelSelector=f"{ROLLOUT_LABEL}={name}")
    uid = obj["metadata"].get("uid")
    runs = None if raw_runs is None else [run_info(r) for r in raw_runs if _owned_by(r, {uid})]
    events: list[JSON] = []
    if with_events:
        data = await kube.get_list(
            EVENTS.path(namespace),
            fieldSelector=f"involvedObject.kind=Rollout,involvedObject.name={name}")
        # events of an earlier rollout with the same name are not this one's
        events = [e for e in data.get("items") or []
                  if (e.get("involvedObject") or {}).get("uid") in (None, uid)]
    return RolloutView(obj, summarize(obj), rss, events, pods, runs)

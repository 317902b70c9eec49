"""Reading a rollout with what its views show: its ReplicaSets and its latest Events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollouts.api.summary import summarize
from rollouts.kube.client import EVENTS, JSON, REPLICASETS, Kube
from rollouts.kube.signals import ROLLOUTS


@dataclass
class RolloutView:
    obj: JSON
    summary: dict[str, Any]
    replica_sets: list[JSON]
    events: list[JSON]

    def as_dict(self) -> dict[str, Any]:
        from rollouts.cli.render import event_rows, replica_set_rows

        return {**self.summary, "replicaSets": replica_set_rows(self.summary, self.replica_sets),
                "events": event_rows(self.events, limit=20)}


async def owned_replica_sets(kube: Kube, obj: JSON) -> list[JSON]:
    md = obj["metadata"]
    data = await kube.get_list(REPLICASETS.path(md["namespace"]),
                               labelSelector="rollouts-pod-template-hash")
    return [rs for rs in data.get("items") or []
            if any(o.get("uid") == md.get("uid") and o.get("controller")
                   for o in (rs.get("metadata") or {}).get("ownerReferences") or [])]


async def fetch_view(kube: Kube, namespace: str, name: str, with_events: bool = True) -> RolloutView:
    obj = await kube.get(ROLLOUTS.path(namespace, name))
    rss = await owned_replica_sets(kube, obj)
    events: list[JSON] = []
    if with_events:
        data = await kube.get_list(
            EVENTS.path(namespace),
            fieldSelector=f"involvedObject.kind=Rollout,involvedObject.name={name}")
        uid = obj["metadata"].get("uid")
        # events of an earlier rollout with the same name are not this one's
        events = [e for e in data.get("items") or []
                  if (e.get("involvedObject") or {}).get("uid") in (None, uid)]
    return RolloutView(obj, summarize(obj), rss, events)

"""What every router beyond Istio needs to know about the Rollout it routes for, the kinds
they write, and the create/delete half of the object cache (owned objects).

An object a router creates (canary Ingress, TrafficSplit) is controlled by the Rollout
(ownerReference with ``controller: true``): garbage collection removes it with the
Rollout, and a router refuses to write an object of that name controlled by someone else.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollouts.api.constants import API_VERSION
from rollouts.kube.client import JSON, KubeError, Resource
from rollouts.traffic.objects import ObjectCache

INGRESSES = Resource("networking.k8s.io", "v1", "ingresses")
HTTP_ROUTES = Resource("gateway.networking.k8s.io", "v1", "httproutes")
GRPC_ROUTES = Resource("gateway.networking.k8s.io", "v1", "grpcroutes")
# TCPRoute is v1 in the standard channel since Gateway API v1.6 (v1alpha2 before, in the
# experimental channel only)
TCP_ROUTES = Resource("gateway.networking.k8s.io", "v1", "tcproutes")


def traffic_splits(version: str) -> Resource:
    return Resource("split.smi-spec.io", version, "trafficsplits")


@dataclass(frozen=True)
class Target:
    """The Rollout a router writes for: its name and uid (ownership) and its Services."""

    rollout: str
    uid: str
    stable_service: str
    canary_service: str

    def owner_reference(self) -> JSON:
        return {"apiVersion": API_VERSION, "kind": "Rollout", "name": self.rollout,
                "uid": self.uid, "controller": True, "blockOwnerDeletion": True}


def controller_uid(obj: JSON) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") is True:
            uid = ref.get("uid")
            return uid if isinstance(uid, str) else None
    return None


def ownership_error(obj: JSON | None, target: Target, what: str) -> str | None:
    """An existing object of the name we would create must be ours."""
    if obj is None:
        return None
    uid = controller_uid(obj)
    if uid != target.uid:
        who = "no controller" if uid is None else f"controller uid {uid}"
        return (f"{what} exists and is not owned by Rollout {target.rollout} ({who}): "
                f"rename or delete it")
    return None


def escape(key: str) -> str:
    """A JSON pointer segment."""
    return key.replace("~", "~0").replace("/", "~1")


async def create(objects: ObjectCache, collection: str, path: str, body: JSON) -> JSON:
    """Create ``body``; when it appeared meanwhile (409), the caller gets the existing one."""
    try:
        await objects.create(collection, path, body)
    except KubeError as e:
        if e.status != 409:
            raise
        return await objects.must(path, fresh=True)
    return await objects.must(path)


async def delete(objects: ObjectCache, path: str, *, uid: str) -> bool:
    """Delete our object at ``path``, only if the Rollout controls it; False when there was
    nothing of ours to delete."""
    obj = await objects.get(path, fresh=True)
    if obj is None:
        return False
    if controller_uid(obj) != uid:
        return False  # not ours (check() reports it): never deleted
    await objects.delete(path)
    return True

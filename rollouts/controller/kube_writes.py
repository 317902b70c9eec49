"""Writes every reconciler makes the same way: creating an object it owns (one that
exists already counts only if it is ours) and writing a status once, against the
resourceVersion read.

Used by the Experiment reconciler; the Rollout reconciler writes by the same rules.
"""

from __future__ import annotations

import copy
from typing import Any

from rollouts.kube.client import Kube, KubeError, Resource

JSON = dict[str, Any]


def owned_by(obj: JSON, uid: str) -> bool:
    """Whether one of ``obj``'s ownerReferences names ``uid``."""
    return any(o.get("uid") == uid for o in (obj.get("metadata") or {}).get("ownerReferences") or [])


async def create_owned(kube: Kube, res: Resource, ns: str, body: JSON, *, owner_uid: str,
                       owner_kind: str) -> JSON:
    """Create ``body``; one of that name that exists already (a stale cache) is fine only
    if ``owner_uid`` owns it, else a 409 naming the conflict. The object as created (or
    found)."""
    try:
        return await kube.create(res.path(ns), body)
    except KubeError as e:
        if not e.conflict:
            raise
        name = body["metadata"]["name"]
        existing = await kube.get(res.path(ns, name))
        if not owned_by(existing, owner_uid):
            raise KubeError(409, f"{body['kind']} {name} exists and is not owned by this "
                            f"{owner_kind}") from e
        return existing


async def write_status(kube: Kube, res: Resource, obj: JSON, new_status: JSON) -> tuple[bool, JSON | None]:
    """Write ``new_status`` on ``obj`` (as read) unless unchanged: (False, None) on a
    conflict (someone wrote since: recompute from the new version); otherwise (True, the
    object as written, or None when nothing was written or the object is gone)."""
    if new_status == (obj.get("status") or {}):
        return True, None
    md = obj["metadata"]
    body = copy.deepcopy(obj)
    body["status"] = new_status
    try:
        return True, await kube.replace(res.path(md["namespace"], md["name"], "status"), body)
    except KubeError as e:
        if e.conflict:
            return False, None
        if e.not_found:
            return True, None  # deleted meanwhile: nothing left to describe
        raise

"""Objects a router reads and writes during one reconcile, read once and written guarded.

A write guarded by a stale resourceVersion re-reads and retries; a write that still fails
raises, so the caller never reports a change that was not made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from rollouts.api.constants import FIELD_MANAGER
from rollouts.kube.cache import SharedCache
from rollouts.kube.client import JSON, Kube, KubeError

ATTEMPTS = 3  # JSON patches guarded by a resourceVersion test: re-read and retry this often


class ObjectCache:
    """One per reconcile: an object read once is reused by every router of the Rollout.
    With ``shared`` (the controller's informers) a first read comes from its store and
    costs no request; ``fresh`` reads (a guarded write's retry) always ask the API server.
    What a write returns goes back into ``shared`` (read-your-writes)."""

    def __init__(self, kube: Kube, shared: SharedCache | None = None) -> None:
        self.kube = kube
        self.shared = shared
        self._seen: dict[str, JSON | None] = {}

    async def get(self, path: str, fresh: bool = False) -> JSON | None:
        if fresh or path not in self._seen:
            if fresh or self.shared is None:
                self._seen[path] = await self.kube.get_or_none(path)
                if self.shared is not None:
                    self.shared.wrote(path, self._seen[path], own=False)  # the newest we know
            else:
                self._seen[path] = await self.shared.get_or_none(path)
        return self._seen[path]

    def _wrote(self, path: str, obj: JSON | None) -> None:
        self._seen[path] = obj
        if self.shared is not None:
            self.shared.wrote(path, obj)

    async def must(self, path: str, fresh: bool = False) -> JSON:
        obj = await self.get(path, fresh)
        if obj is None:
            raise KubeError(404, f"{path} not found")
        return obj

    async def merge_patch(self, path: str, body: JSON) -> None:
        self._wrote(path, await self.kube.merge_patch(path, body, fieldManager=FIELD_MANAGER))

    async def patch_guarded(self, path: str, plan: Callable[[JSON], list[JSON]]) -> None:
        """Apply the JSON patch ``plan`` computes from the object (nothing when it is empty).
        Its resourceVersion test fails when someone wrote meanwhile (409/422): re-read and
        retry, and raise when the last attempt fails too."""
        for attempt in range(ATTEMPTS):
            ops = plan(await self.must(path, fresh=attempt > 0))
            if not ops:
                return
            try:
                self._wrote(path, await self.kube.json_patch(path, ops, fieldManager=FIELD_MANAGER))
                return
            except KubeError as e:
                if e.status not in (409, 422) or attempt == ATTEMPTS - 1:
                    raise

    async def create(self, collection: str, path: str, body: JSON) -> None:
        """Create ``body`` (at ``path`` once created); a 409 (it appeared meanwhile) is raised."""
        self._wrote(path, await self.kube.create(collection, body, fieldManager=FIELD_MANAGER))

    async def delete(self, path: str) -> None:
        await self.kube.delete(path)  # a 404 (gone meanwhile) is no error
        self._wrote(path, None)


T = TypeVar("T")


def or_raise(result: tuple[T, list[str]]) -> T:
    value, errors = result
    if errors:
        raise KubeError(422, "; ".join(errors))
    return value

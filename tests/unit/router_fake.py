"""An in-memory API server for the router unit tests: objects by path, create/delete, JSON
patches (add, replace, remove, test) honouring the resourceVersion test, and a log of
every write with the state of all objects right after it (what traffic would follow)."""

from __future__ import annotations

import copy
from typing import Any

from rollouts.kube.client import KubeError
from rollouts.traffic.objects import ObjectCache

JSON = dict[str, Any]


def _parts(pointer: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]


def apply_json_patch(obj: JSON, ops: list[JSON]) -> None:
    for op in ops:
        parts = _parts(op["path"])
        if op["op"] == "test":
            target: Any = obj
            for p in parts:
                target = target[int(p)] if isinstance(target, list) else target[p]
            if target != op["value"]:
                raise KubeError(422, "the test operation failed")
            continue
        target = obj
        for p in parts[:-1]:
            target = target[int(p)] if isinstance(target, list) else target[p]
        last = parts[-1]
        if isinstance(target, list):
            i = len(target) if last == "-" else int(last)
            if op["op"] == "add":
                target.insert(i, op["value"])
            elif op["op"] == "replace":
                target[i] = op["value"]
            elif op["op"] == "remove":
                del target[i]
        elif op["op"] in ("add", "replace"):
            if op["op"] == "replace" and last not in target:
                raise KubeError(422, f"replace of missing {op['path']}")
            target[last] = op["value"]
        elif op["op"] == "remove":
            if last not in target:
                raise KubeError(422, f"remove of missing {op['path']}")
            del target[last]


class FakeApi:
    def __init__(self, objects: dict[str, JSON] | None = None) -> None:
        self.objects: dict[str, JSON] = copy.deepcopy(objects or {})
        self.rv = 100
        self.writes: list[tuple[str, str, dict[str, JSON]]] = []  # (verb, path, snapshot)
        self.patch_hook: Any = None  # called before each patch (to simulate a racing writer)

    def _bump(self, verb: str, path: str) -> None:
        self.rv += 1
        if path in self.objects:
            self.objects[path]["metadata"]["resourceVersion"] = str(self.rv)
        self.writes.append((verb, path, copy.deepcopy(self.objects)))

    async def get_or_none(self, path: str) -> JSON | None:
        obj = self.objects.get(path)
        return copy.deepcopy(obj) if obj is not None else None

    async def create(self, path: str, body: JSON, **_: Any) -> JSON:
        obj_path = f"{path}/{body['metadata']['name']}"
        if obj_path in self.objects:
            raise KubeError(409, "already exists")
        obj = copy.deepcopy(body)
        obj["metadata"].setdefault("namespace", path.split("/namespaces/")[1].split("/")[0])
        self.objects[obj_path] = obj
        self._bump("create", obj_path)
        return copy.deepcopy(obj)

    async def delete(self, path: str, **_: Any) -> None:
        if self.objects.pop(path, None) is not None:
            self._bump("delete", path)

    async def json_patch(self, path: str, ops: list[JSON], **_: Any) -> JSON:
        if self.patch_hook is not None:
            self.patch_hook(self, path)
        if path not in self.objects:
            raise KubeError(404, "not found")
        obj = copy.deepcopy(self.objects[path])
        apply_json_patch(obj, ops)
        self.objects[path] = obj
        self._bump("patch", path)
        return copy.deepcopy(obj)

    async def merge_patch(self, path: str, body: JSON, **_: Any) -> JSON:
        raise AssertionError("routers beyond Istio write guarded JSON patches only")


def cache(api: FakeApi) -> ObjectCache:
    return ObjectCache(api)  # type: ignore[arg-type]


def meta(name: str, ns: str = "shop", **extra: Any) -> JSON:
    return {"name": name, "namespace": ns, "resourceVersion": "1", **extra}

"""Service selectors: a Service that names a role (stable, canary, active, preview) selects
one revision's pods through the pod-template-hash label, which only the controller writes.
"""

from __future__ import annotations

from rollouts.api.constants import POD_TEMPLATE_HASH_LABEL
from rollouts.kube.client import JSON, SERVICES
from rollouts.traffic.objects import ObjectCache

HASH = POD_TEMPLATE_HASH_LABEL


def service_error(svc: JSON | None, name: str, template_labels: dict[str, str]) -> str | None:
    if svc is None:
        return f"Service {name} not found"
    sel = (svc.get("spec") or {}).get("selector") or {}
    wrong = {k: v for k, v in sel.items() if k != HASH and template_labels.get(k) != v}
    if wrong:
        return (f"Service {name} selects {', '.join(f'{k}={v}' for k, v in sorted(wrong.items()))}, "
                "which the Rollout's pod template labels do not match")
    return None


def selected_hash(svc: JSON | None) -> str | None:
    h = (((svc or {}).get("spec") or {}).get("selector") or {}).get(HASH)
    return h if isinstance(h, str) else None


class ServiceSelectors:
    def __init__(self, objects: ObjectCache) -> None:
        self.objects = objects

    async def check(self, ns: str, names: list[str], template_labels: dict[str, str]) -> list[str]:
        errors = []
        for name in names:
            err = service_error(await self.objects.get(SERVICES.path(ns, name)), name, template_labels)
            if err:
                errors.append(err)
        return errors

    async def current(self, ns: str, name: str) -> str | None:
        """The revision Service ``name`` selects now (None: none, or no such Service)."""
        return selected_hash(await self.objects.get(SERVICES.path(ns, name)))

    async def point(self, ns: str, name: str, pod_hash: str) -> None:
        """Service ``name`` selects the pods of revision ``pod_hash`` (written only if not yet)."""
        path = SERVICES.path(ns, name)
        if selected_hash(await self.objects.must(path)) != pod_hash:
            await self.objects.merge_patch(path, {"spec": {"selector": {HASH: pod_hash}}})

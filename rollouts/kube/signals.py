"""Recording a human signal (promote, abort, ...) on a Rollout: the client half.

Clients only record intent in ``status.pendingAction`` when ``check_action`` says it
applies; the controller applies it. The write carries the resourceVersion read, so two
clients can never overwrite each other's signal.
"""

from __future__ import annotations

from datetime import UTC, datetime

from rollouts.api.actions import Action, check_action, new_action
from rollouts.api.constants import GROUP, ROLLOUT_PLURAL, VERSION
from rollouts.api.spec import parse_spec
from rollouts.api.status import RolloutStatus
from rollouts.kube.client import JSON, Kube, KubeError, Resource

ROLLOUTS = Resource(GROUP, VERSION, ROLLOUT_PLURAL)


class ActionRejected(Exception):
    """The action does not apply to the rollout's current state (HTTP 409)."""


async def request_action(kube: Kube, namespace: str, name: str, action: str, user: str,
                         full: bool = False, attempts: int = 5) -> Action:
    for _ in range(attempts):
        obj: JSON = await kube.get(ROLLOUTS.path(namespace, name))
        spec, _errors = parse_spec(obj.get("spec"))
        status = RolloutStatus.from_dict(obj.get("status"))
        # Bound to the revision the user saw: a promote can never skip a step of a newer canary.
        act = new_action(action, user, datetime.now(UTC), full,
                         pod_hash=status.current_pod_hash or "")
        why = check_action(spec, status, act)
        if why is not None:
            raise ActionRejected(why)
        body = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "status": {"pendingAction": act.to_dict()}}
        try:
            await kube.merge_patch(ROLLOUTS.path(namespace, name, "status"), body)
            return act
        except KubeError as e:
            if not e.conflict:
                raise
    raise ActionRejected("the rollout kept changing; try again")

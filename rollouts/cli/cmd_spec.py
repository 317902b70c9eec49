"""Spec changes from the command line: `undo`, `restart`, `set image`.

Unlike the human signals these change spec, like Argo: in a GitOps setup the change is
reverted by the next sync unless it is also made in Git.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rollouts.cli import exitcodes
from rollouts.cli.common import ContextOpt, KubeconfigOpt, NamespaceOpt, RolloutNameArg, fail

if TYPE_CHECKING:
    from rollouts.cli.session import Session

NameArg = RolloutNameArg
set_app = typer.Typer(help="Change a field of a rollout's spec.", no_args_is_help=True)

HASH_LABEL = "rollouts-pod-template-hash"


def pick_revision(rss: list[dict[str, Any]], current_hash: str | None,
                  to_revision: int | None) -> dict[str, Any]:
    """The ReplicaSet to go back to: revision N, or the one before the current revision."""
    def rev(rs: dict[str, Any]) -> int:
        try:
            return int(((rs.get("metadata") or {}).get("annotations") or {})
                       .get("rollouts.dev/revision", "0"))
        except ValueError:
            return 0
    by_rev = {rev(rs): rs for rs in rss if rev(rs) > 0}
    if not by_rev:
        raise ValueError("the rollout has no ReplicaSets with a revision yet")
    if to_revision is not None and to_revision > 0:
        if to_revision not in by_rev:
            raise ValueError(f"no revision {to_revision}; revisions: "
                             f"{', '.join(map(str, sorted(by_rev)))}")
        return by_rev[to_revision]
    current = next((r for r, rs in by_rev.items()
                    if (rs["metadata"].get("labels") or {}).get(HASH_LABEL) == current_hash),
                   max(by_rev))
    older = [r for r in by_rev if r < current]
    if not older:
        raise ValueError(f"revision {current} is the oldest one kept; nothing to undo")
    return by_rev[max(older)]


def template_of(rs: dict[str, Any]) -> dict[str, Any]:
    """The revision's pod template: as the user wrote it when the controller recorded it
    (same hash, so undo to the stable revision is immediate), else the ReplicaSet's copy
    without the label the controller adds to it."""
    import json

    recorded = (rs.get("metadata") or {}).get("annotations", {}).get("rollouts.dev/pod-template")
    if recorded:
        try:
            original = json.loads(recorded)
            if isinstance(original, dict):
                return original
        except ValueError:
            pass
    tmpl = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
    md = tmpl.setdefault("metadata", {})
    labels = {k: v for k, v in (md.get("labels") or {}).items() if k != HASH_LABEL}
    md["labels"] = labels
    if md.get("creationTimestamp") is None:
        md.pop("creationTimestamp", None)
    return tmpl


def image_ops(spec: dict[str, Any], images: dict[str, str]) -> list[dict[str, Any]]:
    """JSON Patch setting container images; each op is guarded by a test of the name."""
    pod = ((spec.get("template") or {}).get("spec")) or {}
    ops: list[dict[str, Any]] = []
    found: set[str] = set()
    for field in ("initContainers", "containers"):
        for i, c in enumerate(pod.get(field) or []):
            name = c.get("name")
            if name in images or "*" in images:
                image = images.get(name) or images["*"]
                base = f"/spec/template/spec/{field}/{i}"
                ops += [{"op": "test", "path": f"{base}/name", "value": name},
                        {"op": "replace", "path": f"{base}/image", "value": image}]
                found.add(name)
    missing = sorted(set(images) - found - {"*"})
    if missing:
        have = [c.get("name") for f in ("initContainers", "containers") for c in pod.get(f) or []]
        raise ValueError(f"no container named {', '.join(missing)} (containers: {', '.join(have)})")
    return ops


def undo(name: NameArg, kubeconfig: KubeconfigOpt = None, context: ContextOpt = None,
         namespace: NamespaceOpt = None,
         to_revision: Annotated[int | None, typer.Option(
             "--to-revision", metavar="REVISION",
             help="revision to go back to (default: the previous one)")] = None,
         ) -> None:
    """Go back to an earlier revision: copies its pod template into spec.template.

    Back to the stable revision during a canary: traffic returns to stable at once. Back to
    an older revision: it runs the canary steps like any new template.
    """
    from rollouts.cli.fetch import owned_replica_sets
    from rollouts.cli.session import with_session
    from rollouts.kube.signals import ROLLOUTS

    async def body(s: Session) -> None:
        obj = await s.kube.get(ROLLOUTS.path(s.namespace, name))
        if (obj.get("spec") or {}).get("workloadRef"):
            raise fail("undo of a rollout with spec.workloadRef: change the Deployment instead")
        rss = await owned_replica_sets(s.kube, obj)
        try:
            rs = pick_revision(rss, (obj.get("status") or {}).get("currentPodHash"), to_revision)
        except ValueError as e:
            raise fail(str(e)) from e
        tmpl = template_of(rs)
        rev = rs["metadata"].get("annotations", {}).get("rollouts.dev/revision")
        await s.kube.json_patch(ROLLOUTS.path(s.namespace, name), [
            {"op": "test", "path": "/metadata/resourceVersion",
             "value": obj["metadata"]["resourceVersion"]},
            {"op": "replace", "path": "/spec/template", "value": tmpl}])
        print(f"rollout {s.namespace}/{name} rolled back to revision {rev} "
              f"({rs['metadata']['name']})", flush=True)

    with_session(kubeconfig, context, namespace, body)


def restart(name: NameArg, kubeconfig: KubeconfigOpt = None, context: ContextOpt = None,
            namespace: NamespaceOpt = None) -> None:
    """Set spec.restartAt to now: the controller replaces every older pod, one at a time,
    while all pods are available (Argo's meaning), and records status.restartedAt."""
    from rollouts.cli.session import with_session
    from rollouts.kube.signals import ROLLOUTS

    async def body(s: Session) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        await s.kube.merge_patch(ROLLOUTS.path(s.namespace, name), {"spec": {"restartAt": now}})
        print(f"rollout {s.namespace}/{name} restartAt set to {now}: pods are replaced one at a time",
              flush=True)

    with_session(kubeconfig, context, namespace, body)


@set_app.command("image")
def set_image(name: NameArg,
              images: Annotated[list[str], typer.Argument(
                  metavar="CONTAINER=IMAGE...",
                  help="CONTAINER=IMAGE pairs (CONTAINER * for all containers)",
                  show_default=False)],
              kubeconfig: KubeconfigOpt = None, context: ContextOpt = None,
              namespace: NamespaceOpt = None) -> None:
    """Set container images in spec.template (starts a canary, like a Git change would)."""
    from rollouts.cli.session import with_session
    from rollouts.kube.signals import ROLLOUTS

    wanted: dict[str, str] = {}
    for pair in images:
        c, sep, img = pair.partition("=")
        if not sep or not c or not img:
            raise typer.BadParameter(f"{pair!r}: expected CONTAINER=IMAGE", param_hint="IMAGES")
        wanted[c] = img

    async def body(s: Session) -> None:
        obj = await s.kube.get(ROLLOUTS.path(s.namespace, name))
        try:
            ops = image_ops(obj.get("spec") or {}, wanted)
        except ValueError as e:
            raise fail(str(e), exitcodes.FAILED) from e
        await s.kube.json_patch(ROLLOUTS.path(s.namespace, name), ops)
        print(f"rollout {s.namespace}/{name} image updated", flush=True)

    with_session(kubeconfig, context, namespace, body)

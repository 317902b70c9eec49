"""The facts about a notification that human-readable receivers (Teams cards, mails) list,
in one place so they say the same: a canary's step and weight, a blue-green rollout's
active and preview revisions (it has no weight)."""

from __future__ import annotations

from rollouts.notify.triggers import Notification


def facts(n: Notification) -> list[tuple[str, str]]:
    out = [("Phase", n.phase or "-"), ("Event", f"{n.type} {n.reason}")]
    if n.strategy == "blueGreen":
        out += [("Active revision", n.active_revision or "-"),
                ("Preview revision", n.preview_revision or "-")]
    elif n.step is not None and n.steps is not None:
        out += [("Step", f"{n.step}/{n.steps}"), ("Canary weight", f"{n.canary_weight}%")]
    return [*out, ("Revision", n.revision or "-"), ("Stable revision", n.stable_revision or "-"),
            ("Time", n.time)]

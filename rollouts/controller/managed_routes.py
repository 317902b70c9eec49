"""Header and mirror routes (Argo's setHeaderRoute / setMirrorRoute steps), pure.

A route set by a step stays until a later step of the same name changes or removes it (a
step without ``match`` removes it), and all of them go when no canary is in progress (a
promotion, an abort, a full promotion, a canary without available pods), as in Argo.
"""

from __future__ import annotations

from dataclasses import replace

from rollouts.api.routing import HeaderRoute, MirrorRoute
from rollouts.api.spec import RolloutSpec, Step
from rollouts.controller.decision import Decision, SetTraffic


def active_routes(steps: tuple[Step, ...], idx: int
                  ) -> tuple[tuple[HeaderRoute, ...], tuple[MirrorRoute, ...]]:
    """The header and mirror routes the steps before ``idx`` have set and not removed."""
    headers: dict[str, HeaderRoute] = {}
    mirrors: dict[str, MirrorRoute] = {}
    for step in steps[:idx]:
        if step.set_header_route is not None:
            hr = step.set_header_route
            if hr.match:
                headers[hr.name] = hr
            else:
                headers.pop(hr.name, None)
        elif step.set_mirror_route is not None:
            mr = step.set_mirror_route
            if mr.match:
                mirrors[mr.name] = mr
            else:
                mirrors.pop(mr.name, None)
    return tuple(headers.values()), tuple(mirrors.values())


def attach_routes(d: Decision, spec: RolloutSpec, h: str, canary_available: int) -> None:
    """The decision's traffic change carries the active routes while a canary of revision
    ``h`` with available pods is in progress; otherwise none (they are removed)."""
    st = d.status
    if (st.abort or st.promote_full or h == st.stable_rs or st.draining
            or st.canary_route_hash is not None or canary_available == 0):
        return
    headers, mirrors = active_routes(spec.canary_strategy.steps, st.current_step_index or 0)
    if headers or mirrors:
        d.actions[:] = [replace(a, header_routes=headers, mirror_routes=mirrors)
                        if isinstance(a, SetTraffic) and a.canary_hash == h else a
                        for a in d.actions]

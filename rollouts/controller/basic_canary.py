"""The canary without a traffic router (Argo's basic canary): the canary's share of traffic is
its share of the pods behind one Service, so a step's weight is reached by sizing the two
ReplicaSets, within ``maxSurge`` extra pods and ``maxUnavailable`` missing ones.

Pure arithmetic with Argo's meaning, so the pod counts at each step are the ones an Argo
user expects: the counts closest to the weight (at most one pod of surge, never 0 pods for
a weight strictly between 0 and 100 when there are 2 pods or more), reached step by step:
pods are added up to ``replicas + maxSurge`` (the stable first), and removed only while
``replicas - maxUnavailable`` pods stay available (when the canary grows, the stable's
available pods count; when it shrinks, the canary's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Pods:
    """One ReplicaSet: its desired count (spec), pods that exist, and available pods."""

    replicas: int
    current: int = 0
    available: int = 0


def _value(v: int | str, total: int, *, round_up: bool) -> int:
    if isinstance(v, int):
        return v
    pct = int(v.rstrip("%"))
    exact = pct * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def fenceposts(max_surge: int | str, max_unavailable: int | str, replicas: int) -> tuple[int, int]:
    """(surge, unavailable) in pods: surge rounds up, unavailable down; both 0 -> 1 unavailable
    (as in Kubernetes Deployments and Argo, so a rollout can always make progress)."""
    surge = _value(max_surge, replicas, round_up=True)
    unavailable = _value(max_unavailable, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def _delta(weight: int, canary: int, total: int) -> float:
    return abs(100 * canary / total - weight)


def _tied(weight: int, total: int) -> bool:
    return (total * weight / 100) % 1 == 0.5


def target_counts(replicas: int, weight: int, surge: int) -> tuple[int, int]:
    """(canary, stable) pod counts closest to ``weight`` %; their sum is ``replicas`` or, with
    surge allowed, ``replicas + 1``; a tie rounds the canary up."""
    if replicas == 0:
        return 0, 0
    ceil_c = math.ceil(replicas * weight / 100)
    floor_c = math.floor(replicas * weight / 100)
    zero_ok = weight in (0, 100) or (replicas == 1 and surge == 0)
    options: list[tuple[int, int]] = []
    if ceil_c < replicas or zero_ok:
        options.append((ceil_c, replicas))
    if not _tied(weight, replicas) and (floor_c != 0 or zero_ok):
        options.append((floor_c, replicas))
    if surge > 0:
        options.append((ceil_c, replicas + 1))
        if not _tied(weight, replicas + 1) and (floor_c != 0 or zero_ok):
            options.append((floor_c, replicas + 1))
    if not options:
        return 0, replicas
    best = options[0]
    for o in options[1:]:
        if _delta(weight, *o) < _delta(weight, *best):
            best = o
    return best[0], best[1] - best[0]


def _for_scale_down(rs: Pods | None, ignore_availability: bool) -> int:
    if rs is None:
        return 0
    if rs.replicas < rs.available:
        return rs.replicas  # already shrinking: its extra pods will not stay
    return rs.replicas if ignore_availability else rs.available


def _scale_down(rs: Pods | None, want: int, by: int, count: int) -> int:
    if rs is not None and rs.replicas > want:
        return max(want, rs.replicas - by)
    return count


def _within_limits(drain: Pods | None, adjust: Pods | None, drain_count: int, adjust_count: int,
                   max_total: int, min_available: int) -> tuple[int, int]:
    """Trim ``adjust`` back under the surge limit, but never below the availability floor;
    whatever is left over the limit comes off ``drain``."""
    if adjust is None:
        return drain_count, adjust_count
    over = max(0, adjust_count + drain_count - max_total)
    available = min(drain.available, drain_count) if drain is not None else 0
    adjust_count -= over
    available += min(adjust.available, adjust_count)
    lost = max(0, adjust.available - adjust_count)
    short = max(0, min_available - available)
    adjust_count += min(lost, short)
    over = max(0, adjust_count + drain_count - max_total)
    return drain_count - over, adjust_count


def next_counts(*, replicas: int, weight: int, max_surge: int | str, max_unavailable: int | str,
                canary: Pods | None, stable: Pods | None, others: list[Pods]) -> tuple[int, int]:
    """The (canary, stable) ReplicaSet sizes for this reconcile on the way to ``weight`` %.

    ``others``: older ReplicaSets; while any has pods, nothing is scaled down (they go first).
    """
    surge, unavailable = fenceposts(max_surge, max_unavailable, replicas)
    want_c, want_s = target_counts(replicas, weight, surge)
    canary_count = canary.replicas if canary is not None else 0
    if stable is None:
        return replicas, 0  # nothing to protect: the canary is the whole rollout
    stable_count = stable.replicas
    max_total = replicas + surge
    current = sum(o.replicas for o in others) + canary_count + stable.replicas
    room = max_total - current
    if stable.replicas < want_s and room > 0:
        stable_count = min(want_s, stable.replicas + room)
        room -= stable_count - stable.replicas
    if canary is not None and canary.replicas < want_c and room > 0:
        canary_count = min(want_c, canary.replicas + room)
    if sum(o.replicas for o in others) > 0:
        return canary_count, stable_count
    min_available = replicas - unavailable
    growing = canary is None or want_c >= canary.replicas
    removable = _for_scale_down(canary, not growing) + _for_scale_down(stable, growing)
    if removable <= min_available:
        return canary_count, stable_count
    by = removable - min_available
    if not growing:
        canary_count = _scale_down(canary, want_c, by, canary_count)
        canary_count, stable_count = _within_limits(canary, stable, canary_count, stable_count,
                                                    max_total, min_available)
    else:
        stable_count = _scale_down(stable, want_s, by, stable_count)
        stable_count, canary_count = _within_limits(stable, canary, stable_count, canary_count,
                                                    max_total, min_available)
    return canary_count, stable_count


def at_target(*, replicas: int, weight: int, max_surge: int | str, max_unavailable: int | str,
              canary: Pods | None, stable: Pods | None, others: list[Pods]) -> bool:
    """The step's weight is reached: every canary pod it needs is available, the stable has
    exactly its pods, and no older ReplicaSet has an available pod (they serve traffic too)."""
    surge, _ = fenceposts(max_surge, max_unavailable, replicas)
    want_c, want_s = target_counts(replicas, weight, surge)
    if canary is None or canary.replicas != want_c or canary.available != want_c:
        return want_c == 0 and (canary is None or canary.replicas == 0)
    if stable is not None and not (stable.replicas == want_s and stable.current == want_s):
        return False
    return all(o.available == 0 for o in others)


def pod_share(canary_available: int, total_available: int) -> int:
    """The canary's share of traffic when one Service spreads it over every available pod."""
    return round(100 * canary_available / total_available) if total_available > 0 else 0

"""The canary without a traffic router sizes its ReplicaSets as Argo does.

``data/argo_basic_canary_counts.json`` holds the expected pod counts of Argo Rollouts' own
table for its basic canary (replicas, weight, maxSurge, maxUnavailable, the two ReplicaSets'
spec and available counts -> the next canary and stable sizes), so an Argo user sees the
same pod counts at every step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rollouts.controller.basic_canary import Pods, at_target, fenceposts, next_counts, target_counts

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data/argo_basic_canary_counts.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_next_counts_match_argo(case: dict[str, Any]) -> None:
    got = next_counts(replicas=case["replicas"], weight=case["weight"], max_surge=case["maxSurge"],
                      max_unavailable=case["maxUnavailable"],
                      canary=Pods(case["canary"][0], case["canary"][0], case["canary"][1]),
                      stable=Pods(case["stable"][0], case["stable"][0], case["stable"][1]),
                      others=[])
    assert list(got) == case["expect"]


@pytest.mark.parametrize(("replicas", "weight", "surge", "expect"), [
    (10, 10, 1, (1, 9)), (10, 30, 3, (3, 7)), (10, 5, 1, (1, 10)), (1, 5, 1, (1, 1)),
    (1, 95, 1, (1, 1)), (3, 50, 0, (2, 1)), (4, 50, 1, (2, 2)), (5, 0, 1, (0, 5)),
    (5, 100, 1, (5, 0)), (1, 50, 0, (1, 0)), (2, 1, 0, (1, 1)),
])
def test_target_counts_approximate_the_weight(replicas: int, weight: int, surge: int,
                                              expect: tuple[int, int]) -> None:
    assert target_counts(replicas, weight, surge) == expect


def test_fenceposts_round_surge_up_and_unavailable_down_and_never_both_zero() -> None:
    assert fenceposts("25%", "25%", 5) == (2, 1)
    assert fenceposts(0, "10%", 5) == (0, 1)
    assert fenceposts(3, 10, 4) == (3, 4)


def _simulate(replicas: int, weights: list[int], surge: int | str, unavailable: int | str
              ) -> list[tuple[int, int]]:
    """Every reconcile's sizes while pods become available at once, until each weight is reached."""
    canary = Pods(0)
    stable = Pods(replicas, replicas, replicas)
    seen = []
    for w in weights:
        for _ in range(50):
            if at_target(replicas=replicas, weight=w, max_surge=surge, max_unavailable=unavailable,
                         canary=canary, stable=stable, others=[]):
                break
            c, s = next_counts(replicas=replicas, weight=w, max_surge=surge,
                               max_unavailable=unavailable, canary=canary, stable=stable, others=[])
            seen.append((c, s))
            canary, stable = Pods(c, c, c), Pods(s, s, s)
        else:
            raise AssertionError(f"weight {w} never reached: {seen}")
    return seen


@pytest.mark.parametrize(("surge", "unavailable"), [(1, 0), (0, 1), ("25%", "25%"), (3, 2)])
def test_every_step_stays_within_surge_and_availability(surge: int | str, unavailable: int | str) -> None:
    replicas = 10
    s_pods, u_pods = fenceposts(surge, unavailable, replicas)
    for c, s in _simulate(replicas, [10, 30, 50, 100, 0], surge, unavailable):
        assert c + s <= replicas + s_pods
        assert c + s >= replicas - u_pods

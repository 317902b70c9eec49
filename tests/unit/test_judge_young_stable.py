"""A canary failing every request is rolled back during its warm-up even when the stable
pods are young too (a rollout started minutes after the previous one, or a test bed): the
catastrophe test then compares with every stable request, warm or not.

Found end to end (tests/e2e/test_judge_per_pod.py): with all stable pods younger than the
warm-up, the stable arm held 0/0 requests, the catastrophe test's e-value stayed 1 and a
canary failing 6498/6498 requests was promoted."""

from __future__ import annotations

import numpy as np

from analysis import ArmSnapshot, Decision, SequentialConfig, SequentialJudge, Snapshot
from tests.unit.test_judge_new_pods import Pod, _arm


def _run(*, canary_err: float, stable_warm: bool, seed: int, rps: float = 100.0) -> tuple[Decision, int]:
    rng = np.random.default_rng(seed)
    judge = SequentialJudge(SequentialConfig(), latency=True)
    born = -86_400.0 if stable_warm else -10.0
    stable = {f"s{i}": Pod(born) for i in range(4)}
    canary = {"c0": Pod(0.0)}
    for k in range(30):
        t = 2.0 * (k + 1)
        n = rng.poisson(rps * 2)
        nc = rng.binomial(n, 0.25)
        canary["c0"].serve(rng, int(nc), t, canary_err, 1.0)
        for p, kk in zip(stable.values(), rng.multinomial(n - nc, [0.25] * 4), strict=True):
            p.serve(rng, int(kk), t, 0.01, 1.0)
        sa = _arm(stable)
        # warm_pods as the provider reports them: only pods that served warm-up seconds ago
        sa = ArmSnapshot(sa.requests, sa.bad, sa.buckets, sa.pods,
                         warm_pods=tuple(stable) if stable_warm else ())
        v = judge.observe(Snapshot(t, _arm(canary), sa))
        if v.decision is not Decision.CONTINUE:
            return v.decision, k
    return Decision.CONTINUE, 30


def test_an_all_failing_canary_is_rolled_back_while_stable_pods_are_young_too() -> None:
    for seed in range(5):
        decision, k = _run(canary_err=1.0, stable_warm=False, seed=seed)
        assert decision is Decision.ROLLBACK and k <= 5, (seed, decision, k)


def test_a_harmless_canary_beside_young_stable_pods_is_not_rolled_back() -> None:
    rollbacks = sum(_run(canary_err=0.01, stable_warm=False, seed=s)[0] is Decision.ROLLBACK
                    for s in range(40))
    assert rollbacks <= 2

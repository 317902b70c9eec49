"""New pods are cold (slower, erring more) for their first minutes: the default new-pod
policy keeps harmless canaries from being rolled back on every scale-up (issue 10)."""

from __future__ import annotations

import math

import numpy as np

from analysis import ArmSnapshot, Decision, SequentialConfig, SequentialJudge, Snapshot

LE = (25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)


class Pod:
    """Cumulative counters of one simulated pod (latency lognormal, median 100 ms)."""

    def __init__(self, born: float) -> None:
        self.born = born
        self.req = 0
        self.bad = 0
        self.le = np.zeros(len(LE), dtype=np.int64)

    def serve(self, rng: np.random.Generator, n: int, t: float, p_err: float, slow: float) -> None:
        age = t - self.born
        cold = max(0.0, 1.0 - age / 90.0)  # the transient fades over 90 s
        lat = np.exp(rng.normal(math.log(100.0 * (1 + (slow - 1) * cold)), 0.5, n))
        self.req += n
        self.bad += int(rng.binomial(n, min(1.0, p_err * (1 + 4 * cold))))
        self.le += (lat[:, None] <= np.asarray(LE)[None, :]).sum(axis=0)


def _arm(pods: dict[str, Pod]) -> ArmSnapshot:
    req = sum(p.req for p in pods.values())
    buckets = {le: float(sum(int(p.le[i]) for p in pods.values())) for i, le in enumerate(LE)}
    buckets[math.inf] = float(req)
    return ArmSnapshot(float(req), float(sum(p.bad for p in pods.values())), buckets,
                       pods={n: (float(p.req), float(p.bad)) for n, p in pods.items()})


def _rollout(cfg: SequentialConfig, seed: int, slow: float = 2.0, canary_err: float = 0.01,
             rps: float = 200.0) -> tuple[Decision, float]:
    """4 steps of 5 min (5/10/25/50 %), one more canary pod on every step."""
    rng = np.random.default_rng(seed)
    judge = SequentialJudge(cfg, latency=True)
    stable = {f"s{i}": Pod(-86_400.0) for i in range(5)}
    canary: dict[str, Pod] = {}
    t = 0.0
    for step, w in enumerate((0.05, 0.10, 0.25, 0.50)):
        canary[f"c{step}"] = Pod(t)  # a scale-up: a new, cold canary pod
        for _ in range(20):
            t += 15.0
            n = rng.poisson(rps * 15.0)
            nc = rng.binomial(n, w)
            for p, k in zip(canary.values(), rng.multinomial(nc, [1 / len(canary)] * len(canary)),
                            strict=True):
                p.serve(rng, int(k), t, canary_err, slow)
            for p, k in zip(stable.values(), rng.multinomial(n - nc, [0.2] * 5), strict=True):
                p.serve(rng, int(k), t, 0.01, 1.0)
            stable_arm = _arm(stable)
            stable_arm = ArmSnapshot(stable_arm.requests, stable_arm.bad, stable_arm.buckets,
                                     stable_arm.pods, warm_pods=tuple(stable))
            v = judge.observe(Snapshot(t, _arm(canary), stable_arm))
            if v.decision is not Decision.CONTINUE:
                return v.decision, t
    return Decision.CONTINUE, t


def test_cold_new_pods_on_every_scale_up_do_not_roll_back_a_harmless_canary() -> None:
    rolled = sum(_rollout(SequentialConfig(), seed)[0] is Decision.ROLLBACK for seed in range(8))
    assert rolled == 0
    # Without the policy (every request counts at once) the same canaries are rolled back:
    # this is the behaviour before the policy existed.
    include = SequentialConfig(new_pods="include")
    rolled = sum(_rollout(include, seed)[0] is Decision.ROLLBACK for seed in range(8))
    assert rolled >= 6


def test_a_real_regression_is_still_caught_with_the_policy() -> None:
    for seed in range(3):
        decision, t = _rollout(SequentialConfig(), seed, slow=1.0, canary_err=0.03)
        assert decision is Decision.ROLLBACK and t <= 600.0, (seed, t)

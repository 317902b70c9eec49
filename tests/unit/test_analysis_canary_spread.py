"""The adaptive margin's null spreads the canary as the request-weighted average of its
pods (effective pod count), capped at the design's pod spread 0.2 (issue 10, G3: 2 x at a
0.1 % base rate, 100 req/s, was caught 30 % of the time with per-pod input)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import ArmSnapshot, Decision, SequentialConfig, SequentialJudge, Snapshot
from analysis.eprocess import mixture_alternatives
from analysis.heterogeneity import (
    PodAdaptiveEProcess,
    adaptive_log_evalue_paths,
    effective_pods,
)


@pytest.mark.parametrize(
    ("requests", "expected"),
    [
        ([100, 100, 100, 100, 100], 5.0),
        ([300, 100], 1.5),  # 400^2 / 100,000 = 1.6, rounded down to a quarter
        ([0, 0], 1.0),
        ([7], 1.0),
        ([50, 50, 0], 2.0),
    ],
)
def test_effective_pods_is_kish_count_rounded_down(requests: list[int], expected: float) -> None:
    assert float(effective_pods(requests)) == expected


def test_streaming_matches_vectorised_with_canary_pod_requests() -> None:
    rng = np.random.default_rng(3)
    t_n, k_st = 40, 5
    nc = rng.poisson(300, t_n)
    nb = rng.poisson(3000, t_n)
    yc = rng.binomial(nc, 0.02)
    pn = rng.multinomial(nb, [0.2] * k_st)
    py = rng.binomial(pn, 0.01)
    n_canary = np.where(np.arange(t_n) < 20, 1, 3)
    per_pod = np.zeros((t_n, 3), dtype=np.int64)
    for t in range(t_n):
        per_pod[t, : n_canary[t]] = rng.multinomial(nc[t], [1 / n_canary[t]] * n_canary[t])
    alts, w = mixture_alternatives(1.0, (1.25, 5.0, 9), (10.0, 1000.0, 5), 0.1)
    proc = PodAdaptiveEProcess(alts, weights=w)
    stream = []
    for t in range(t_n):
        proc.update_pods(
            int(nc[t]), int(nb[t]), int(yc[t]), int(py[t].sum()),
            {f"s{i}": (int(pn[t, i]), int(py[t, i])) for i in range(k_st)},
            canary_pod_requests={f"c{i}": int(per_pod[t, i]) for i in range(n_canary[t])},
        )
        stream.append(proc.log_e_value)
    keff = effective_pods(np.cumsum(per_pod, axis=0))
    assert keff[0] == 1.0 and keff[-1] >= 2.0
    vec = adaptive_log_evalue_paths(
        nc[None], nb[None], yc[None], py.sum(-1)[None], pn[None], py[None], alts,
        canary_pods=keff[None], weights=w,
    )[0]
    np.testing.assert_allclose(stream, vec, rtol=1e-9, atol=1e-9)


def _rollout(seed: int, ratio: float, rps: float = 100.0, p0: float = 0.001) -> Decision:
    """5/10/25/50 % for 10 min each, decisions every 15 s, canary pods 1, 2, 3, 5 (one
    more per step, taking its share at once), 5 homogeneous stable pods."""
    rng = np.random.default_rng(seed)
    # errors only, at the error test's share of the default alpha (E >= 40, as in G3)
    judge = SequentialJudge(SequentialConfig(alpha=0.025), latency=False)
    stable = {f"s{i}": [0, 0] for i in range(5)}
    canary: dict[str, list[int]] = {}
    t = 0.0

    def arm(pods: dict[str, list[int]], warm: tuple[str, ...] = ()) -> ArmSnapshot:
        return ArmSnapshot(
            float(sum(v[0] for v in pods.values())), float(sum(v[1] for v in pods.values())),
            pods={k: (float(v[0]), float(v[1])) for k, v in pods.items()}, warm_pods=warm,
        )

    v = judge.observe(Snapshot(t, arm(canary), arm(stable, tuple(stable))))
    for step, (w, k) in enumerate(zip((0.05, 0.10, 0.25, 0.50), (1, 2, 3, 5), strict=True)):
        for i in range(len(canary), k):
            canary[f"c{step}-{i}"] = [0, 0]
        for _ in range(40):
            t += 15.0
            n = rng.poisson(rps * 15.0)
            nc = rng.binomial(n, w)
            for p, m in zip(canary.values(), rng.multinomial(nc, [1 / k] * k), strict=True):
                p[0] += int(m)
                p[1] += int(rng.binomial(m, p0 * ratio))
            for p, m in zip(stable.values(), rng.multinomial(n - nc, [0.2] * 5), strict=True):
                p[0] += int(m)
                p[1] += int(rng.binomial(m, p0))
            v = judge.observe(Snapshot(t, arm(canary), arm(stable, tuple(stable))))
            if v.decision is Decision.ROLLBACK:
                return v.decision
    return v.decision


def test_two_x_at_a_low_base_rate_is_caught_with_per_pod_input() -> None:
    # G3's scenario through the streaming judge: before, the null spread a single canary
    # pod's deviation (up to sd 0.5) over the whole rollout: 11 of these 30 were caught.
    caught = sum(_rollout(seed, 2.0) is Decision.ROLLBACK for seed in range(30))
    assert caught >= 20


def test_harmless_canaries_with_per_pod_input_are_rarely_rolled_back() -> None:
    # alpha 0.025: at most its share of 40 harmless canaries
    assert sum(_rollout(seed, 1.0) is Decision.ROLLBACK for seed in range(40)) <= 1

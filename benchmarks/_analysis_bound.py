"""G8 (c) bound: how fast can *any* test that is valid under new pods' warm-up detect an effect?

The shipped default with per-pod input must keep G1 when new pods start slow (their error
rate x5 at start, fading over 90 s, on every scale-up); the fallback without per-pod input
counts a new pod's requests at once and rolls back 100 % of such harmless canaries. Clause
(c) of G8 asks the default to detect as fast as the fallback on homogeneous pods.

The design's judges condition on each interval's bad events (the canary's share of them is
binomial given the exposure), so that any load or error trend common to both arms cancels: G1's
common-shock scenario requires that robustness, and both the default and the fallback have
it. By the Neyman-Pearson lemma no such test whose false-rollback rate under a null P0 is <=
alpha can roll back by interval k with a higher probability under the effect P1 than the
likelihood-ratio test of P0 against P1 on the splits up to k at level alpha, given the counts.
We compute that bound from effect runs: the split of each interval's bad events over the
young canary requests (a pod's first warm-up, as the judge splits them), the warm canary
requests and the stable arm, redrawn under the null given the same counts. The test is told
the effect's exact ratio (generous: the bound only rises).

Two nulls:

* ``slow_start``: the benchmark's own G1 scenario (young multiplier 5 at start, linear to 1
  at 90 s, per interval at its midpoint). A bound against it holds for every test that
  keeps G1, including one that knew this exact profile.
* ``allowance``: the documented new-pod allowance (a young pod may err up to
  ``new_pod_r0`` x for its whole warm-up; against an effect r below that, the member "young
  pods err r x" is the least favourable). A bound against it holds for every test that
  honours the allowance without assuming a profile.

For ratios below the warm-up peak the likelihood-ratio test against ``slow_start`` rejects
on *low* counts early on (an x2 canary errs less than a cold pod), which no sensible judge
does; there the monotone argument is reported instead: while a young pod's null multiplier
is >= r in every interval so far, its error counts stochastically dominate the effect's, so
any judge that is monotone in canary errors (G8 (a)) rolls back by then with probability
<= alpha under the effect too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ._analysis_sim import Batch, Scenario, slow_factor

FloatA = NDArray[np.float64]

SLOW_PEAK = 5.0  # the slow-start scenario's error multiplier at a pod's start


@dataclass(frozen=True)
class Bound:
    """Best detection any conditional test valid under the null can reach."""

    null: str
    median_min: float  # earliest time by which the bound's power reaches 50 % (inf: never)
    power_end: float  # bound on the detection probability within the rollout
    monotone_only: bool  # True: the dominance bound for judges monotone in canary errors


def young_multiplier(s: Scenario, null: str, new_pod_r0: float = SLOW_PEAK) -> FloatA:
    """Null error multiplier of the young requests per interval (T,)."""
    t_start = np.arange(s.n_steps) * s.dt
    step_i = np.minimum((t_start // s.step_s).astype(int), len(s.weights) - 1)
    age = t_start + s.dt / 2 - step_i * s.step_s
    if null == "slow_start":
        return slow_factor(age, SLOW_PEAK)
    # The allowance admits every multiplier up to new_pod_r0; against an effect r below it
    # the least favourable one is r itself (the young requests then carry no information).
    r = min(s.ratio, 1.0 / s.p0) if math.isfinite(s.ratio) else 1.0 / s.p0
    return np.full(s.n_steps, float(min(new_pod_r0, r)))


def _cond_llr(n: tuple[FloatA, FloatA, FloatA], y: tuple[FloatA, FloatA, FloatA], r: float,
              m: FloatA) -> FloatA:
    """Cumulative log LR of the split of each interval's bad events over (young canary, warm
    canary, stable): effect (canary r x stable) against the null (young m x, warm 1 x)."""
    ny, nw, nb = n
    yy, yw, yb = y
    d_alt = (ny + nw) * r + nb
    d_nul = ny * m[None, :] + nw + nb
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (np.where(yy > 0, yy * np.log(r / m)[None, :], 0.0) + yw * math.log(r)
             - (yy + yw + yb) * np.log(d_alt / d_nul))
    out: FloatA = np.cumsum(np.where(np.isfinite(d), d, 0.0), axis=1)
    return out


def np_power(b: Batch, s: Scenario, null: str, rng: np.random.Generator, alpha: float = 0.05,
             null_reps: int = 4, new_pod_r0: float = SLOW_PEAK) -> FloatA:
    """Bound on the power by each interval (T,) of any level-alpha test that conditions on
    each interval's bad events: the likelihood-ratio test of the effect (``s.ratio`` > 1)
    against the null, given the effect runs' request and bad-event counts (``null_reps``
    null splits redrawn per effect run)."""
    # the canary/stable rate ratio (a canary failing every request: 1 / p0)
    r = min(s.ratio, 1.0 / s.p0) if math.isfinite(s.ratio) else 1.0 / s.p0
    m = young_multiplier(s, null, new_pod_r0)
    ny, nw, nb = (b.nc_young.astype(np.float64), (b.nc - b.nc_young).astype(np.float64),
                  b.nb.astype(np.float64))
    y1 = (b.yc_young.astype(np.float64), (b.yc - b.yc_young).astype(np.float64),
          b.yb.astype(np.float64))
    l1 = _cond_llr((ny, nw, nb), y1, r, m)
    e = (y1[0] + y1[1] + y1[2]).astype(np.int64)
    cells = np.stack([ny * m[None, :], nw, nb], axis=-1)
    tot = cells.sum(-1, keepdims=True)
    pv = np.divide(cells, tot, out=np.full_like(cells, 1.0 / 3.0), where=tot > 0)
    l0s = []
    for _ in range(null_reps):
        y0 = rng.multinomial(e, pv).astype(np.float64)
        l0s.append(_cond_llr((ny, nw, nb), (y0[..., 0], y0[..., 1], y0[..., 2]), r, m))
    l0 = np.concatenate(l0s)
    c = np.quantile(l0, 1 - alpha, axis=0, method="higher")
    gt, eq = (l0 > c).mean(0), (l0 == c).mean(0)
    g = np.clip((alpha - gt) / np.where(eq > 0, eq, 1.0), 0.0, 1.0)  # randomise at ties
    out: FloatA = (l1 > c).mean(0) + g * (l1 == c).mean(0)
    return out


def dominance_intervals(s: Scenario) -> int:
    """Leading intervals in which every canary request is on a young pod whose slow-start
    multiplier is >= the effect ratio (the monotone argument's window)."""
    m = young_multiplier(s, "slow_start")
    k = 0
    first_step = round(s.step_s / s.dt)
    while k < min(m.size, first_step) and m[k] >= s.ratio:
        k += 1
    return k


def bound(b: Batch, s: Scenario, null: str, rng: np.random.Generator, alpha: float = 0.05,
          new_pod_r0: float = SLOW_PEAK) -> Bound:
    """The best detection a test valid under ``null`` can reach against the effect in ``b``."""
    if null == "slow_start" and s.ratio < SLOW_PEAK:
        k = dominance_intervals(s)
        # rollback by the end of interval k-1 has probability <= alpha: the median is later
        return Bound(null, (k + 1) * s.dt / 60 if k else s.dt / 60, 1.0, True)
    pw = np_power(b, s, null, rng, alpha, new_pod_r0=new_pod_r0)
    hit = np.flatnonzero(pw >= 0.5)
    med = (hit[0] + 1) * s.dt / 60 if hit.size else math.inf
    return Bound(null, med, float(pw[-1]), False)

"""Adaptive error margin: a null that allows the canary to differ from the stable arm as
much as the stable pods differ from each other.

Model (H0(tau)): every pod's error rate is p * m with log m ~ N(0, tau^2), independently
per pod; the canary's pods are drawn from the same population as the stable pods. The
canary/stable log ratio u is then about N(0, tau^2 (1/K_c + 1/K_b)) (K_c canary pods,
K_b stable pods; the Jensen term of the stable average only makes u smaller).

For a given tau, two pieces of evidence multiply:

* E_canary(tau) = q_t / p_tau,t: the usual mixture over regressions (q_t, the same grid
  as the fixed-margin test) against the *random-effects* null, i.e. the conditional
  binomial likelihood integrated over u ~ N(0, tau^2 (1/K_c + 1/K_b)) (a discretised
  normal on a fine grid of u). Under H0(tau) this is a likelihood ratio: a martingale.
* E_stable(tau) = L_t(0) / L_t(tau): the likelihood ratio "stable pods homogeneous" vs
  "stable pods with dispersion tau", from the per-pod cumulative error counts (Gaussian
  approximation of log(Y_i / N_i) with Poisson variance; the common base rate is
  integrated out with a flat prior, i.e. REML). Under H0(tau) a (near) martingale; 1
  for tau = 0.

Under H0(tau) the product is a nonnegative (super)martingale, so the e-value

    E_t = min over tau in the grid of E_stable(tau) * E_canary(tau)

reaches 1/alpha with probability <= alpha whatever the true dispersion tau on the grid
(0 ... ``sd_max``). When the stable pods agree (tau = 0 plausible) the minimum is close
to the strict test (ratio <= 1); when they disagree, E_stable stays small for the
realistic tau and the canary must exceed the spread of the pods to be rolled back.
Assumptions: a dispersion beyond ``sd_max`` is not covered, nor one between grid points
exactly (the grid is fine: steps of 0.025-0.1 in sd); the stable part uses a normal
approximation. The benchmark measures the result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .eprocess import RatioEProcess

__all__ = ["SD_GRID", "PodAdaptiveEProcess", "adaptive_log_evalue_paths"]

FloatArray = NDArray[np.float64]

SD_GRID: FloatArray = np.array(
    [0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0]
)
# Grid of canary/stable log ratios on which the random-effects null is integrated.
U_GRID: FloatArray = np.linspace(-2.5, 2.5, 201)
_U0 = int(np.argmin(np.abs(U_GRID)))


def sd_grid(sd_max: float) -> FloatArray:
    if not 0 <= sd_max <= float(SD_GRID[-1]):
        raise ValueError(f"pod_sd_max must be in [0, {SD_GRID[-1]:g}], got {sd_max}")
    g: FloatArray = SD_GRID[sd_max + 1e-12 >= SD_GRID]
    return g


def null_prior(taus: FloatArray, k_canary: float, k_stable: float) -> FloatArray:
    """Weights (U, tau) of the canary/stable log ratio under H0(tau) on U_GRID."""
    scale = math.sqrt(1.0 / max(k_canary, 1.0) + 1.0 / max(k_stable, 1.0))
    out = np.zeros((U_GRID.size, taus.size))
    for j, t in enumerate(taus):
        sd = float(t) * scale
        if sd == 0:
            out[_U0, j] = 1.0
        else:
            w = np.exp(-0.5 * (U_GRID / sd) ** 2)
            out[:, j] = w / w.sum()
    return out


def _stable_loglik(n: FloatArray, y: FloatArray, taus: FloatArray) -> FloatArray:
    """REML log-likelihood of the dispersion tau from per-pod cumulative counts.

    n, y: (..., K) cumulative requests and errors per stable pod; returns (..., len(taus)).
    Pods without requests carry no information.
    """
    p_hat = y.sum(-1, keepdims=True) / np.maximum(n.sum(-1, keepdims=True), 1.0)
    v = np.where(n > 0, 1.0 / (p_hat * n + 0.5), 1e6)
    lg = np.log((y + 0.5) / (n + 1.0))
    var = v[..., None] + taus**2  # (..., K, tau)
    w = 1.0 / var
    sw = w.sum(-2)
    mean = (w * lg[..., None]).sum(-2) / sw
    out: FloatArray = (
        -0.5 * np.log(var).sum(-2)
        - 0.5 * np.log(sw)
        - 0.5 * (w * (lg[..., None] - mean[..., None, :]) ** 2).sum(-2)
    )
    return out


def _combine(
    log_q: FloatArray, cum_u: FloatArray, prior: FloatArray, stable_ll: FloatArray | None
) -> tuple[FloatArray, NDArray[np.int64]]:
    m = cum_u.max(-1, keepdims=True)
    with np.errstate(divide="ignore"):
        log_p = np.log(np.exp(cum_u - m) @ prior) + m  # (..., tau)
    tot = log_q[..., None] - log_p
    if stable_ll is not None:
        tot = tot + (stable_ll[..., :1] - stable_ll)
    return tot.min(-1), tot.argmin(-1)


def adaptive_log_evalue_paths(
    n_c: ArrayLike,
    n_b: ArrayLike,
    y_c: ArrayLike,
    y_b: ArrayLike,
    pod_n: ArrayLike,
    pod_y: ArrayLike,
    alternatives: ArrayLike,
    sd_max: float = 0.5,
    canary_pods: int = 1,
    chunk: int = 400,
) -> FloatArray:
    """Vectorised log E_t of :class:`PodAdaptiveEProcess` for many replicates.

    n_c, n_b, y_c, y_b: (reps, T); pod_n, pod_y: (reps, T, K) per-interval counts of the
    K stable pods. Returns (reps, T).
    """
    nc = np.asarray(n_c, dtype=np.float64)
    nb = np.asarray(n_b, dtype=np.float64)
    yc = np.asarray(y_c, dtype=np.float64)
    yb = np.asarray(y_b, dtype=np.float64)
    pn = np.asarray(pod_n, dtype=np.float64)
    py = np.asarray(pod_y, dtype=np.float64)
    alt = np.log(np.asarray(alternatives, dtype=np.float64))
    taus = sd_grid(sd_max)
    prior = null_prior(taus, canary_pods, pn.shape[-1])
    out = np.empty(nc.shape)
    for s in range(0, nc.shape[0], chunk):
        sl = slice(s, s + chunk)
        n = nc[sl] + nb[sl]
        rho = np.divide(nc[sl], n, out=np.zeros_like(n), where=n > 0)[..., None]
        e = (yc[sl] + yb[sl])[..., None]
        y = yc[sl][..., None]
        la = np.cumsum(y * alt - e * np.log1p(rho * np.expm1(alt)), axis=1)
        m = la.max(-1, keepdims=True)
        log_q = np.log(np.exp(la - m).mean(-1)) + m[..., 0]
        cum_u = np.cumsum(y * U_GRID - e * np.log1p(rho * np.expm1(U_GRID)), axis=1)
        st = _stable_loglik(np.cumsum(pn[sl], axis=1), np.cumsum(py[sl], axis=1), taus)
        out[sl] = _combine(log_q, cum_u, prior, st)[0]
    return out


class PodAdaptiveEProcess(RatioEProcess):
    """Error-ratio e-process whose null margin adapts to the stable pods' dispersion.

    Extends :class:`RatioEProcess` (whose strict r0 = 1 machinery gives the confidence
    sequence, estimate and promotion test); the rollback e-value is the adaptive one.
    """

    def __init__(
        self,
        alternatives: ArrayLike,
        sd_max: float = 0.5,
        canary_pods: int = 1,
    ) -> None:
        super().__init__(1.0, alternatives)
        self.taus = sd_grid(sd_max)
        self.canary_pods = canary_pods
        self._cum_u = np.zeros(U_GRID.size)
        self._expm1_u = np.expm1(U_GRID)
        self._pods: dict[str, list[int]] = {}
        self._tau_idx = 0

    def update_pods(
        self,
        n_c: int,
        n_b: int,
        y_c: int,
        y_b: int,
        baseline_pods: Mapping[str, tuple[int, int]] | None = None,
        canary_pods: int | None = None,
    ) -> float:
        """Add one interval: both arms' totals and the stable pods' (requests, bad)."""
        for name, (pn, py) in (baseline_pods or {}).items():
            if pn < 0 or py < 0 or py > pn:
                raise ValueError(f"stable pod {name}: invalid counts ({pn} requests, {py} bad)")
            acc = self._pods.setdefault(name, [0, 0])
            acc[0] += pn
            acc[1] += py
        if canary_pods is not None and canary_pods > 0:
            self.canary_pods = max(self.canary_pods, canary_pods)
        n = n_c + n_b
        e = y_c + y_b
        if n > 0 and e > 0:
            rho = n_c / n
            self._cum_u += y_c * U_GRID - e * np.log1p(rho * self._expm1_u)
        return super().update(n_c, n_b, y_c, y_b)

    def update(self, n_c: int, n_b: int, y_c: int, y_b: int) -> float:
        return self.update_pods(n_c, n_b, y_c, y_b)

    @property
    def stable_pods(self) -> int:
        return sum(1 for v in self._pods.values() if v[0] > 0)

    @property
    def log_e_value(self) -> float:
        k = self.alternatives.size
        log_q = np.asarray(_lse(self._cum[1 : 1 + k] + self._logw))
        pods = [v for v in self._pods.values() if v[0] > 0]
        kb = len(pods)
        prior = null_prior(self.taus, self.canary_pods, max(kb, 1))
        st = None
        if kb >= 2:
            arr = np.asarray(pods, dtype=np.float64)
            st = _stable_loglik(arr[:, 0], arr[:, 1], self.taus)
        else:  # one stable pod or none: nothing is learnt about the dispersion
            st = np.zeros(self.taus.size)
        val, idx = _combine(log_q, self._cum_u, prior, st)
        self._tau_idx = int(idx)
        return float(val)

    @property
    def binding_sd(self) -> float:
        """The dispersion tau at which the evidence is weakest (the effective margin)."""
        _ = self.log_e_value
        return float(self.taus[self._tau_idx])


def _lse(x: FloatArray) -> float:
    m = float(x.max())
    return m + math.log(float(np.exp(x - m).sum()))

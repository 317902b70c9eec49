"""Adaptive error margin: a null that allows the canary to differ from the stable arm as
much as the stable pods differ from each other.

Model (H0(tau)): every pod's error rate is p * m with log m ~ N(0, tau^2), independently
per pod; the canary's pods are drawn from the same population as the stable pods. The
canary/stable log ratio u is then about N(0, s^2) with s^2 = tau^2 (1/K_c + 1/K_b) (K_b
stable pods; K_c the canary's effective pod count, (sum n_i)^2 / sum n_i^2 over the requests
its pods contributed, since the pooled canary rate is their request-weighted average; the
Jensen term of the stable average only makes u smaller).

For a given tau, two pieces of evidence multiply:

* E_canary(tau) = q_tau,t / p_tau,t. The null likelihood p_tau integrates the conditional
  binomial likelihood of all intervals so far over u ~ N(0, s^2) (a discretised normal on
  the grid U_GRID; u is drawn once per rollout, so this is the exact joint law of the data
  under H0(tau)). The alternative q_tau is the same integral with the pod population
  *shifted* by a regression: u ~ N(delta_j, s^2), mixed over delta_j with weights w_j
  (for tau = 0 both are point masses: the strict test). q_tau is a proper joint density,
  so q_tau / p_tau is a nonnegative martingale under H0(tau).
* E_stable(tau) = L_t(0) / L_t(tau): the likelihood ratio "stable pods homogeneous" vs
  "stable pods with dispersion tau", from the per-pod cumulative error counts (Gaussian
  approximation of log(Y_i / N_i) with Poisson variance; the common base rate is
  integrated out with a flat prior, i.e. REML). Under H0(tau) a (near) martingale; 1
  for tau = 0.

Under H0(tau) the product is a nonnegative (super)martingale, so the e-value

    E_t = min over tau in the grid of E_stable(tau) * E_canary(tau)

reaches 1/alpha with probability <= alpha whatever the true dispersion tau on the grid
(0 ... ``sd_max``).

More harm is always more evidence: the shifted priors N(delta_j, s^2) have a likelihood
ratio exp(delta_j u / s^2) against N(0, s^2) that increases in u, so the posterior of u
under q_tau is stochastically larger than under p_tau. One more canary bad event
multiplies both integrands by theta(u) (the canary's share of bad events, increasing in
u), so E_canary(tau) changes by E_q[theta] / E_p[theta] >= 1; one more baseline bad
event by E_q[1 - theta] / E_p[1 - theta] <= 1. Hence E_t is nondecreasing in every
interval's canary bad count, and a larger error ratio (coupled: more canary errors per
interval) is never less evidence, up to 100 % errors. (The former construction mixed
point alternatives up to 5 x against the integrated null, whose support reached 12 x: a
huge effect then fitted the null better than any alternative and E fell to 0.)

Assumptions: a dispersion beyond ``sd_max`` (default 0.2, the design's heterogeneity) is
not covered, nor one between grid points exactly (the grid is fine: steps of 0.025-0.1 in
sd); the stable part uses a normal approximation; u is integrated on a grid of step 0.025;
u is one draw per rollout while K_c changes as canary pods are added (the prior follows
K_c, so E is exactly a martingale only between changes). The benchmark measures the result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .eprocess import RatioEProcess, _weights

__all__ = [
    "SD_GRID",
    "U_GRID",
    "PodAdaptiveEProcess",
    "adaptive_log_evalue_paths",
    "effective_pods",
    "snap_to_grid",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# Default cap of the pod spread the null covers: the heterogeneity the design assumes
# (one pod off by exp(N(0, 0.2^2))). Wider spreads are a setting (podSpreadMax).
SD_MAX_DEFAULT = 0.2
SD_GRID: FloatArray = np.array(
    [0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0]
)
# Grid of canary/stable log ratios on which the null and the shifted alternatives are
# integrated: ratios 1/12 .. ~1100 in steps of 2.5 %. The upper end covers alternatives up
# to 1000 x (a canary failing every request at a 0.1 % base rate).
U_STEP = 0.025
U_GRID: FloatArray = U_STEP * np.arange(-100, 281, dtype=np.float64)
_U0 = 100


def snap_to_grid(ratios: ArrayLike) -> IntArray:
    """Indices on U_GRID of the alternative ratios (rounded to the 2.5 % grid)."""
    u = np.log(np.asarray(ratios, dtype=np.float64))
    idx = np.rint((u - U_GRID[0]) / U_STEP).astype(np.int64)
    if np.any(idx <= _U0) or np.any(idx >= U_GRID.size):
        raise ValueError(
            f"adaptive alternatives must be ratios in (1.025, {math.exp(U_GRID[-1]):.0f}]"
        )
    out: IntArray = idx
    return out


def sd_grid(sd_max: float) -> FloatArray:
    if not 0 <= sd_max <= float(SD_GRID[-1]):
        raise ValueError(f"pod_sd_max must be in [0, {SD_GRID[-1]:g}], got {sd_max}")
    g: FloatArray = SD_GRID[sd_max + 1e-12 >= SD_GRID]
    return g


def effective_pods(requests: ArrayLike) -> FloatArray:
    """Effective number of canary pods (Kish): (sum n_i)^2 / sum n_i^2 over the pods'
    counted requests (last axis), rounded down to a quarter, at least 1.

    The canary's pooled error rate is the request-weighted mean of its pods' rates, so
    under H0(tau) its log deviation has variance tau^2 / K_eff (independent pods).
    Rounding down widens the null.
    """
    n = np.asarray(requests, dtype=np.float64)
    tot = n.sum(-1)
    sq = (n**2).sum(-1)
    k = np.divide(tot**2, sq, out=np.ones_like(tot), where=sq > 0)
    out: FloatArray = np.maximum(1.0, np.floor(k * 4.0 + 1e-9) / 4.0)
    return out


def _scale(k_canary: float, k_stable: float) -> float:
    return math.sqrt(1.0 / max(k_canary, 1.0) + 1.0 / max(k_stable, 1.0))


def null_prior(taus: FloatArray, k_canary: float, k_stable: float) -> FloatArray:
    """Weights (U, tau) of the canary/stable log ratio under H0(tau) on U_GRID."""
    return shifted_priors(taus, k_canary, k_stable, np.array([_U0]))[:, :, 0]


def shifted_priors(
    taus: FloatArray, k_canary: float, k_stable: float, centres: IntArray
) -> FloatArray:
    """Weights (U, tau, len(centres)): N(U_GRID[c], s^2) discretised on the grid."""
    scale = _scale(k_canary, k_stable)
    out = np.zeros((U_GRID.size, taus.size, centres.size))
    for j, t in enumerate(taus):
        sd = float(t) * scale
        if sd == 0:
            out[centres, j, np.arange(centres.size)] = 1.0
            continue
        z = (U_GRID[:, None] - U_GRID[centres][None, :]) / sd
        w = np.exp(-0.5 * z**2)
        out[:, j, :] = w / w.sum(axis=0, keepdims=True)
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


def _log_e_canary(
    cum_u: FloatArray, priors: FloatArray, alt_idx: IntArray, log_w: FloatArray
) -> FloatArray:
    """log q_tau - log p_tau for every tau; cum_u (..., U), priors (U, tau, 1 + J)."""
    n_tau = priors.shape[1]
    out = np.empty((*cum_u.shape[:-1], n_tau))
    m = cum_u.max(-1, keepdims=True)
    ex = np.exp(cum_u - m)
    strict = n_tau > 0 and priors[_U0, 0, 0] == 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        if strict:  # tau = 0: point masses, exact (no underflow)
            la = cum_u[..., alt_idx] + log_w
            ma = la.max(-1, keepdims=True)
            lq = np.log(np.exp(la - ma).sum(-1)) + ma[..., 0]
            out[..., 0] = lq - cum_u[..., _U0]
        lo = 1 if strict else 0
        if n_tau > lo:
            p = priors[:, lo:, :]
            # null and weighted alternative mixture as two columns per tau: one 2-D GEMM
            cols = np.stack([p[:, :, 0], p[:, :, 1:] @ np.exp(log_w)], axis=-1)
            flat = ex.reshape(-1, ex.shape[-1]) @ cols.reshape(cols.shape[0], -1)
            mix = flat.reshape((*ex.shape[:-1], *cols.shape[1:]))
            log_p = np.log(mix[..., 0])
            log_q = np.log(mix[..., 1])
            out[..., lo:] = log_q - log_p
    # Both integrals underflowing (data far below every prior's mass: the canary is much
    # better than stable): no evidence of a regression at that tau.
    out = np.where(np.isnan(out), -np.inf, out)
    return out


def _combine(
    log_ec: FloatArray, stable_ll: FloatArray | None
) -> tuple[FloatArray, NDArray[np.int64]]:
    tot = log_ec
    if stable_ll is not None:
        tot = tot + (stable_ll[..., :1] - stable_ll)
    return tot.min(-1), tot.argmin(-1)


def _priors(taus: FloatArray, k_c: float, k_b: float, alt_idx: IntArray) -> FloatArray:
    return shifted_priors(taus, k_c, k_b, np.concatenate([[_U0], alt_idx]))


def adaptive_log_evalue_paths(
    n_c: ArrayLike,
    n_b: ArrayLike,
    y_c: ArrayLike,
    y_b: ArrayLike,
    pod_n: ArrayLike,
    pod_y: ArrayLike,
    alternatives: ArrayLike,
    sd_max: float = SD_MAX_DEFAULT,
    canary_pods: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
) -> FloatArray:
    """Vectorised log E_t of :class:`PodAdaptiveEProcess` for many replicates.

    n_c, n_b, y_c, y_b: (reps, T); pod_n, pod_y: (reps, T, K) per-interval counts of the
    K stable pods; canary_pods: effective canary pods at each t (scalar or broadcastable
    to (reps, T), see :func:`effective_pods`). Returns (reps, T).
    """
    nc = np.asarray(n_c, dtype=np.float64)
    nb = np.asarray(n_b, dtype=np.float64)
    yc = np.asarray(y_c, dtype=np.float64)
    yb = np.asarray(y_b, dtype=np.float64)
    pn = np.asarray(pod_n, dtype=np.float64)
    py = np.asarray(pod_y, dtype=np.float64)
    alt_idx = snap_to_grid(alternatives)
    log_w = np.log(_weights(weights, alt_idx.size))
    taus = sd_grid(sd_max)
    kc = np.broadcast_to(np.asarray(canary_pods, dtype=np.float64), nc.shape)
    priors = {
        float(k): _priors(taus, float(k), pn.shape[-1], alt_idx) for k in np.unique(kc)
    }
    em1 = np.expm1(U_GRID)
    out = np.empty(nc.shape)
    chunk = max(1, 24_000 // max(nc.shape[1], 1))
    for s in range(0, nc.shape[0], chunk):
        sl = slice(s, s + chunk)
        n = nc[sl] + nb[sl]
        rho = np.divide(nc[sl], n, out=np.zeros_like(n), where=n > 0)
        e = yc[sl] + yb[sl]
        # Only intervals with bad events carry information (most of them at low rates).
        hit = np.nonzero(e > 0)
        terms = np.zeros((*e.shape, U_GRID.size))
        terms[hit] = yc[sl][hit][:, None] * U_GRID - e[hit][:, None] * np.log1p(
            rho[hit][:, None] * em1
        )
        cum_u = np.cumsum(terms, axis=1)
        st = _stable_loglik(np.cumsum(pn[sl], axis=1), np.cumsum(py[sl], axis=1), taus)
        res = np.empty(n.shape)
        for k, pr in priors.items():
            at = kc[sl] == k
            if at.any():
                res[at] = _combine(_log_e_canary(cum_u[at], pr, alt_idx, log_w), st[at])[0]
        out[sl] = res
    return out


class PodAdaptiveEProcess(RatioEProcess):
    """Error-ratio e-process whose null margin adapts to the stable pods' dispersion.

    Extends :class:`RatioEProcess` (whose strict r0 = 1 machinery gives the confidence
    sequence, estimate and promotion test); the rollback e-value is the adaptive one.
    """

    def __init__(
        self,
        alternatives: ArrayLike,
        sd_max: float = SD_MAX_DEFAULT,
        canary_pods: int = 1,
        weights: ArrayLike | None = None,
    ) -> None:
        self._alt_idx = snap_to_grid(alternatives)
        snapped = np.exp(U_GRID[self._alt_idx])
        super().__init__(1.0, snapped, weights)
        self.taus = sd_grid(sd_max)
        self.canary_pods = canary_pods
        self._cum_u = np.zeros(U_GRID.size)
        self._expm1_u = np.expm1(U_GRID)
        self._pods: dict[str, list[int]] = {}
        self._canary_req: dict[str, int] = {}
        self._tau_idx = 0
        self._prior_key: tuple[float, int] | None = None
        self._prior = np.zeros(0)

    def update_pods(
        self,
        n_c: int,
        n_b: int,
        y_c: int,
        y_b: int,
        baseline_pods: Mapping[str, tuple[int, int]] | None = None,
        canary_pods: int | None = None,
        canary_pod_requests: Mapping[str, int] | None = None,
    ) -> float:
        """Add one interval: both arms' totals and the stable pods' (requests, bad).

        canary_pod_requests: the canary pods' counted requests in this interval; from
        them the null's canary spread uses the effective pod count (see
        :func:`effective_pods`). Without them ``canary_pods`` (the largest seen) is used.
        """
        for name, cn in (canary_pod_requests or {}).items():
            if cn < 0:
                raise ValueError(f"canary pod {name}: invalid request count {cn}")
            self._canary_req[name] = self._canary_req.get(name, 0) + cn
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
        pods = [v for v in self._pods.values() if v[0] > 0]
        kb = len(pods)
        kc = (
            float(effective_pods(list(self._canary_req.values())))
            if any(self._canary_req.values())
            else float(self.canary_pods)
        )
        key = (kc, max(kb, 1))
        if self._prior_key != key:  # pod counts rarely change: build the priors once each
            self._prior_key, self._prior = key, _priors(self.taus, *key, self._alt_idx)
        priors = self._prior
        if kb >= 2:
            arr = np.asarray(pods, dtype=np.float64)
            st = _stable_loglik(arr[:, 0], arr[:, 1], self.taus)
        else:  # one stable pod or none: nothing is learnt about the dispersion
            st = np.zeros(self.taus.size)
        ec = _log_e_canary(self._cum_u, priors, self._alt_idx, self._logw)
        val, idx = _combine(ec, st)
        self._tau_idx = int(idx)
        return float(val)

    @property
    def binding_sd(self) -> float:
        """The dispersion tau at which the evidence is weakest (the effective margin)."""
        _ = self.log_e_value
        return float(self.taus[self._tau_idx])

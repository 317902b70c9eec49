"""Quantiles from cumulative histogram buckets, interpolated as Prometheus does."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["histogram_quantile", "histogram_quantiles"]


def histogram_quantile(
    q: float, le: Sequence[float], le_counts: Sequence[int], total: int
) -> float:
    """q-quantile from finite bounds ``le`` with cumulative counts and the +Inf total.

    Linear interpolation inside the bucket (lower edge 0 for the first bucket); a quantile
    in the +Inf bucket returns the largest finite bound. NaN without observations.
    """
    if total <= 0:
        return math.nan
    out = histogram_quantiles(q, np.asarray(le), np.asarray(le_counts)[None, :], [total])
    return float(out[0])


def histogram_quantiles(
    q: float, le: ArrayLike, cum: ArrayLike, total: ArrayLike
) -> NDArray[np.float64]:
    """Vectorised :func:`histogram_quantile` over leading axes of ``cum`` (..., bounds)."""
    if not 0 <= q <= 1:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    bounds = np.asarray(le, dtype=np.float64)
    c = np.asarray(cum, dtype=np.float64)
    tot = np.asarray(total, dtype=np.float64)
    rank = q * tot
    # first bucket whose cumulative count reaches the rank
    idx = np.sum(c < rank[..., None], axis=-1)
    inside = idx < bounds.size
    j = np.minimum(idx, bounds.size - 1)
    upper = bounds[j]
    lower = np.where(j > 0, bounds[np.maximum(j - 1, 0)], 0.0)
    c_hi = np.take_along_axis(c, j[..., None], axis=-1)[..., 0]
    c_lo = np.where(
        j > 0, np.take_along_axis(c, np.maximum(j - 1, 0)[..., None], axis=-1)[..., 0], 0.0
    )
    width = c_hi - c_lo
    frac = np.divide(rank - c_lo, width, out=np.ones_like(rank), where=width > 0)
    val = lower + (upper - lower) * frac
    val = np.where(inside, val, bounds[-1])
    out: NDArray[np.float64] = np.where(tot > 0, val, np.nan)
    return out

import numpy as np
import pytest

from benchmarks._analysis_methods import obf_constant
from benchmarks._analysis_sim import Scenario, merge_missing, simulate
from benchmarks.analysis_benchmark import clopper_pearson


def test_obrien_fleming_constant_matches_tables() -> None:
    # Classic table: 4 equally spaced looks, one-sided 0.025 -> c = 2.024
    assert obf_constant((0.25, 0.5, 0.75, 1.0), 0.025) == pytest.approx(2.024, abs=0.005)


def test_clopper_pearson_known_values() -> None:
    lo, hi = clopper_pearson(0, 2000)
    assert lo == 0.0 and hi == pytest.approx(0.001843, rel=1e-3)
    lo, hi = clopper_pearson(50, 1000)
    assert lo == pytest.approx(0.03732, rel=1e-3) and hi == pytest.approx(0.06538, rel=1e-3)


def test_merge_missing_carries_counts_to_next_scrape() -> None:
    x = np.array([[1, 2, 3, 4]])
    obs = np.array([[True, False, False, True]])
    np.testing.assert_array_equal(merge_missing(x, obs), [[1, 0, 0, 9]])
    h = np.arange(8).reshape(1, 4, 2)
    np.testing.assert_array_equal(merge_missing(h, obs)[0, 3], [2 + 4 + 6, 3 + 5 + 7])


def test_simulator_respects_the_schedule() -> None:
    s = Scenario("x", rps=1000.0)
    b = simulate(s, 20, np.random.default_rng(0))
    share = b.nc.sum(axis=0) / (b.nc + b.nb).sum(axis=0)
    assert share[:40].mean() == pytest.approx(0.05, abs=0.01)
    assert share[-40:].mean() == pytest.approx(0.5, abs=0.02)
    assert np.all(b.hc[..., -1] <= b.nc) and np.all(np.diff(b.hc, axis=-1) >= 0)

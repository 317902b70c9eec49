import math

import pytest

from analysis.counters import ArmSnapshot, CounterTracker, Snapshot, to_increments

INF = math.inf


def snap(t: float, c: tuple[float, float], b: tuple[float, float], **kw: object) -> Snapshot:
    return Snapshot(t, ArmSnapshot(*c), ArmSnapshot(*b))


def test_plain_differences() -> None:
    incs = to_increments([snap(0, (10, 1), (100, 2)), snap(15, (25, 3), (190, 2))])
    assert len(incs) == 1
    i = incs[0]
    assert (i.canary.requests, i.canary.bad, i.baseline.requests, i.baseline.bad) == (15, 2, 90, 0)
    assert i.duration == 15
    assert i.exposure == pytest.approx(15 / 105)


def test_counter_reset_takes_new_value() -> None:
    # canary restarted between scrapes: its counters start again from zero
    incs = to_increments([snap(0, (1000, 50), (100, 2)), snap(15, (7, 1), (110, 2))])
    assert (incs[0].canary.requests, incs[0].canary.bad) == (7, 1)
    assert incs[0].baseline.requests == 10


def test_reset_of_one_counter_resets_the_arm() -> None:
    # bad counter fell although requests grew: the process restarted and requests
    # restarted too (new value 1200 is the increase, not 200)
    incs = to_increments([snap(0, (1000, 50), (100, 2)), snap(15, (1200, 3), (110, 2))])
    assert (incs[0].canary.requests, incs[0].canary.bad) == (1200, 3)


def test_missing_scrape_spans_the_gap() -> None:
    snaps = [
        snap(0, (0, 0), (0, 0)),
        Snapshot(15, None, ArmSnapshot(50, 1)),
        Snapshot(30, ArmSnapshot(float("nan"), 0), ArmSnapshot(80, 1)),
        snap(45, (9, 1), (120, 3)),
    ]
    incs = to_increments(snaps)
    assert len(incs) == 1
    assert (incs[0].start, incs[0].end) == (0, 45)
    assert incs[0].baseline.requests == 120


def test_none_value_is_missing() -> None:
    t = CounterTracker()
    assert t.push(snap(0, (0, 0), (0, 0))) is None
    assert t.push(Snapshot(15, ArmSnapshot(None, 0), ArmSnapshot(5, 0))) is None
    inc = t.push(snap(30, (3, 0), (8, 0)))
    assert inc is not None and inc.canary.requests == 3


def test_zero_canary_traffic_has_nan_exposure_and_no_error() -> None:
    incs = to_increments([snap(0, (0, 0), (0, 0)), snap(15, (0, 0), (0, 0))])
    assert math.isnan(incs[0].exposure)


@pytest.mark.parametrize(
    "snaps, msg",
    [
        ([snap(0, (10, 11), (10, 0))], "exceed"),
        ([snap(0, (-1, 0), (10, 0))], "negative"),
        ([snap(0, (1, 0), (10, 0)), snap(0, (2, 0), (11, 0))], "increase"),
        ([snap(5, (1, 0), (10, 0)), snap(3, (2, 0), (11, 0))], "increase"),
        ([snap(0, (1, 0), (10, 0)), snap(15, (2.5, 0), (11, 0))], "not an integer"),
        ([snap(0, (1, 0), (10, 0)), snap(15, (2, 0), (INF, 0))], "infinite"),
        ([snap(0, (10, 0), (10, 0)), snap(15, (20, 15), (20, 0))], "bad events"),
    ],
)
def test_invalid_input_raises(snaps: list[Snapshot], msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        to_increments(snaps)


def hist(vals: list[float], les: tuple[float, ...] = (50, 100, INF)) -> dict[float, float]:
    return dict(zip(les, vals, strict=True))


def test_histogram_increments_and_exceedances() -> None:
    s0 = Snapshot(0, ArmSnapshot(10, 0, hist([5, 8, 10])), ArmSnapshot(20, 0, hist([10, 18, 20])))
    s1 = Snapshot(15, ArmSnapshot(30, 0, hist([9, 20, 30])), ArmSnapshot(40, 0, hist([20, 35, 40])))
    (inc,) = to_increments([s0, s1])
    assert inc.canary.le == (50.0, 100.0)
    assert inc.canary.le_counts == (4, 12)
    assert inc.canary.hist_count == 20
    assert inc.canary.slower_than() == (16, 8)
    assert inc.baseline.slower_than() == (10, 3)


@pytest.mark.parametrize(
    "c1, b1, msg",
    [
        (hist([9, 8, 30]), hist([20, 35, 40]), "not cumulative"),
        (hist([9, 20, 30], (50, 200, INF)), hist([20, 35, 40]), "different bucket bounds"),
        ({50: 9, 100: 20}, hist([20, 35, 40]), r"\+Inf"),
    ],
)
def test_inconsistent_histograms_raise(
    c1: dict[float, float], b1: dict[float, float], msg: str
) -> None:
    s0 = Snapshot(0, ArmSnapshot(10, 0, hist([5, 8, 10])), ArmSnapshot(20, 0, hist([10, 18, 20])))
    s1 = Snapshot(15, ArmSnapshot(30, 0, c1), ArmSnapshot(40, 0, b1))
    with pytest.raises(ValueError, match=msg):
        to_increments([s0, s1])


def test_bucket_bounds_changing_over_time_raise() -> None:
    les = (50, 200, INF)
    s0 = Snapshot(0, ArmSnapshot(10, 0, hist([5, 8, 10])), ArmSnapshot(20, 0, hist([10, 18, 20])))
    s1 = Snapshot(
        15, ArmSnapshot(30, 0, hist([9, 20, 30], les)), ArmSnapshot(40, 0, hist([20, 35, 40], les))
    )
    with pytest.raises(ValueError, match="changed"):
        to_increments([s0, s1])


def test_histogram_nan_bucket_is_a_missing_scrape() -> None:
    s0 = Snapshot(0, ArmSnapshot(10, 0, hist([5, 8, 10])), ArmSnapshot(20, 0, hist([10, 18, 20])))
    bad = Snapshot(
        15, ArmSnapshot(20, 0, hist([5, float("nan"), 20])), ArmSnapshot(30, 0, hist([10, 18, 30]))
    )
    s2 = Snapshot(30, ArmSnapshot(30, 0, hist([9, 20, 30])), ArmSnapshot(40, 0, hist([20, 35, 40])))
    (inc,) = to_increments([s0, bad, s2])
    assert (inc.start, inc.end, inc.canary.hist_count) == (0, 30, 20)

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


def test_reset_of_an_arm_sum_without_pods_is_no_data() -> None:
    # the canary's sum fell: one of its pods (or all) restarted; without per-pod counters
    # the increase is unknown, so the interval carries no data (never the whole history)
    tr = CounterTracker()
    tr.push(snap(0, (1000, 50), (100, 2)))
    assert tr.push(snap(15, (7, 1), (110, 2))) is None
    inc = tr.push(snap(30, (20, 2), (130, 3)))
    assert inc is not None and (inc.canary.requests, inc.canary.bad) == (13, 1)
    assert inc.baseline.requests == 20 and tr.resets_skipped == 1


def test_reset_of_one_counter_makes_the_interval_no_data() -> None:
    # bad counter fell although requests grew: a restart of unknown extent
    assert to_increments([snap(0, (1000, 50), (100, 2)), snap(15, (1200, 3), (110, 2))]) == []


def _pods(**kw: tuple[float, float]) -> dict[str, tuple[float | None, float | None]]:
    return {k: (float(a), float(b)) for k, (a, b) in kw.items()}


def test_one_pod_restarting_counts_only_its_new_values() -> None:
    # a day of history on pods a and b; pod b restarts: the interval holds a's increase and
    # b's new values, never a's history (the former arm-level reset counted 100,110 here)
    day = 86_400 * 50
    old = ArmSnapshot(2 * day, 2 * day // 100, pods=_pods(a=(day, day // 100), b=(day, day // 100)))
    new = ArmSnapshot(day + 760, day // 100 + 7,
                      pods=_pods(a=(day + 750, day // 100 + 7), b=(10, 0)))
    canary = ArmSnapshot(1000, 10, pods=_pods(c=(1000, 10)))
    canary2 = ArmSnapshot(1100, 11, pods=_pods(c=(1100, 11)))
    incs = to_increments([Snapshot(0, canary, old), Snapshot(15, canary2, new)])
    assert len(incs) == 1
    b = incs[0].baseline
    assert (b.requests, b.bad) == (760, 7)
    assert b.pods == (("a", 750, 7), ("b", 10, 0))
    assert not incs[0].latency_valid  # the summed histogram cannot be split per pod


def test_new_pods_are_excluded_until_warm_on_both_arms() -> None:
    tr = CounterTracker(warmup_s=60)
    c = {0: {"c1": (0, 0)}, 15: {"c1": (100, 5)}, 60: {"c1": (400, 8)}, 75: {"c1": (500, 9)},
         90: {"c1": (600, 10), "c2": (50, 20)}, 150: {"c1": (1000, 14), "c2": (450, 24)},
         165: {"c1": (1100, 15), "c2": (550, 25)}}
    out = []
    for t, cp in c.items():
        b = {"b1": (10 * t, t // 10), "b2": (10 * t, t // 10)}
        cr, cb = sum(v[0] for v in cp.values()), sum(v[1] for v in cp.values())
        br, bb = sum(v[0] for v in b.values()), sum(v[1] for v in b.values())
        arm_c, arm_b = ArmSnapshot(cr, cb, pods=_pods(**cp)), ArmSnapshot(br, bb, pods=_pods(**b))
        inc = tr.push(Snapshot(t, arm_c, arm_b))
        out.append(inc)
    got = [(i.start, i.canary.requests, i.canary.young, i.baseline.requests) for i in out if i]
    assert got == [
        (0, 0, (100, 5), 0),  # every pod seen at the first scrape is young for 60 s
        (15, 0, (300, 3), 0),
        (60, 100, (0, 0), 300),  # warm from t = 60
        (75, 100, (50, 20), 300),  # c2 appeared at 90: young, excluded
        (90, 400, (400, 4), 1200),
        (150, 200, (0, 0), 300),  # c2 warm from 150
    ]
    assert [i.latency_valid for i in out if i] == [False, False, True, False, False, True]


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

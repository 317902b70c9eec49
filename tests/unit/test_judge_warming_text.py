"""The verdict says plainly when the error evidence comes from warming canary pods (issue
10): they are tested only against the new-pod margin (5 x), so "0/0 vs ..." from the warm
pods must not be the sentence a user reads."""

from __future__ import annotations

from analysis import ArmSnapshot, SequentialConfig, SequentialJudge, Snapshot

STABLE = tuple(f"s{i}" for i in range(5))


def _young_only_judge() -> SequentialJudge:
    judge = SequentialJudge(SequentialConfig())
    st = {s: (0.0, 0.0) for s in STABLE}
    judge.observe(Snapshot(0.0, ArmSnapshot(0.0, 0.0, pods={"c0": (0.0, 0.0)}),
                           ArmSnapshot(0.0, 0.0, pods=st, warm_pods=STABLE)))
    return judge


def test_explanation_says_the_canary_pods_are_warming_up_when_all_evidence_is_young() -> None:
    judge = _young_only_judge()
    st = {s: (20.0, 0.0) for s in STABLE}
    v = judge.observe(Snapshot(15.0, ArmSnapshot(3.0, 1.0, pods={"c0": (3.0, 1.0)}),
                               ArmSnapshot(100.0, 0.0, pods=st, warm_pods=STABLE)))
    text = v.metrics[0].explanation
    # Before: "canary error rate is an unknown multiple of stable (95% anytime-valid, 0/0 vs
    # 0/100; ...; plus 1/3 from young canary pods, judged only against 5 x)".
    assert text.startswith("canary pods are warming up (younger than 120 s): 1/3 canary "
                           "requests failed vs 0/100 on stable, tested only against 5 x "
                           "stable's error rate (a warming pod may err that much more); "
                           "e-value "), text
    assert "0/0" not in text and "unknown multiple" not in text
    assert v.metrics[0].counts["canary_requests_young_pods"] == 3


def test_explanation_names_warm_and_young_evidence_apart() -> None:
    judge = _young_only_judge()
    for k in range(1, 11):  # c0 (first seen at 0) is warm from the interval starting at 120 s
        st = {s: (20.0 * k, 0.0) for s in STABLE}
        v = judge.observe(Snapshot(15.0 * k, ArmSnapshot(5.0 * k, 0.0, pods={"c0": (5.0 * k, 0.0)}),
                                   ArmSnapshot(100.0 * k, 0.0, pods=st, warm_pods=STABLE)))
    text = v.metrics[0].explanation
    assert "0/10 vs 0/1000 on warm pods" in text, text
    assert "plus 0/40 from canary pods younger than 120 s, tested only against 5 x" in text, text

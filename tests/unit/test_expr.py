import math

import pytest

from rollouts.metrics.expr import ExprError, condition, evaluate


@pytest.mark.parametrize("src, result, expected", [
    ("result >= 0.95", 0.97, True),
    ("result >= 0.95", 0.9, False),
    ("result[0] >= 0.95", [0.96], True),
    ("result[0] >= 0.95 && result[0] <= 1", [1.2], False),
    ("result < 1 || result > 10", 11, True),
    ("result < 1 or result > 10", 5, False),
    ("not (result > 1)", 0.5, True),
    ("!isNaN(result) && result > 0", math.nan, False),
    ("isNaN(result)", math.nan, True),
    ("isInf(result)", math.inf, True),
    ("len(result) == 0", [], True),
    ("len(result) > 0 && result[0] > 1", [], False),
    ("default(result, 0) == 0", None, True),
    ("default(result, 0) == 0", math.nan, True),
    ("result.successRate > 0.9", {"successRate": 0.95}, True),
    ("result == nil", None, True),
    ("result * 100 >= 95", 0.96, True),
    ("result - 1 < 2 * 3", 4, True),
    ("1 + 2 * 3 == 7", 0, True),
    ("(1 + 2) * 3 == 9", 0, True),
    ("result == 'ok'", "ok", True),
    ("-result < 0", 3, True),
])
def test_argo_style_conditions(src: str, result: object, expected: bool) -> None:
    assert condition(src, result) is expected


@pytest.mark.parametrize("src, result, fragment", [
    ("result[0] > 1", [], "no data returned"),
    ("result >", 1, "unexpected"),
    ("__import__('os')", 1, "unknown function"),
    ("result.__class__", 1, "cannot index"),
    ("foo > 1", 1, "unknown name"),
    ("result > 1 ;", 1, "unexpected character"),
    ("result", 1.0, "not true or false"),
    ("result > 'a'", 1, "needs numbers"),
    ("", 1, "empty"),
])
def test_bad_conditions_raise_clear_errors(src: str, result: object, fragment: str) -> None:
    with pytest.raises(ExprError) as e:
        condition(src, result)
    assert fragment in str(e.value)


def test_values() -> None:
    assert evaluate("[1, 2][1]", None) == 2
    assert evaluate("len('abc')", None) == 3

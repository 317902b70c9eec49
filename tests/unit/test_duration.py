"""Argo-style durations as pause steps accept them."""

from __future__ import annotations

import pytest

from rollouts.api.duration import MAX_SECONDS, parse_duration


@pytest.mark.parametrize(("value", "seconds"), [
    (600, 600.0), (0, 0.0), ("600", 600.0), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0),
    ("250ms", 0.25), (" 10s ", 10.0), ("0s", 0.0), (MAX_SECONDS, float(MAX_SECONDS)),
])
def test_valid(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", [
    -1, "-5s", "1.5s", 1.5, "5 m", "5min", "1m30s", "1d", "", "s", None, True, False, [], {},
    "３s", MAX_SECONDS + 1, f"{MAX_SECONDS + 1}s", "999999999h",
])
def test_invalid_values_raise_value_error_naming_them(value: object) -> None:
    with pytest.raises(ValueError, match="invalid duration") as e:
        parse_duration(value)
    assert repr(value) in str(e.value)

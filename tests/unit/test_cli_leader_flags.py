"""`rollouts controller --leader-election-*`: Argo's flags, durations as "15s", checked before
anything starts (a bad value is a usage error, never a controller that cannot keep a lease)."""

from __future__ import annotations

import pytest
import typer

from rollouts.cli.main import _lease_timings

DEFAULTS = {"lease_duration": "15s", "renew_deadline": "10s", "retry_period": "2s",
            "renew_period": "5s"}


def test_defaults_match_argo_and_renew_every_5_s() -> None:
    assert _lease_timings(**DEFAULTS) == {"lease_duration": 15.0, "renew_deadline": 10.0,
                                         "retry_period": 2.0, "renew_period": 5.0}


@pytest.mark.parametrize(("flag", "value", "says"), [
    ("retry_period", "2x", "--leader-election-retry-period"),
    ("renew_deadline", "20s", "--leader-election-*"),  # longer than the lease
    ("renew_period", "10s", "--leader-election-renew-period"),  # not inside the deadline
    ("renew_period", "1s", "--leader-election-renew-period"),  # faster than a retry
])
def test_a_bad_timing_names_its_flag(flag: str, value: str, says: str) -> None:
    with pytest.raises(typer.BadParameter) as e:
        _lease_timings(**{**DEFAULTS, flag: value})
    assert e.value.param_hint == says

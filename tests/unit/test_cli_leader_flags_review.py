"""Argo's --leader-election-* flags alone (without our --leader-election-renew-period) must
be accepted whenever Argo accepts them: the renew period is then derived from them."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

import rollouts.controller.manager as manager
from rollouts.cli.main import app


def _run(monkeypatch: pytest.MonkeyPatch, *flags: str) -> tuple[int, Any]:
    seen: list[Any] = []

    def fake_run(opts: Any) -> int:  # the parsed options, without starting a controller
        seen.append(opts)
        return 0

    monkeypatch.setattr(manager, "run_controller", fake_run)
    result = CliRunner().invoke(app, ["controller", *flags])
    return result.exit_code, (seen[0] if seen else result.output)


@pytest.mark.parametrize(("flags", "renew"), [
    # a fast election, as some Argo installs configure it
    (("--leader-election-lease-duration", "5s", "--leader-election-renew-deadline", "3s",
      "--leader-election-retry-period", "1s"), 1.5),
    # a slow retry: the renew period is never shorter than it
    (("--leader-election-retry-period", "6s",), 6.0),
])
def test_argo_timings_without_a_renew_period_are_accepted(
        monkeypatch: pytest.MonkeyPatch, flags: tuple[str, ...], renew: float) -> None:
    # Review of issue 14: the renew period defaulted to a fixed 5s, so these timings,
    # valid for Argo, were refused ("need retry period <= renew period < renew deadline")
    code, opts = _run(monkeypatch, *flags)
    assert code == 0, opts
    assert opts.renew_period == renew
    assert opts.retry_period <= opts.renew_period < opts.renew_deadline


def test_the_default_renew_period_is_still_5_s(monkeypatch: pytest.MonkeyPatch) -> None:
    code, opts = _run(monkeypatch)
    assert code == 0, opts
    assert (opts.lease_duration, opts.renew_deadline, opts.retry_period, opts.renew_period) == \
        (15.0, 10.0, 2.0, 5.0)

"""`make demo`'s story runs to the end (non-interactive mode) on the test bed."""

from __future__ import annotations

from tests.e2e.kit import DemoRun


async def test_demo_promotes_the_good_version_and_rolls_back_the_bad_one(
        demo_run: DemoRun | None) -> None:
    # started with the session (conftest.py), in a namespace of its own
    assert demo_run is not None, "the demo was not started for this session"
    code, out, err = await demo_run.result()
    assert code == 0, out[-3000:] + err[-2000:]
    assert "v2 promoted to 100 %" in out
    assert "v3 rolled back automatically" in out
    assert "roll back" in out  # the judge's explained verdict is shown
    assert "blue-green: active Service switched to v2" in out

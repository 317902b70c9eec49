"""The kayenta provider against an in-test Kayenta standalone canary analysis API: config
lookup, the execution request Argo sends (scopes, thresholds, accounts), polling until
complete, and the score mapped to the measurement's phase."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from rollouts.metrics.providers import Context, ProviderError, measure, validate
from rollouts.metrics.providers.kayenta import phase_of
from tests.providers_fakes.kit import closed_port_url, serve
from tests.providers_fakes.saas import Kayenta

NOW = 1_700_000_000.0


@pytest.fixture
async def ky() -> AsyncIterator[tuple[Kayenta, str]]:
    fake = Kayenta(configs=[{"id": "cfg-1", "name": "shop-canary"}], polls_until_complete=2)
    async with serve(fake.app()) as url:
        yield fake, url


def spec(url: str, **over: Any) -> dict[str, Any]:
    return {"address": url, "application": "shop", "canaryConfigName": "shop-canary",
            "metricsAccountName": "prom", "configurationAccountName": "cfg",
            "storageAccountName": "store", "threshold": {"pass": 90, "marginal": 75},
            "scopes": [{"name": "default",
                        "controlScope": {"scope": "app=shop,role=stable", "region": "eu", "step": 60},
                        "experimentScope": {"scope": "app=shop,role=canary", "region": "eu",
                                            "step": 60}}],
            "pollInterval": "200ms", **over}


async def test_score_decides_and_request_is_argos(ky: tuple[Kayenta, str]) -> None:
    fake, url = ky
    r = await measure("kayenta", spec(url), Context(now=NOW, interval=300))
    assert (r.value, r.phase) == (95, "Successful")
    assert r.metadata["canaryExecutionId"] in fake.executions
    lookup, start = fake.requests[0], fake.requests[1]
    assert lookup["query"] == {"application": "shop", "configurationAccountName": "store"}
    assert start["path"] == "/canary/cfg-1"
    assert start["query"] == {"application": "shop", "metricsAccountName": "prom",
                              "configurationAccountName": "cfg", "storageAccountName": "store"}
    ctrl = start["body"]["scopes"]["default"]["controlScope"]
    assert ctrl == {"scope": "app=shop,role=stable", "location": "eu", "step": 60,
                    "start": "2023-11-14T22:08:20Z", "end": "2023-11-14T22:13:20Z"}
    assert start["body"]["thresholds"] == {"pass": 90, "marginal": 75}


async def test_marginal_and_failing_scores(ky: tuple[Kayenta, str]) -> None:
    fake, url = ky
    fake.score = 80
    assert (await measure("kayenta", spec(url), Context(now=NOW, interval=60))).phase == "Inconclusive"
    fake.score = 10
    assert (await measure("kayenta", spec(url), Context(now=NOW, interval=60))).phase == "Failed"
    assert [phase_of(s, 90, 75) for s in (90, 75, 74.9)] == ["Successful", "Inconclusive", "Failed"]


async def test_lookback_starts_at_the_run_start(ky: tuple[Kayenta, str]) -> None:
    fake, url = ky
    await measure("kayenta", spec(url, lookback=True), Context(now=NOW, run_started=NOW - 3600))
    assert fake.requests[-1]["body"]["scopes"]["default"]["experimentScope"]["start"] == \
        "2023-11-14T21:13:20Z"


async def test_errors(ky: tuple[Kayenta, str]) -> None:
    fake, url = ky
    with pytest.raises(ProviderError, match="canary config 'other' not found"):
        await measure("kayenta", spec(url, canaryConfigName="other"), Context(now=NOW))
    fake.polls_until_complete = 100
    with pytest.raises(ProviderError, match="still running after 1s"):
        await measure("kayenta", spec(url, timeout="1s"), Context(now=NOW))
    with pytest.raises(ProviderError, match=r"Kayenta at .* unreachable"):
        await measure("kayenta", spec(closed_port_url()), Context(now=NOW))


def test_lint_fields() -> None:
    bad = validate("kayenta", {"address": "http://k", "scopes": [{"name": "d", "controlScope": {
        "start": "2024-01-01T00:00:00Z"}, "experimentScope": {}}]})
    assert "kayenta.application is required" in bad
    assert "kayenta.threshold needs pass and marginal" in bad
    assert ("kayenta.scopes[0]: controlScope.start and experimentScope.start must both be set "
            "or both be empty") in bad

"""The wavefront provider against an in-test chart API: the query Argo sends (s = e = now,
one point, Bearer token from the wavefront-api-tokens Secret), the point nearest to now,
and errors as Error measurements."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rollouts.metrics.providers import ProviderError, measure, validate
from tests.providers_fakes.kit import ctx_with, serve
from tests.providers_fakes.saas import Wavefront

NOW = 1_700_000_000.0
Q = "ts(shop.errors.rate)"


@pytest.fixture
async def wf() -> AsyncIterator[tuple[Wavefront, str]]:
    fake = Wavefront(series={Q: [[[-60, 0.9], [-2, 0.02], [30, 0.7]]],
                             "ts(shop.*.rate)": [[[0, 1.0]], [[-1, 2.0]]]})
    async with serve(fake.app()) as url:
        yield fake, url


def tokens(token: str = "wf-token") -> dict[str, dict[str, str]]:
    return {"wavefront-api-tokens": {"127.0.0.1": token}}


async def test_point_nearest_to_now(wf: tuple[Wavefront, str]) -> None:
    fake, url = wf
    r = await measure("wavefront", {"address": url, "query": Q}, ctx_with(tokens(), now=NOW))
    assert r.value == 0.02
    assert r.metadata["drift"] == "-2"
    sent = fake.requests[-1]
    assert sent["headers"]["Authorization"] == "Bearer wf-token"
    assert sent["query"]["s"] == sent["query"]["e"] == str(int(NOW) * 1000)
    assert sent["query"]["p"] == "1" and sent["query"]["g"] == "s" and sent["query"]["q"] == Q


async def test_several_series_give_a_list(wf: tuple[Wavefront, str]) -> None:
    _, url = wf
    r = await measure("wavefront", {"address": url, "query": "ts(shop.*.rate)"},
                      ctx_with(tokens(), now=NOW))
    assert r.value == [1.0, 2.0]


async def test_errors(wf: tuple[Wavefront, str]) -> None:
    fake, url = wf
    with pytest.raises(ProviderError, match=r"rejected the credentials \(HTTP 401\): 401 Unauthorized"):
        await measure("wavefront", {"address": url, "query": Q}, ctx_with(tokens("bad")))
    with pytest.raises(ProviderError, match="HTTP 400: Syntax error in query"):
        await measure("wavefront", {"address": url, "query": "ts(oops"}, ctx_with(tokens()))
    with pytest.raises(ProviderError, match=r"no time series found .*No metrics matching"):
        await measure("wavefront", {"address": url, "query": "ts(none)"}, ctx_with(tokens()))
    with pytest.raises(ProviderError, match=r"has no token for .*'127.0.0.1'"):
        await measure("wavefront", {"address": url, "query": Q},
                      ctx_with({"wavefront-api-tokens": {"other.example.com": "t"}}))
    with pytest.raises(ProviderError, match="Secret rollouts-system/wavefront-api-tokens not found"):
        await measure("wavefront", {"address": url, "query": Q}, ctx_with({}))
    fake.limits.count, fake.limits.retry_after = 1, 1
    assert (await measure("wavefront", {"address": url, "query": Q},
                          ctx_with(tokens(), now=NOW))).value == 0.02


def test_lint_fields() -> None:
    assert validate("wavefront", {"query": "q"}) == ["wavefront.address is required"]

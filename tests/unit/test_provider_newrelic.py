"""The newRelic provider against an in-test NerdGraph server: the NRQL request as Argo
sends it, the result row as the value, and errors (401, NRQL syntax, unknown account,
429, no rows) as Error measurements with New Relic's message."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rollouts.metrics.providers import ProviderError, measure, validate
from rollouts.metrics.providers.newrelic import counter
from tests.providers_fakes.kit import ctx_with, serve
from tests.providers_fakes.saas import NewRelic

Q = "SELECT percentage(count(*), WHERE httpResponseCode >= 500) AS rate FROM Transaction"


@pytest.fixture
async def nr() -> AsyncIterator[tuple[NewRelic, str]]:
    fake = NewRelic(results={
        Q: [{"rate": 0.5}],
        "SELECT count(*) FROM Transaction FACET appName": [
            {"facet": "shop", "appName": "shop", "count": 120},
            {"facet": "cart", "appName": "cart", "count": 30}],
        "SELECT count(*) FROM Nothing": [{"count": None}],
    })
    async with serve(fake.app()) as url:
        yield fake, f"{url}/graphql"


def secret(url: str, **over: str) -> dict[str, dict[str, str]]:
    return {"newrelic": {"personal-api-key": "NRAK-test", "account-id": "1234567",
                         "base-url-nerdgraph": url, **over}}


async def test_nrql_through_nerdgraph(nr: tuple[NewRelic, str]) -> None:
    fake, url = nr
    r = await measure("newRelic", {"query": Q, "timeout": 10}, ctx_with(secret(url)))
    assert r.value == {"rate": 0.5}
    assert r.metadata["ResolvedNewRelicQuery"] == Q
    sent = fake.requests[-1]
    assert sent["headers"]["API-Key"] == "NRAK-test"
    assert sent["body"]["variables"] == {"query": Q, "accountId": 1234567, "timeout": 10}
    assert "nrql(query: $query, timeout: $timeout)" in sent["body"]["query"]


async def test_several_rows_give_a_list_and_the_judge_sums_them(nr: tuple[NewRelic, str]) -> None:
    _, url = nr
    q = "SELECT count(*) FROM Transaction FACET appName"
    r = await measure("newRelic", {"query": q, "profile": "nr"},
                      ctx_with({"nr": secret(url)["newrelic"]}))
    assert isinstance(r.value, list) and len(r.value) == 2
    assert await counter({}, q, ctx_with(secret(url))) == 150.0
    assert await counter({}, "SELECT count(*) FROM Nothing", ctx_with(secret(url))) is None


async def test_errors_carry_new_relic_messages(nr: tuple[NewRelic, str]) -> None:
    fake, url = nr
    with pytest.raises(ProviderError, match=r"rejected the credentials \(HTTP 401\): Invalid API key"):
        await measure("newRelic", {"query": Q}, ctx_with(secret(url, **{"personal-api-key": "bad"})))
    with pytest.raises(ProviderError, match="New Relic rejected the query: NRQL Syntax Error"):
        await measure("newRelic", {"query": "SELEC oops"}, ctx_with(secret(url)))
    with pytest.raises(ProviderError, match="Account not found"):
        await measure("newRelic", {"query": Q}, ctx_with(secret(url, **{"account-id": "99"})))
    with pytest.raises(ProviderError, match="returned no results"):
        await measure("newRelic", {"query": "SELECT count(*) FROM Empty"}, ctx_with(secret(url)))
    fake.limits.count, fake.limits.retry_after = 1, 30
    with pytest.raises(ProviderError, match=r"HTTP 429, retry after 30s"):
        await measure("newRelic", {"query": Q}, ctx_with(secret(url)))


async def test_secret_problems_are_named(nr: tuple[NewRelic, str]) -> None:
    _, url = nr
    with pytest.raises(ProviderError, match="Secret rollouts-system/newrelic not found"):
        await measure("newRelic", {"query": Q}, ctx_with({}))
    with pytest.raises(ProviderError, match="has no 'account-id'"):
        await measure("newRelic", {"query": Q}, ctx_with({"newrelic": {"personal-api-key": "k"}}))
    with pytest.raises(ProviderError, match="account-id 'abc' is not a number"):
        await measure("newRelic", {"query": Q}, ctx_with(secret(url, **{"account-id": "abc"})))
    with pytest.raises(ProviderError, match="region 'mars'"):
        await measure("newRelic", {"query": Q}, ctx_with({"newrelic": {
            "personal-api-key": "k", "account-id": "1", "region": "mars"}}))


def test_lint_fields() -> None:
    assert validate("newRelic", {}) == ["newRelic.query is required"]
    assert validate("newRelic", {"query": "q", "timeout": -1}) == [
        "newRelic.timeout must be a number of seconds >= 0, got -1"]

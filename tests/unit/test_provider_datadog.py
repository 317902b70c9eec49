"""The datadog provider against an in-test server of Datadog's v1 query and v2 scalar
query APIs: credentials found as Argo finds them, Argo's field rules, values, no data and
every error an Error measurement with the server's message."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rollouts.metrics.providers import ProviderError, measure, validate
from rollouts.metrics.providers.datadog import counter
from tests.providers_fakes.kit import closed_port_url, ctx_with, serve
from tests.providers_fakes.saas import Datadog

NOW = 1_700_000_000.0


@pytest.fixture
async def dd() -> AsyncIterator[tuple[Datadog, str]]:
    fake = Datadog(series={"avg:errors{service:shop}": [0.5, 0.25],
                           "sum:requests{service:shop}.as_count()": [100.0, 300.0],
                           "sum:errors{service:shop}.as_count()": [3.0, 6.0]},
                   groups={"avg:errors{*} by {version}": {"version:1": 0.01, "version:2": 0.2}})
    async with serve(fake.app()) as url:
        yield fake, url


def secret(url: str, **over: str) -> dict[str, dict[str, str]]:
    return {"datadog": {"address": url, "api-key": "dd-api", "app-key": "dd-app", **over}}


async def test_v1_last_point_and_the_request_argo_sends(dd: tuple[Datadog, str]) -> None:
    fake, url = dd
    r = await measure("datadog", {"query": "avg:errors{service:shop}", "interval": "10m"},
                      ctx_with(secret(url), now=NOW))
    assert r.value == 0.25
    req = fake.requests[-1]
    assert req["path"] == "/api/v1/query"
    assert req["query"] == {"query": "avg:errors{service:shop}", "from": str(int(NOW) - 600),
                            "to": str(int(NOW))}
    assert req["headers"]["DD-API-KEY"] == "dd-api" and req["headers"]["DD-APPLICATION-KEY"] == "dd-app"


async def test_v2_scalar_with_formula_and_aggregator(dd: tuple[Datadog, str]) -> None:
    fake, url = dd
    spec = {"apiVersion": "v2", "aggregator": "sum", "formula": "errors / requests",
            "queries": {"errors": "sum:errors{service:shop}.as_count()",
                        "requests": "sum:requests{service:shop}.as_count()"}}
    r = await measure("datadog", spec, ctx_with(secret(url), now=NOW))
    assert r.value == pytest.approx(9 / 400)
    body = fake.requests[-1]["body"]["data"]
    assert body["type"] == "scalar_request"
    assert body["attributes"]["from"] == (int(NOW) - 300) * 1000  # Argo's default interval 5m
    assert {q["name"]: q["aggregator"] for q in body["attributes"]["queries"]} == {
        "errors": "sum", "requests": "sum"}
    assert body["attributes"]["formulas"] == [{"formula": "errors / requests"}]


async def test_v2_grouped_gives_a_list_and_the_groups(dd: tuple[Datadog, str]) -> None:
    _, url = dd
    r = await measure("datadog", {"apiVersion": "v2", "query": "avg:errors{*} by {version}"},
                      ctx_with(secret(url), now=NOW))
    assert r.value == [0.01, 0.2]
    assert "version:2" in r.metadata["groups"]


async def test_no_data_is_an_error_for_both_versions(dd: tuple[Datadog, str]) -> None:
    _, url = dd
    for spec in ({"query": "avg:nothing{*}"}, {"apiVersion": "v2", "query": "avg:nothing{*}"}):
        with pytest.raises(ProviderError, match="no data"):
            await measure("datadog", spec, ctx_with(secret(url), now=NOW))


async def test_bad_keys_bad_query_and_rate_limit(dd: tuple[Datadog, str]) -> None:
    fake, url = dd
    with pytest.raises(ProviderError, match=r"rejected the credentials \(HTTP 403\): Forbidden"):
        await measure("datadog", {"query": "avg:errors{*}"}, ctx_with(secret(url, **{"app-key": "x"})))
    with pytest.raises(ProviderError, match="HTTP 400: Error parsing query"):
        await measure("datadog", {"query": "avg:errors{*"}, ctx_with(secret(url)))
    fake.limits.count, fake.limits.retry_after = 1, 1  # short: retried once after the reset
    r = await measure("datadog", {"query": "avg:errors{service:shop}"}, ctx_with(secret(url)))
    assert r.value == 0.25
    fake.limits.count, fake.limits.retry_after = 1, 60  # too long to wait in one measurement
    with pytest.raises(ProviderError, match=r"rate-limited the query \(HTTP 429, retry after 60s\)"):
        await measure("datadog", {"query": "avg:errors{service:shop}"}, ctx_with(secret(url)))


async def test_credentials_as_argo_finds_them(dd: tuple[Datadog, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _, url = dd
    with pytest.raises(ProviderError, match="Secret rollouts-system/datadog not found"):
        await measure("datadog", {"query": "avg:errors{service:shop}"}, ctx_with({}))
    with pytest.raises(ProviderError, match="Secret datadog has no 'api-key'"):
        await measure("datadog", {"query": "q"}, ctx_with({"datadog": {"app-key": "x"}}))
    # secretRef.namespaced: the AnalysisRun's namespace
    async def read(ns: str, name: str) -> dict[str, str] | None:
        return secret(url)["datadog"] if (ns, name) == ("shop", "dd-shop") else None
    from rollouts.metrics.providers import Context
    ctx = Context(secrets=read, namespace="shop")
    spec = {"query": "avg:errors{service:shop}", "secretRef": {"name": "dd-shop", "namespaced": True}}
    assert (await measure("datadog", spec, ctx)).value == 0.25
    # no secretRef: the controller's environment first
    monkeypatch.setenv("DD_ADDRESS", url)
    monkeypatch.setenv("DD_API_KEY", "dd-api")
    monkeypatch.setenv("DD_APP_KEY", "dd-app")
    assert (await measure("datadog", {"query": "avg:errors{service:shop}"}, ctx_with({}))).value == 0.25


async def test_unreachable() -> None:
    with pytest.raises(ProviderError, match=r"Datadog at .* unreachable"):
        await measure("datadog", {"query": "q", "requestTimeout": "2s"},
                      ctx_with(secret(closed_port_url())))


async def test_judge_counter(dd: tuple[Datadog, str]) -> None:
    _, url = dd
    ctx = ctx_with(secret(url), now=NOW)
    assert await counter({"aggregator": "sum"}, "sum:requests{service:shop}.as_count()", ctx) == 400.0
    assert await counter({}, "sum:none{*}.as_count()", ctx) is None


def test_argo_field_rules() -> None:
    assert validate("datadog", {}) == ["datadog needs query or queries",
                                       "datadog apiVersion v1 takes only query (queries and formula need v2)"]
    assert validate("datadog", {"apiVersion": "v2", "queries": {"a": "x", "b": "y"}}) == [
        "datadog: several queries need a formula"]
    assert validate("datadog", {"query": "x", "aggregator": "avg"}) == [
        "datadog.aggregator needs apiVersion v2"]
    assert validate("datadog", {"apiVersion": "v3", "query": "x"}) == [
        "datadog.apiVersion must be v1 or v2, got 'v3'"]
    assert validate("datadog", {"query": "x", "requestTimeout": "0s"}) == [
        "datadog.requestTimeout must be a positive duration"]
    assert validate("datadog", {"query": "x", "secretRef": {"namespaced": True}}) == [
        "datadog.secretRef.namespaced needs secretRef.name"]

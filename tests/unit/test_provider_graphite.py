"""The graphite provider against a real carbon-cache + graphite-web (Debian's), started on
127.0.0.1: the render API's query string as Argo sends it, the first target's values,
and bad input as an Error with the server's message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from rollouts.metrics.providers import Context, ProviderError, measure, validate
from rollouts.metrics.providers.graphite import counter, render_params
from tests.providers_fakes.kit import closed_port_url
from tests.providers_fakes.servers import INSTALL, Graphite, graphite, graphite_available


@pytest.fixture(scope="module")
def gr() -> Iterator[Graphite]:
    if not graphite_available():
        pytest.fail(f"graphite-carbon/graphite-web are not installed: run `{INSTALL}`")
    with graphite() as g:
        now = time.time()
        g.send([("shop.canary.errors", 3, now - 3), ("shop.canary.errors", 5, now - 2),
                ("shop.stable.errors", 7, now - 2)])
        yield g


async def values(g: Graphite, query: str) -> object:
    """The provider's value, once carbon has the points (it takes a moment to receive them)."""
    for _ in range(50):
        try:
            return (await measure("graphite", {"address": g.address, "query": query}, Context())).value
        except ProviderError as e:
            if "no values found" not in str(e):
                raise
        await asyncio.sleep(0.2)
    raise AssertionError(f"no data for {query}")


async def test_first_target_values_from_a_real_graphite(gr: Graphite) -> None:
    # whitespace is removed before sending, as Argo does
    assert await values(gr, "target=shop.canary.errors &from=-5min") == [3.0, 5.0]


async def test_functions_and_only_the_first_target(gr: Graphite) -> None:
    assert await values(gr, "target=sumSeries(shop.*.errors)&from=-5min") == [3.0, 12.0]
    assert await values(gr, "target=shop.canary.errors&target=shop.stable.errors&from=-5min") == [3.0, 5.0]


async def test_judge_counter_is_the_last_value_summed_over_targets(gr: Graphite) -> None:
    await values(gr, "target=shop.stable.errors&from=-5min")
    spec = {"address": gr.address}
    assert await counter(spec, "target=shop.*.errors&from=-5min", Context()) == 12.0
    assert await counter(spec, "target=shop.none.errors&from=-5min", Context()) is None


async def test_no_series_is_an_error_not_a_pass(gr: Graphite) -> None:
    with pytest.raises(ProviderError, match="no values found"):
        await measure("graphite", {"address": gr.address, "query": "target=shop.nothing&from=-5min"},
                      Context())


async def test_a_bad_function_carries_the_server_answer(gr: Graphite) -> None:
    with pytest.raises(ProviderError, match=r"Graphite answered HTTP (400|500)"):
        await measure("graphite", {"address": gr.address, "query": "target=noSuchFunction(a.b)"},
                      Context())


async def test_unreachable_and_bad_fields() -> None:
    with pytest.raises(ProviderError, match=r"Graphite at .* unreachable"):
        await measure("graphite", {"address": closed_port_url(), "query": "target=a"}, Context())
    with pytest.raises(ProviderError, match=r"graphite\.address is required"):
        await measure("graphite", {"query": "target=a"}, Context())
    with pytest.raises(ProviderError, match="must hold target="):
        await measure("graphite", {"address": "http://x", "query": "a.b.c"}, Context())


def test_render_params_and_lint() -> None:
    assert render_params("target = a.b&from=-1h&format=csv") == [
        ("target", "a.b"), ("from", "-1h"), ("format", "json")]
    assert validate("graphite", {"query": "a.b"}) == [
        "graphite.address is required", "graphite.query must hold target=<expression>, got 'a.b'"]
    assert validate("graphite", {"address": "http://g", "query": "{{args.q}}"}) == []

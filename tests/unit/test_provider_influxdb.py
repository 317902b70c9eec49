"""The influxdb provider: InfluxQL against a real InfluxDB 1.x (Debian's), Flux against an
in-test server speaking the 2.x /api/v2/query format (annotated CSV), and every bad input
an Error with a message that says what to fix."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web

from rollouts.metrics.providers import ProviderError, measure, validate
from rollouts.metrics.providers.influxdb import counter, flux_values
from tests.providers_fakes.kit import closed_port_url, ctx_with, serve
from tests.providers_fakes.servers import INSTALL, Influx, influx_available, influxdb


@pytest.fixture(scope="module")
def influx() -> Iterator[Influx]:
    if not influx_available():
        pytest.fail(f"influxd is not installed: run `{INSTALL}`")
    with influxdb() as i:
        i.query("CREATE DATABASE shop")
        now = int(time.time())
        i.write("shop", "\n".join([
            f"requests,role=canary value=100 {now - 20}",
            f"requests,role=canary value=130 {now - 10}",
            f"requests,role=stable value=900 {now - 10}",
            f"errors,role=canary value=4 {now - 10}",
        ]))
        yield i


def profile(i: Influx, **extra: str) -> dict[str, dict[str, str]]:
    return {"influxdb": {"address": i.address, **extra}}


async def test_influxql_last_value_from_a_real_influxdb(influx: Influx) -> None:
    spec = {"query": "SELECT last(value) FROM requests WHERE role = 'canary'", "database": "shop"}
    r = await measure("influxdb", spec, ctx_with(profile(influx)))
    assert r.value == 130.0
    assert r.metadata["queryLanguage"] == "influxql"


async def test_influxql_several_series_give_a_list(influx: Influx) -> None:
    spec = {"query": "SELECT last(value) FROM requests GROUP BY role",
            "queryLanguage": "influxql", "profile": "mine"}
    r = await measure("influxdb", spec, ctx_with({"mine": {"address": influx.address,
                                                            "database": "shop"}}))
    assert r.value == [130.0, 900.0]


async def test_influxql_empty_result_is_an_error_not_a_pass(influx: Influx) -> None:
    spec = {"query": "SELECT last(value) FROM requests WHERE role = 'nobody'", "database": "shop"}
    with pytest.raises(ProviderError, match="returned no data"):
        await measure("influxdb", spec, ctx_with(profile(influx)))


async def test_influxql_bad_query_carries_the_server_message(influx: Influx) -> None:
    spec = {"query": "SELECT last(value FROM requests", "database": "shop"}
    with pytest.raises(ProviderError, match=r"InfluxDB.*error parsing query"):
        await measure("influxdb", spec, ctx_with(profile(influx)))


async def test_influxql_unknown_database_is_an_error(influx: Influx) -> None:
    spec = {"query": "SELECT last(value) FROM requests", "database": "nope"}
    with pytest.raises(ProviderError, match="database not found"):
        await measure("influxdb", spec, ctx_with(profile(influx)))


async def test_judge_counter_sums_series_and_none_is_no_data(influx: Influx) -> None:
    spec = {"database": "shop"}
    ctx = ctx_with(profile(influx))
    assert await counter(spec, "SELECT last(value) FROM requests GROUP BY role", ctx) == 1030.0
    assert await counter(spec, "SELECT last(value) FROM errors WHERE role = 'stable'", ctx) is None


async def test_missing_secret_and_missing_keys_are_named() -> None:
    spec = {"query": "SELECT 1", "database": "shop"}
    with pytest.raises(ProviderError, match="Secret rollouts-system/influxdb not found"):
        await measure("influxdb", spec, ctx_with({}))
    with pytest.raises(ProviderError, match="Secret influxdb has no 'address'"):
        await measure("influxdb", spec, ctx_with({"influxdb": {"authToken": "t"}}))
    with pytest.raises(ProviderError, match="has no 'authToken', 'org'"):
        await measure("influxdb", {"query": "from(bucket: \"b\")"},
                      ctx_with({"influxdb": {"address": "http://x"}}))
    with pytest.raises(ProviderError, match="needs `database`"):
        await measure("influxdb", {"query": "SELECT 1"},
                      ctx_with({"influxdb": {"address": "http://x"}}))


async def test_unreachable_server_is_an_error() -> None:
    spec = {"query": "SELECT 1", "database": "shop", "timeout": "3s"}
    with pytest.raises(ProviderError, match="unreachable"):
        await measure("influxdb", spec, ctx_with({"influxdb": {"address": closed_port_url()}}))


# --- Flux (InfluxDB 2.x), against an in-test server of the documented API ---------------

FLUX_CSV = (
    "#datatype,string,long,dateTime:RFC3339,double,string\r\n"
    "#group,false,false,false,false,true\r\n"
    "#default,_result,,,,\r\n"
    ",result,table,_time,_value,role\r\n"
    ",,0,2024-01-01T00:00:00Z,0.25,canary\r\n"
    "\r\n"
    "#datatype,string,long,dateTime:RFC3339,double,string\r\n"
    "#group,false,false,false,false,true\r\n"
    "#default,_result,,,,\r\n"
    ",result,table,_time,_value,role\r\n"
    ",,1,2024-01-01T00:00:00Z,0.5,stable\r\n"
    "\r\n")


@pytest.fixture
async def flux_server() -> AsyncIterator[tuple[str, list[web.Request]]]:
    seen: list[web.Request] = []

    async def query(req: web.Request) -> web.Response:
        seen.append(req)
        if req.headers.get("Authorization") != "Token s3cret":
            return web.json_response({"code": "unauthorized", "message": "unauthorized access"},
                                     status=401)
        if req.query.get("org") != "shop":
            return web.json_response({"code": "not found",
                                      "message": f"organization name \"{req.query.get('org')}\" not found"},
                                     status=404)
        body = await req.json()
        if body.get("type") != "flux" or "query" not in body:
            return web.json_response({"code": "invalid", "message": "bad request body"}, status=400)
        if "syntax error" in body["query"]:
            return web.json_response({"code": "invalid",
                                      "message": "compilation failed: error at @1:1-1:7: invalid"},
                                     status=400)
        if "empty" in body["query"]:
            return web.Response(text="\r\n", content_type="text/csv")
        return web.Response(text=FLUX_CSV, content_type="text/csv")

    app = web.Application()
    app.router.add_post("/api/v2/query", query)
    async with serve(app) as url:
        yield url, seen


def flux_profile(url: str, token: str = "s3cret") -> dict[str, dict[str, str]]:
    return {"influxdb": {"address": url, "authToken": token, "org": "shop"}}


async def test_flux_request_and_annotated_csv(flux_server: tuple[str, list[web.Request]]) -> None:
    url, seen = flux_server
    q = 'from(bucket: "shop") |> range(start: -5m) |> last()'
    r = await measure("influxdb", {"query": q}, ctx_with(flux_profile(url)))
    assert r.value == [0.25, 0.5]
    assert r.metadata["queryLanguage"] == "flux"
    assert seen[-1].headers["Accept"] == "application/csv"


async def test_flux_401_and_400_carry_the_server_message(
        flux_server: tuple[str, list[web.Request]]) -> None:
    url, _ = flux_server
    with pytest.raises(ProviderError, match=r"rejected the credentials \(HTTP 401\): unauthorized access"):
        await measure("influxdb", {"query": "from(bucket: \"b\")"}, ctx_with(flux_profile(url, "bad")))
    with pytest.raises(ProviderError, match="HTTP 400: compilation failed"):
        await measure("influxdb", {"query": "syntax error"}, ctx_with(flux_profile(url)))
    with pytest.raises(ProviderError, match="no data"):
        await measure("influxdb", {"query": "from(bucket: \"empty\")"}, ctx_with(flux_profile(url)))


def test_flux_error_table_and_missing_value_column() -> None:
    with pytest.raises(ProviderError, match="rejected the query: runtime error"):
        flux_values("#datatype,string,string\r\n,error,reference\r\n,runtime error,\r\n")
    with pytest.raises(ProviderError, match="no _value column"):
        flux_values(",result,table,count\r\n,,0,3\r\n")


def test_lint_fields() -> None:
    assert validate("influxdb", {}) == ["influxdb.query is required"]
    assert validate("influxdb", {"query": "x", "queryLanguage": "sql"}) == [
        "influxdb.queryLanguage must be one of flux, influxql"]
    assert validate("influxdb", {"query": "x", "profile": 3}) == ["influxdb.profile must be a string"]

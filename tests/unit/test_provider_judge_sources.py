"""The sequential judge fed by other providers (``judge.source``): counters from a real
InfluxDB and Graphite, and from the Datadog, New Relic and CloudWatch in-test servers,
reach the judge exactly as Prometheus' do (no data is None, never 0); the fields are
checked for ``rollouts lint``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from rollouts.metrics.judge import judge_reading, measure, validate_judge_spec
from rollouts.metrics.providers import Context
from tests.providers_fakes.kit import ctx_with, serve
from tests.providers_fakes.saas import CloudWatch, Datadog, NewRelic
from tests.providers_fakes.servers import (
    INSTALL,
    Graphite,
    Influx,
    graphite,
    graphite_available,
    influx_available,
    influxdb,
)

INFLUX_Q = "SELECT last(value) FROM {m} WHERE role = '{r}'"


def arms(q: str, errors: bool = True) -> dict[str, Any]:
    return {arm: {"requests": q.format(m="requests", r=role),
                  **({"errors": q.format(m="errors", r=role)} if errors else {})}
            for arm, role in (("canary", "canary"), ("baseline", "stable"))}


@pytest.fixture(scope="module")
def influx() -> Iterator[Influx]:
    if not influx_available():
        pytest.fail(f"influxd is not installed: run `{INSTALL}`")
    with influxdb() as i:
        i.query("CREATE DATABASE shop")
        yield i


async def test_influxdb_counters_roll_back_a_failing_canary(influx: Influx) -> None:
    spec = {"source": {"influxdb": {"database": "shop"}}, **arms(INFLUX_Q)}
    ctx = ctx_with({"influxdb": {"address": influx.address}})
    t0 = int(time.time()) - 100
    snaps: list[dict[str, Any]] = []
    reading = None
    for k in range(1, 6):  # cumulative counters: canary fails 30 %, stable 1 %
        influx.write("shop", "\n".join([
            f"requests,role=canary value={1000 * k} {t0 + k}",
            f"errors,role=canary value={300 * k} {t0 + k}",
            f"requests,role=stable value={1000 * k} {t0 + k}",
            f"errors,role=stable value={10 * k} {t0 + k}"]))
        reading = await judge_reading(spec, snaps, float(t0 + 15 * k), ctx=ctx)
        assert reading.snapshot is not None
        snaps.append(reading.snapshot)
        if reading.value == "rollback":
            break
    assert reading is not None and reading.value == "rollback" and reading.phase == "Failed", reading
    assert snaps[0]["canary"] == {"requests": 1000.0, "errors": 300.0}


async def test_no_data_stays_none_never_zero(influx: Influx) -> None:
    spec = {"source": {"influxdb": {"database": "shop"}},
            **arms("SELECT last(value) FROM nothing_{m} WHERE role = '{r}'")}
    snap = await measure(spec, time.time(), ctx=ctx_with({"influxdb": {"address": influx.address}}))
    assert snap["canary"] == {"requests": None, "errors": None}


@pytest.fixture(scope="module")
def gr() -> Iterator[Graphite]:
    if not graphite_available():
        pytest.fail(f"graphite is not installed: run `{INSTALL}`")
    with graphite() as g:
        now = time.time()
        g.send([("shop.canary.requests", 500, now - 2), ("shop.canary.errors", 5, now - 2),
                ("shop.stable.requests", 700, now - 2)])
        yield g


async def test_graphite_counters(gr: Graphite) -> None:
    spec = {"source": {"graphite": {"address": gr.address}},
            **arms("target=shop.{r}.{m}&from=-10min")}
    for _ in range(50):  # carbon takes a moment to have the points
        snap = await measure(spec, time.time(), ctx=Context())
        if snap["baseline"]["requests"] is not None and snap["canary"]["errors"] is not None:
            break
        await asyncio.sleep(0.2)
    assert snap["canary"] == {"requests": 500.0, "errors": 5.0}
    assert snap["baseline"] == {"requests": 700.0, "errors": None}  # no error series yet


@pytest.fixture
async def saas(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, Any]]:
    dd = Datadog(series={"sum:requests{role:canary}.as_count()": [40.0, 60.0],
                         "sum:requests{role:stable}.as_count()": [90.0]})
    nr = NewRelic(results={"SELECT count(*) FROM Transaction WHERE role = 'canary'": [{"count": 11}]})
    cw = CloudWatch(values={"canary_requests": [33.0, 30.0]})
    async with serve(dd.app()) as d, serve(nr.app()) as n, serve(cw.app()) as c:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", cw.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", cw.secret_key)
        monkeypatch.setenv("AWS_REGION", cw.region)
        monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", c)
        yield {"ctx": ctx_with({
            "datadog": {"address": d, "api-key": "dd-api", "app-key": "dd-app"},
            "newrelic": {"personal-api-key": "NRAK-test", "account-id": "1234567",
                         "base-url-nerdgraph": f"{n}/graphql"}}), "dd": dd}


async def test_saas_counters_in_the_judge_snapshot(saas: dict[str, Any]) -> None:
    ctx = saas["ctx"]
    dd = {"source": {"datadog": {"aggregator": "sum"}},
          "canary": {"requests": "sum:requests{role:canary}.as_count()", "errors": "sum:e{x}.as_count()"},
          "baseline": {"requests": "sum:requests{role:stable}.as_count()", "errors": "sum:e{y}.as_count()"}}
    snap = await measure(dd, time.time(), ctx=ctx)
    assert snap["canary"] == {"requests": 100.0, "errors": None}
    assert snap["baseline"]["requests"] == 90.0
    assert saas["dd"].requests[-1]["path"] == "/api/v2/query/scalar"  # v2 unless set

    nr = {"source": {"newRelic": {}},
          "canary": {"requests": "SELECT count(*) FROM Transaction WHERE role = 'canary'",
                     "errors": "SELECT count(*) FROM TransactionError WHERE role = 'canary'"},
          "baseline": {"requests": "SELECT count(*) FROM X", "errors": "SELECT count(*) FROM Y"}}
    snap = await measure(nr, time.time(), ctx=ctx)
    assert snap["canary"] == {"requests": 11.0, "errors": None}

    cw = {"source": {"cloudWatch": {"interval": "15m"}},
          "canary": {"requests": "SUM(canary_requests)", "errors": "SUM(canary_errors)"},
          "baseline": {"requests": "SUM(stable_requests)", "errors": "SUM(stable_errors)"}}
    snap = await measure(cw, time.time(), ctx=ctx)
    assert snap["canary"] == {"requests": 33.0, "errors": None}  # the newest value


def test_lint_of_judge_sources() -> None:
    ok = {"source": {"influxdb": {"database": "shop"}}, **arms(INFLUX_Q)}
    assert validate_judge_spec(ok) == []
    assert validate_judge_spec({**ok, "source": {"wavefront": {}}}) == [
        "judge.source.wavefront cannot feed the judge (counters come from: influxdb, graphite, "
        "datadog, newRelic, cloudWatch)"]
    both = {**ok, "address": "http://prometheus:9090"}
    assert validate_judge_spec(both) == ["judge: set address (Prometheus) or source, not both"]
    hist = {**ok, "canary": {**ok["canary"], "latencyBuckets": "x"}}
    assert validate_judge_spec(hist) == [
        "judge.canary.latencyBuckets needs Prometheus (address); with source the judge takes "
        "requests and errors"]
    assert "judge.address is required" in validate_judge_spec({k: v for k, v in ok.items()
                                                               if k != "source"})

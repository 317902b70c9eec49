"""The simulator's reflector against a scripted fake API: list, watch, 410, 404 fallback."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from testbed.simulator.kube import VIRTUAL_SERVICE, Reflector


class FakeResponse:
    """Enough of aiohttp.ClientResponse: status, read(), line iteration, async with."""

    def __init__(self, status: int, body: Any = None, events: list[Any] | None = None) -> None:
        self.status = status
        self._body = json.dumps(body or {}).encode()
        self._events = events or []
        self.content = self._lines()

    async def _lines(self) -> AsyncIterator[bytes]:
        for e in self._events:
            if e == "hang":  # keep the watch open, as a quiet server would
                await asyncio.sleep(3600)
            yield json.dumps(e).encode() + b"\n"

    async def read(self) -> bytes:
        return self._body

    async def __aenter__(self) -> FakeResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def vs(name: str, rv: str, weight: int = 100) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv},
        "spec": {"http": [{"route": [{"destination": {"host": "a"}, "weight": weight}]}]},
    }


def listing(rv: str, *items: dict[str, Any]) -> FakeResponse:
    return FakeResponse(200, {"metadata": {"resourceVersion": rv}, "items": list(items)})


class Script:
    """Hands out scripted responses and records each request's version and arguments."""

    def __init__(self, reflector: Reflector, responses: list[FakeResponse]) -> None:
        self.responses = responses
        self.calls: list[tuple[tuple[str, str], dict[str, Any]]] = []
        self.reflector = reflector

    def __call__(self) -> Any:
        version = self.reflector.version

        async def call(**kw: Any) -> FakeResponse:
            self.calls.append((version, kw))
            if not self.responses:
                await asyncio.sleep(3600)
            return self.responses.pop(0)

        return call


async def run_until(reflector: Reflector, done: Any, timeout: float = 5.0) -> None:
    reflector.initial_backoff = 0.001
    task = asyncio.create_task(reflector.run())
    try:
        async with asyncio.timeout(timeout):
            for _ in range(int(timeout / 0.01)):
                if done():
                    break
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_list_then_watch_events_then_410_relists() -> None:
    store: dict[tuple[str, str], Any] = {}
    changes: list[int] = []
    r = Reflector(None, VIRTUAL_SERVICE, "ns", store, lambda: changes.append(1))  # type: ignore[arg-type]
    script = Script(
        r,
        [
            listing("10", vs("a", "9"), vs("gone", "8")),
            FakeResponse(
                200,
                events=[
                    {"type": "ADDED", "object": vs("b", "11")},
                    {"type": "MODIFIED", "object": vs("a", "12", weight=50)},
                    {"type": "DELETED", "object": vs("gone", "13")},
                    {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "20"}}},
                ],
            ),
            # The stream ended (server timeout): resume from the bookmark's version.
            FakeResponse(200, events=[{"type": "ERROR", "object": {"code": 410}}]),
            listing("30", vs("c", "29")),
        ],
    )
    r._call = script  # type: ignore[method-assign]
    await run_until(r, lambda: ("ns", "c") in store)

    assert set(store) == {("ns", "c")}  # the relist replaced everything
    watches = [kw for _, kw in script.calls if kw.get("watch")]
    assert [w["resource_version"] for w in watches] == ["10", "20", "30"]
    assert all(w["allow_watch_bookmarks"] and w["_preload_content"] is False for w in watches)
    assert r.synced.is_set()
    assert len(changes) == 5  # list, ADDED, MODIFIED, DELETED, relist (not the bookmark)


async def test_watch_applies_modifications() -> None:
    store: dict[tuple[str, str], Any] = {}
    r = Reflector(None, VIRTUAL_SERVICE, None, store, lambda: None)  # type: ignore[arg-type]
    r._call = Script(  # type: ignore[method-assign]
        r,
        [
            listing("1", vs("a", "1")),
            FakeResponse(200, events=[{"type": "MODIFIED", "object": vs("a", "2", 7)}, "hang"]),
        ],
    )
    await run_until(r, lambda: store.get(("ns", "a"), {}).get("metadata", {}).get("resourceVersion") == "2")
    assert store[("ns", "a")]["spec"]["http"][0]["route"][0]["weight"] == 7


async def test_410_on_watch_request_and_errors_are_retried() -> None:
    store: dict[tuple[str, str], Any] = {}
    r = Reflector(None, VIRTUAL_SERVICE, "ns", store, lambda: None)  # type: ignore[arg-type]
    script = Script(
        r,
        [
            FakeResponse(500, {"message": "boom"}),
            listing("5", vs("a", "5")),
            FakeResponse(410),
            listing("6", vs("b", "6")),
        ],
    )
    r._call = script  # type: ignore[method-assign]
    await run_until(r, lambda: ("ns", "b") in store)
    assert set(store) == {("ns", "b")}


async def test_falls_back_to_v1beta1_then_treats_missing_crd_as_empty() -> None:
    store: dict[tuple[str, str], Any] = {}
    r = Reflector(None, VIRTUAL_SERVICE, "ns", store, lambda: None)  # type: ignore[arg-type]
    script = Script(r, [FakeResponse(404), listing("3", vs("a", "3"))])
    r._call = script  # type: ignore[method-assign]
    await run_until(r, lambda: ("ns", "a") in store)
    assert [v for v, _ in script.calls[:2]] == [
        ("networking.istio.io", "v1"),
        ("networking.istio.io", "v1beta1"),
    ]

    store.clear()
    r = Reflector(None, VIRTUAL_SERVICE, "ns", store, lambda: None)  # type: ignore[arg-type]
    r._call = Script(r, [FakeResponse(404), FakeResponse(404)])  # type: ignore[method-assign]
    await run_until(r, r.synced.is_set)
    assert store == {}


async def test_a_missing_crd_is_said_once_not_warned_on_every_retry(caplog: pytest.LogCaptureFixture) -> None:
    store: dict[tuple[str, str], Any] = {}
    r = Reflector(None, VIRTUAL_SERVICE, "ns", store, lambda: None)  # type: ignore[arg-type]
    script = Script(r, [FakeResponse(404) for _ in range(6)])
    r._call = script  # type: ignore[method-assign]
    with caplog.at_level(logging.DEBUG, logger="testbed.simulator.kube"):
        await run_until(r, lambda: not script.responses)
    said = [rec for rec in caplog.records if "not served" in rec.getMessage()]
    assert len(said) == 3  # three rounds of v1, v1beta1
    assert [rec.levelno for rec in said] == [logging.INFO, logging.DEBUG, logging.DEBUG]
    assert not [rec for rec in caplog.records if rec.levelno >= logging.WARNING]

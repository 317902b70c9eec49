"""Watch reconnects after an API server restart: at once first, then backing off, never
waiting long once the server is back, and relisting what changed meanwhile.

The reconnect runs against a local HTTP server speaking the list/watch protocol (stopped
and started again like a restarting API server); the waits the informer asks for are
recorded and shortened so the test runs in about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from kubernetes_asyncio import client

from rollouts.kube.client import SERVICES, Kube
from rollouts.kube.informer import Informer, ReconnectBackoff

NS = "shop"


def test_backoff_is_subsecond_first_then_doubles_and_stays_capped() -> None:
    b = ReconnectBackoff(first=0.1, factor=2, cap=5, jitter=0.2, rand=lambda: 1.0)
    delays = [b.failed(now=float(i)) for i in range(20)]
    assert delays[0] < 1
    assert delays[:6] == pytest.approx([0.12, 0.24, 0.48, 0.96, 1.92, 3.84])
    assert max(delays) == pytest.approx(6.0)  # cap 5 s + 20 % jitter, however long it is down
    assert all(a <= b for a, b in itertools.pairwise(delays))


def test_backoff_starts_over_after_success_or_a_quiet_period() -> None:
    b = ReconnectBackoff(first=0.1, cap=5, jitter=0.0, reset_after=30)
    for i in range(10):
        b.failed(now=float(i))
    assert b.failed(now=10.0) == 5
    b.succeeded()
    assert b.failed(now=11.0) == pytest.approx(0.1)
    assert b.failed(now=12.0) == pytest.approx(0.2)
    assert b.failed(now=100.0) == pytest.approx(0.1)  # the last failure was long ago


def test_jitter_only_lengthens_and_is_bounded() -> None:
    lo = ReconnectBackoff(first=1, cap=4, jitter=0.5, rand=lambda: 0.0)
    hi = ReconnectBackoff(first=1, cap=4, jitter=0.5, rand=lambda: 0.999)
    for i in range(8):
        a, b = lo.failed(now=float(i)), hi.failed(now=float(i))
        assert a <= b <= a * 1.5


class FakeApiServer:
    """Lists and watches Services in one namespace; can be stopped and started on its port."""

    def __init__(self) -> None:
        self.rv = 10
        self.objects = {"web": self._svc("web", "v1")}
        self.lists = 0
        self.watch_forbidden = False
        self.port = _free_port()
        self._runner: web.AppRunner | None = None
        self._watchers: list[web.StreamResponse] = []

    def _svc(self, name: str, version: str) -> dict[str, Any]:
        self.rv += 1
        return {"metadata": {"name": name, "namespace": NS, "resourceVersion": str(self.rv),
                             "labels": {"version": version}}}

    def change(self, name: str, version: str) -> None:
        self.objects[name] = self._svc(name, version)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") == "true" and self.watch_forbidden:
            return web.json_response({"kind": "Status", "code": 403, "message": "watch forbidden"},
                                     status=403)
        if request.query.get("watch") != "true":
            self.lists += 1
            return web.json_response({"kind": "ServiceList", "metadata": {"resourceVersion": str(self.rv)},
                                      "items": list(self.objects.values())})
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        self._watchers.append(resp)
        await resp.write(json.dumps({"type": "BOOKMARK", "object": {
            "metadata": {"resourceVersion": str(self.rv)}}}).encode() + b"\n")
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
            await asyncio.sleep(3600)  # until the server stops
        return resp

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(SERVICES.path(NS), self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()  # drops the open watches, refuses new connections
        self._runner = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def server() -> AsyncIterator[FakeApiServer]:
    srv = FakeApiServer()
    await srv.start()
    yield srv
    if srv._runner is not None:
        await srv.stop()


async def _until(pred: Any, timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.01)


async def test_watch_reconnects_fast_after_an_api_server_restart_and_relists(server: FakeApiServer) -> None:
    cfg = client.Configuration(host=f"http://127.0.0.1:{server.port}")
    api = client.ApiClient(cfg)
    asked: list[float] = []

    async def short_sleep(seconds: float) -> None:  # record what was asked, wait briefly
        asked.append(seconds)
        await asyncio.sleep(0.01)

    inf = Informer(Kube(api, timeout=2), SERVICES, NS, sleep=short_sleep)
    seen: list[tuple[str, str]] = []
    inf.add_handler(lambda kind, obj: seen.append((kind, obj["metadata"]["labels"]["version"])))
    task = asyncio.create_task(inf.run())
    try:
        await asyncio.wait_for(inf.synced.wait(), 5)
        assert seen == [("ADDED", "v1")] and server.lists == 1

        # The API server goes down for a long while; meanwhile "web" changes.
        await server.stop()
        await _until(lambda: len(asked) >= 15)
        server.change("web", "v2")
        await server.start()
        await _until(lambda: ("MODIFIED", "v2") in seen)
        assert server.lists >= 2  # the change was found by listing again
        assert inf.get(f"{NS}/web")["metadata"]["labels"]["version"] == "v2"  # type: ignore[index]

        assert asked[0] < 1, asked  # the first reconnect is immediate
        # However long it was down, the next attempt is never far away (was up to 60 s).
        assert max(asked) <= 6.0, asked

        # Back to normal once the new watch delivered its first line (on a loaded machine
        # that comes after the relist): a second restart starts from the fast end again.
        await _until(lambda: inf.backoff._failures == 0)
        n = len(asked)
        await server.stop()
        await _until(lambda: len(asked) > n)
        assert asked[n] < 1, asked[n:]
        await server.start()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api.close()


async def test_a_list_that_works_before_a_watch_that_fails_still_backs_off(
        server: FakeApiServer) -> None:
    server.watch_forbidden = True
    api = client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{server.port}"))
    asked: list[float] = []

    async def short_sleep(seconds: float) -> None:
        asked.append(seconds)
        await asyncio.sleep(0.01)

    task = asyncio.create_task(Informer(Kube(api, timeout=2), SERVICES, NS, sleep=short_sleep).run())
    try:
        await _until(lambda: len(asked) >= 8)
        assert asked[-1] >= 5, asked  # grown to the cap, not relisting ten times a second
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api.close()


async def test_a_request_on_a_connection_the_restarted_server_dropped_is_sent_again() -> None:
    # The first request after an API server restart often goes out on a pooled keep-alive
    # connection the old server process owned: it is closed without an answer. That must
    # not fail the reconcile (and show as a failure in status).
    answered = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        first = True
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                break
            if not first:  # "restarted": this connection dies without an answer
                writer.close()
                return
            first = False
            answered += 1
            body = b'{"kind": "Service", "metadata": {"name": "web"}}'
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: keep-alive\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    api = client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{port}"))
    try:
        kube = Kube(api, timeout=5)
        assert (await kube.get(SERVICES.path(NS, "web")))["metadata"]["name"] == "web"
        # a write (the HTTP client itself only repeats idempotent verbs)
        patched = await kube.merge_patch(SERVICES.path(NS, "web"), {"spec": {}})
        assert patched["metadata"]["name"] == "web"
        assert answered == 2  # the second on a new connection
    finally:
        await api.close()
        srv.close()
        await srv.wait_closed()

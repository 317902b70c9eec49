"""Delivery: one bounded FIFO queue and one task per destination, so notifications reach
each receiver in order, a slow or dead receiver delays only itself, and a reconcile never
waits. Retries with exponential backoff on 429 and 5xx (and on network errors, which are
what a 502/503 from a proxy would be); other 4xx are final. Every loss is counted.

A job is an HTTP POST of JSON by default; a service whose API answers differently reads
the answer itself (``Job.judge``), and one that is not HTTP at all (email) brings its own
attempt (``Job.send``), both returning an ``Outcome`` that says whether to retry."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)


class DeliveryObserver(Protocol):
    def sent(self, receiver_type: str, receiver: str) -> None: ...
    def failed(self, receiver_type: str, receiver: str, reason: str) -> None: ...


class NullObserver:
    def sent(self, receiver_type: str, receiver: str) -> None:
        pass

    def failed(self, receiver_type: str, receiver: str, reason: str) -> None:
        pass


def retryable(status: int | None) -> bool:
    """None is a network error or timeout."""
    return status is None or status == 429 or status >= 500


def retry_delay(attempt: int, status: int | None, retry_after: str | None = None,
                base: float = 0.5, cap: float = 30.0) -> float | None:
    """Seconds to wait after failed attempt number ``attempt`` (1-based), or None: give up.

    ``Retry-After`` (seconds) is honoured on 429/503, capped at ``cap``.
    """
    if not retryable(status):
        return None
    return backoff(attempt, retry_after, base, cap)


def backoff(attempt: int, retry_after: str | None = None, base: float = 0.5,
            cap: float = 30.0) -> float:
    """The wait before attempt ``attempt + 1``: ``Retry-After`` seconds if given, else exponential."""
    if retry_after:
        with contextlib.suppress(ValueError):
            return min(cap, max(0.0, float(retry_after)))
    return float(min(cap, base * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Outcome:
    """One delivery attempt: delivered, or why not and whether trying again may help."""

    ok: bool
    retry: bool = False
    retry_after: str | None = None
    problem: str = ""


def _server_message(resp: httpx.Response) -> str:
    """The server's own explanation from an error body (JSON ``message``/``errors`` as
    PagerDuty and Opsgenie send them, else the start of the text), kept short for logs."""
    text = resp.text.strip()
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, dict) and ("message" in body or "errors" in body):
        parts = [str(body.get("message", ""))]
        if body.get("errors"):
            parts.append(json.dumps(body["errors"], separators=(",", ":")))
        text = " ".join(p for p in parts if p)
    return text[:300]


def http_outcome(resp: httpx.Response) -> Outcome:
    """Any 2xx is delivered; 429 and 5xx are retried (honouring ``Retry-After``); other
    answers are final. The problem carries the server's message."""
    status = resp.status_code
    if 200 <= status < 300:
        return Outcome(True)
    msg = _server_message(resp)
    return Outcome(False, retryable(status), resp.headers.get("retry-after"),
                   f"HTTP {status}" + (f": {msg}" if msg else ""))


@dataclass(frozen=True)
class Job:
    url: str  # where to (for logs only its host); for non-HTTP jobs a scheme://host:port
    body: Any
    what: str  # for logs: trigger or "alerts"
    headers: Mapping[str, str] = field(default_factory=dict)
    judge: Callable[[httpx.Response], Outcome] = http_outcome
    send: Callable[[], Awaitable[Outcome]] | None = None  # replaces the HTTP POST


@dataclass
class Policy:
    queue_size: int = 256
    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    timeout: float = 5.0


class Sender:
    def __init__(self, kind: str, name: str, client: httpx.AsyncClient, observer: DeliveryObserver,
                 policy: Policy) -> None:
        self.kind, self.name = kind, name
        self.client = client
        self.observer = observer
        self.policy = policy
        self.queue: asyncio.Queue[Job] = asyncio.Queue(policy.queue_size)

    def offer(self, job: Job) -> bool:
        try:
            self.queue.put_nowait(job)
            return True
        except asyncio.QueueFull:
            self.observer.failed(self.kind, self.name, "queue_full")
            log.warning("%s receiver %s: queue full, dropped %s", self.kind, self.name, job.what)
            return False

    async def run(self) -> None:
        while True:
            job = await self.queue.get()
            try:
                await self.deliver(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop the receiver's queue
                self.observer.failed(self.kind, self.name, "error")
                log.exception("%s receiver %s: delivery of %s failed", self.kind, self.name, job.what)
            finally:
                self.queue.task_done()

    async def deliver(self, job: Job) -> bool:
        host = urlsplit(job.url).hostname or "?"  # never log the URL: for Slack it is the secret
        attempt = 0
        while True:
            attempt += 1
            out = await self.attempt(job)
            if out.ok:
                self.observer.sent(self.kind, self.name)
                return True
            problem = out.problem
            delay = (backoff(attempt, out.retry_after, self.policy.base_delay, self.policy.max_delay)
                     if out.retry else None)
            if delay is None or attempt >= self.policy.attempts:
                reason = "rejected" if delay is None else "retries_exhausted"
                self.observer.failed(self.kind, self.name, reason)
                log.warning("%s receiver %s (%s): %s not delivered after %d attempt(s): %s",
                            self.kind, self.name, host, job.what, attempt, problem)
                return False
            log.info("%s receiver %s (%s): %s, retrying in %.1fs", self.kind, self.name, host,
                     problem, delay)
            await asyncio.sleep(delay)

    async def attempt(self, job: Job) -> Outcome:
        if job.send is not None:
            return await job.send()
        try:
            resp = await self.client.post(job.url, json=job.body, headers=dict(job.headers),
                                          timeout=self.policy.timeout)
        except httpx.HTTPError as e:  # network error or timeout: worth another try
            return Outcome(False, True, None, f"{type(e).__name__}: {e}")
        return job.judge(resp)


class Deliveries:
    """The senders, created on first use (inside the running loop)."""

    def __init__(self, observer: DeliveryObserver, policy: Policy | None = None,
                 client: httpx.AsyncClient | None = None) -> None:
        self.observer = observer
        self.policy = policy or Policy()
        self.client = client or httpx.AsyncClient(follow_redirects=False,
                                                  headers={"User-Agent": "rollouts-controller"})
        self.senders: dict[tuple[str, str], Sender] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def offer(self, kind: str, name: str, job: Job) -> bool:
        """``name`` is the receiver (its own queue); all Alertmanager URLs are counted as
        receiver ``alertmanager`` in metrics but each has its own queue."""
        s = self.senders.get((kind, name))
        if s is None:
            label = kind if kind == "alertmanager" else name
            s = self.senders[(kind, name)] = Sender(kind, label, self.client, self.observer,
                                                    self.policy)
            self.tasks.append(asyncio.get_running_loop().create_task(s.run()))
        return s.offer(job)

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until every queue is empty: for shutdown and tests."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(s.queue.join() for s in self.senders.values())),
                                   timeout)

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.client.aclose()

"""Leader election on a coordination.k8s.io Lease (client-go's algorithm, simplified).

The work runs only while we hold the lease. If renewing fails for longer than the renew
deadline, ``lost`` is set and the process must stop acting at once (the manager exits),
so two controllers never write together for longer than the lease allows.

Two rules from client-go keep that promise:

- Another holder's lease is judged by the *local* monotonic clock: it is valid until
  ``leaseDurationSeconds`` after we last saw its record change. The remote ``renewTime``
  is written for humans and never compared with our clock, so clock skew between nodes
  can neither let two leaders act at once nor keep a dead leader's lease alive.
- Every attempt has a deadline: a renewal that hangs is abandoned when the renew
  deadline (shorter than the lease) runs out, and the lease is then given up as lost,
  before any other candidate may take it.

One departure: a leader whose last renewal succeeded renews every ``renew_period`` (5 s)
rather than every ``retry_period`` (2 s, client-go renews that often). Renewals are all an
idle controller sends, and safety does not depend on their pace: a failed renewal is
retried every retry period, and the renew deadline still counts from the last success, so
the leader stops acting before a standby (which waits a whole lease unchanged) takes over.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rollouts.kube.client import JSON, LEASES, Kube, KubeError

log = logging.getLogger(__name__)


def _micro(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaseObserver:
    """The lease record last seen and when it last changed, by the local monotonic clock."""

    record: tuple[Any, ...] | None = None
    changed_at: float = 0.0

    def observe(self, spec: JSON, now: float) -> None:
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("acquireTime"),
                  spec.get("leaseDurationSeconds"), spec.get("leaseTransitions"))
        if record != self.record:
            self.record, self.changed_at = record, now

    def held_by_other(self, identity: str, default_duration: float, now: float) -> bool:
        """Someone else holds the lease and has renewed it within its duration (as seen
        here): we must not take it."""
        if self.record is None:
            return False
        holder, duration = self.record[0], self.record[3]
        if not holder or holder == identity:
            return False
        valid_for = duration if isinstance(duration, int) and duration > 0 else default_duration
        return self.changed_at + valid_for > now


def default_renew_period(retry_period: float, renew_deadline: float) -> float:
    """5 s, or half the renew deadline when that is shorter, never below the retry period
    (so any timings Argo accepts are accepted without a renew period)."""
    return max(retry_period, min(5.0, renew_deadline / 2))


class LeaderElector:
    def __init__(self, kube: Kube, namespace: str, name: str = "rollouts-controller",
                 identity: str | None = None, lease_duration: float = 15,
                 renew_deadline: float = 10, retry_period: float = 2,
                 renew_period: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("leader election needs retry_period < renew_deadline < lease_duration")
        if renew_period is None:
            renew_period = default_renew_period(retry_period, renew_deadline)
        if not retry_period <= renew_period < renew_deadline:
            raise ValueError("leader election needs retry_period <= renew_period < renew_deadline")
        self.kube, self.namespace, self.name = kube, namespace, name
        self.identity = identity or f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.lease_duration, self.renew_deadline, self.retry_period = (
            lease_duration, renew_deadline, retry_period)
        self.renew_period = renew_period
        self.clock = clock
        self.observed = LeaseObserver()
        # the Lease as our last write returned it: a leader renews from it without a GET
        self._ours: JSON | None = None
        self.is_leader = asyncio.Event()
        self.lost = asyncio.Event()

    async def try_acquire_or_renew(self) -> bool:
        """One attempt: True when we hold the lease afterwards. A leader renews with one
        request (an update carrying the resourceVersion of its last write, as client-go
        does); when that fails (409: someone else wrote) it reads the Lease and decides."""
        path = LEASES.path(self.namespace, self.name)
        if self.is_leader.is_set() and self._ours is not None:
            renewed = copy.deepcopy(self._ours)
            renewed["spec"]["renewTime"] = _micro(datetime.now(UTC))
            try:
                self._ours = await self.kube.replace(path, renewed)
                self.observed.observe(self._ours.get("spec") or {}, self.clock())
                return True
            except KubeError as e:
                if not (e.conflict or e.not_found):
                    raise
            self._ours = None
        lease = await self.kube.get_or_none(path)
        now = self.clock()
        wall = _micro(datetime.now(UTC))  # for humans and kubectl; never compared
        spec: JSON = {"holderIdentity": self.identity,
                      "leaseDurationSeconds": int(self.lease_duration), "renewTime": wall}
        if lease is None:
            spec.update(acquireTime=wall, leaseTransitions=0)
            self._ours = await self.kube.create(LEASES.path(self.namespace), {
                "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec})
            self.observed.observe(spec, now)
            return True
        cur = lease.get("spec") or {}
        self.observed.observe(cur, now)
        if self.observed.held_by_other(self.identity, self.lease_duration, now):
            return False
        if cur.get("holderIdentity") == self.identity:
            spec["acquireTime"] = cur.get("acquireTime") or wall
            spec["leaseTransitions"] = cur.get("leaseTransitions", 0)
        else:
            spec["acquireTime"] = wall
            spec["leaseTransitions"] = int(cur.get("leaseTransitions") or 0) + 1
        lease["spec"] = spec
        # resourceVersion in lease: 409 if someone won
        self._ours = await self.kube.replace(path, lease)
        self.observed.observe(spec, now)
        return True

    def attempt_deadline(self, last_renew: float | None, now: float) -> float:
        """How long the next attempt may take: as leader, what is left of the renew
        deadline since the last renewal; as a candidate, the renew deadline."""
        if self.is_leader.is_set() and last_renew is not None:
            return max(0.0, self.renew_deadline - (now - last_renew))
        return self.renew_deadline

    async def run(self) -> None:
        last_renew: float | None = None
        while True:
            started = self.clock()
            budget = self.attempt_deadline(last_renew, started)
            ok = False
            try:
                if budget > 0:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                    # cancellation (shutdown) that arrives as the answer does
                    async with asyncio.timeout(budget):
                        ok = await self.try_acquire_or_renew()
            except TimeoutError:
                ok = False
                log.warning("lease %s/%s: no answer within %.1f s", self.namespace, self.name,
                            budget)
            except KubeError as e:
                ok = False
                if not e.conflict:
                    log.warning("lease %s/%s: %s", self.namespace, self.name, e)
            except Exception as e:
                ok = False
                log.warning("lease %s/%s: %s: %s", self.namespace, self.name, type(e).__name__, e)
            if ok:
                last_renew = started  # the attempt's start: the conservative moment
                if not self.is_leader.is_set():
                    log.info("became leader as %s", self.identity)
                    self.is_leader.set()
            elif self.is_leader.is_set() and last_renew is not None and \
                    self.clock() - last_renew >= self.renew_deadline:
                log.error("lost the lease %s/%s: stopping", self.namespace, self.name)
                self.lost.set()
                return
            if ok and self.is_leader.is_set():
                # counted from this renewal's start: a slow answer leaves the next attempt
                # as much of the renew deadline as a fast one does
                pause = max(0.0, started + self.renew_period - self.clock())
            else:
                pause = self.retry_period
            if self.is_leader.is_set() and last_renew is not None:
                # never past the renew deadline: a slow write, or a retry just before the
                # deadline, would otherwise keep us acting into the standby's lease
                pause = min(pause, max(0.0, last_renew + self.renew_deadline - self.clock()))
            await asyncio.sleep(pause)

    async def release(self) -> None:
        """Give the lease up on a clean shutdown so a standby takes over at once."""
        if not self.is_leader.is_set():
            return
        try:
            path = LEASES.path(self.namespace, self.name)
            async with asyncio.timeout(self.renew_deadline):
                lease = await self.kube.get(path)
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = None
                lease["spec"]["renewTime"] = None
                async with asyncio.timeout(self.renew_deadline):
                    await self.kube.replace(path, lease)
        except Exception as e:
            log.warning("could not release the lease: %s", e)

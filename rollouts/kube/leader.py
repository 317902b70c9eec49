"""Leader election on a coordination.k8s.io Lease (client-go's algorithm, simplified).

The work runs only while we hold the lease. If renewing fails for longer than the renew
deadline, ``lost`` is set and the process must stop acting at once (the manager exits),
so two controllers never write together for longer than the lease allows.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

from rollouts.kube.client import JSON, LEASES, Kube, KubeError

log = logging.getLogger(__name__)


def _micro(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(v: str | None) -> datetime | None:
    if not v:
        return None
    return datetime.fromisoformat(v.replace("Z", "+00:00"))


class LeaderElector:
    def __init__(self, kube: Kube, namespace: str, name: str = "rollouts-controller",
                 identity: str | None = None, lease_duration: float = 15,
                 renew_deadline: float = 10, retry_period: float = 2) -> None:
        self.kube, self.namespace, self.name = kube, namespace, name
        self.identity = identity or f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.lease_duration, self.renew_deadline, self.retry_period = (
            lease_duration, renew_deadline, retry_period)
        self.is_leader = asyncio.Event()
        self.lost = asyncio.Event()

    async def _try(self) -> bool:
        now = datetime.now(UTC)
        path = LEASES.path(self.namespace, self.name)
        lease = await self.kube.get_or_none(path)
        spec: JSON = {"holderIdentity": self.identity,
                      "leaseDurationSeconds": int(self.lease_duration),
                      "renewTime": _micro(now)}
        if lease is None:
            spec.update(acquireTime=_micro(now), leaseTransitions=0)
            await self.kube.create(LEASES.path(self.namespace), {
                "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec})
            return True
        cur = lease.get("spec") or {}
        holder = cur.get("holderIdentity")
        renewed = _parse(cur.get("renewTime"))
        duration = cur.get("leaseDurationSeconds") or self.lease_duration
        if holder and holder != self.identity and renewed and \
                renewed + timedelta(seconds=duration) > now:
            return False
        if holder == self.identity:
            spec["acquireTime"] = cur.get("acquireTime") or _micro(now)
            spec["leaseTransitions"] = cur.get("leaseTransitions", 0)
        else:
            spec["acquireTime"] = _micro(now)
            spec["leaseTransitions"] = int(cur.get("leaseTransitions") or 0) + 1
        lease["spec"] = spec
        await self.kube.replace(path, lease)  # resourceVersion in lease: 409 if someone won
        return True

    async def run(self) -> None:
        last_renew = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                ok = await self._try()
            except KubeError as e:
                ok = False
                if not e.conflict:
                    log.warning("lease %s/%s: %s", self.namespace, self.name, e)
            except Exception as e:
                ok = False
                log.warning("lease %s/%s: %s: %s", self.namespace, self.name, type(e).__name__, e)
            if ok:
                last_renew = loop.time()
                if not self.is_leader.is_set():
                    log.info("became leader as %s", self.identity)
                    self.is_leader.set()
            elif self.is_leader.is_set() and last_renew is not None and \
                    loop.time() - last_renew > self.renew_deadline:
                log.error("lost the lease %s/%s: stopping", self.namespace, self.name)
                self.lost.set()
                return
            await asyncio.sleep(self.retry_period)

    async def release(self) -> None:
        """Give the lease up on a clean shutdown so a standby takes over at once."""
        if not self.is_leader.is_set():
            return
        try:
            path = LEASES.path(self.namespace, self.name)
            lease = await self.kube.get(path)
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = None
                lease["spec"]["renewTime"] = None
                await self.kube.replace(path, lease)
        except Exception as e:
            log.warning("could not release the lease: %s", e)

"""Client-side throttling (--qps/--burst), request accounting and the instance-id selector."""

from __future__ import annotations

import pytest

from rollouts.controller.manager import instance_selector
from rollouts.kube.client import env_proxy_for, plural_of
from rollouts.kube.ratelimit import TokenBucket


async def test_a_burst_goes_at_once_then_requests_wait_for_the_rate() -> None:
    now = [0.0]
    waits: list[float] = []

    async def sleep(s: float) -> None:  # a fake clock that moves while the bucket sleeps
        waits.append(s)
        now[0] += s

    b = TokenBucket(qps=10, burst=3, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        await b.acquire()
    assert waits == []
    await b.acquire()
    await b.acquire()
    assert waits == pytest.approx([0.1, 0.1])  # one after the other at 10/s
    assert now[0] == pytest.approx(0.2)
    now[0] = 10.0  # a quiet period refills the bucket, never beyond the burst
    waits.clear()
    for _ in range(3):
        await b.acquire()
    assert waits == []
    await b.acquire()
    assert waits == pytest.approx([0.1])


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket(qps=0, burst=1)


def test_requests_are_counted_by_the_resource_they_name() -> None:
    assert plural_of("/api/v1/namespaces/ns/services/web") == "services"
    assert plural_of("/apis/rollouts.dev/v1alpha1/namespaces/ns/rollouts/r/status") == "rollouts"
    assert plural_of("/apis/coordination.k8s.io/v1/namespaces/x/leases/l") == "leases"
    assert plural_of("/api/v1/namespaces/ns") == "namespaces"
    assert plural_of("/apis/rollouts.dev/v1alpha1/clusteranalysistemplates/t") == "clusteranalysistemplates"


def test_the_proxy_is_resolved_once_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,.cluster.local")
    assert env_proxy_for("https://api.example.test:6443") == "http://proxy.internal:3128"
    assert env_proxy_for("https://127.0.0.1:6443") is None
    assert env_proxy_for("https://kubernetes.default.svc.cluster.local") is None


def test_instance_ids_split_the_fleet_like_argo() -> None:
    assert instance_selector("a") == "rollouts.dev/controller-instance-id=a"
    assert instance_selector("") == "!rollouts.dev/controller-instance-id"

"""Reads by name served from shared informers (issue 14): an idle reconcile sends nothing,
a change to an object a Rollout read enqueues that Rollout, our own writes do not, and a
kind the API server does not serve falls back to direct reads without a relist loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from rollouts.kube.cache import SharedCache, parse_path, reading_for
from rollouts.kube.client import JSON, REPLICASETS, SERVICES, VIRTUAL_SERVICES, KubeError
from rollouts.kube.informer import Informer, lean


class FakeKube:
    """Lists, watches (events pushed by the test) and GETs, counting the requests."""

    def __init__(self, objects: dict[str, list[JSON]], missing: tuple[str, ...] = ()) -> None:
        self.objects = objects  # plural -> objects
        self.missing = missing  # plurals the API server does not serve
        self.gets: list[str] = []
        self.lists: list[str] = []
        self.events: dict[str, asyncio.Queue[JSON]] = {}

    async def get_list(self, path: str, **_q: Any) -> JSON:
        plural = path.rstrip("/").split("/")[-1]
        self.lists.append(plural)
        if plural in self.missing:
            raise KubeError(404, "the server could not find the requested resource")
        return {"metadata": {"resourceVersion": "100"}, "items": list(self.objects.get(plural, []))}

    async def watch(self, path: str, rv: str, timeout: int, **_q: Any) -> AsyncIterator[JSON]:
        q = self.events.setdefault(path.rstrip("/").split("/")[-1], asyncio.Queue())
        while True:
            yield await q.get()

    async def get_or_none(self, path: str) -> JSON | None:
        self.gets.append(path)
        ref = parse_path(path)
        assert ref is not None
        for o in self.objects.get(ref.resource.plural, []):
            if o["metadata"]["name"] == ref.name and o["metadata"].get("namespace") == ref.namespace:
                return o
        return None

    def push(self, plural: str, kind: str, obj: JSON) -> None:
        self.events.setdefault(plural, asyncio.Queue()).put_nowait({"type": kind, "object": obj})


def svc(name: str, rv: int, selector: str = "a") -> JSON:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv),
                         "managedFields": [{"manager": "kubectl"}] * 3},
            "spec": {"selector": {"app": selector}}}


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_paths_name_objects_not_collections_or_subresources() -> None:
    ref = parse_path("/apis/networking.istio.io/v1/namespaces/ns/virtualservices/web")
    assert ref is not None and ref.resource.plural == "virtualservices" and ref.key == "ns/web"
    ref = parse_path("/apis/rollouts.dev/v1alpha1/clusteranalysistemplates/t")
    assert ref is not None and ref.namespace is None and ref.key == "t"
    assert parse_path("/api/v1/namespaces/ns/services") is None
    assert parse_path("/apis/rollouts.dev/v1alpha1/namespaces/ns/rollouts/r/status") is None


async def test_reads_after_the_first_come_from_the_store_and_cost_no_request() -> None:
    kube = FakeKube({"services": [svc("web", 5)]})
    cache = SharedCache(kube, None)  # type: ignore[arg-type]
    for _ in range(10):
        obj = await cache.get_or_none(SERVICES.path("ns", "web"))
        assert obj is not None and obj["spec"]["selector"] == {"app": "a"}
        assert await cache.get_or_none(SERVICES.path("ns", "nope")) is None
    assert kube.gets == [] and kube.lists == ["services"]
    assert obj is not None and "managedFields" not in obj["metadata"]  # lean store
    await cache.close()


async def test_a_change_to_what_a_rollout_read_enqueues_it_and_our_own_write_does_not() -> None:
    kube = FakeKube({"services": [svc("web", 5), svc("other", 6)]})
    woken: list[str] = []
    cache = SharedCache(kube, None, on_change=woken.append)  # type: ignore[arg-type]
    cache.begin("ns/shop")
    token = reading_for.set("ns/shop")
    await cache.get_or_none(SERVICES.path("ns", "web"))
    reading_for.reset(token)

    kube.push("services", "MODIFIED", svc("other", 7))  # nobody read it
    kube.push("services", "MODIFIED", svc("web", 8, selector="b"))  # edited by hand
    await _settle()
    assert woken == ["ns/shop"]
    assert (await cache.get_or_none(SERVICES.path("ns", "web")) or {})["spec"]["selector"] == {"app": "b"}

    cache.wrote(SERVICES.path("ns", "web"), svc("web", 9, selector="a"))  # our patch
    assert (await cache.get_or_none(SERVICES.path("ns", "web")) or {})["spec"]["selector"] == {"app": "a"}
    kube.push("services", "MODIFIED", svc("web", 9, selector="a"))  # its echo
    await _settle()
    assert woken == ["ns/shop"], "the echo of our own write is no news"

    cache.wrote(SERVICES.path("ns", "web"), svc("web", 7))  # an older answer never wins
    assert (await cache.get_or_none(SERVICES.path("ns", "web")) or {})["metadata"]["resourceVersion"] == "9"

    cache.begin("ns/shop")  # a reconcile that no longer reads it
    kube.push("services", "MODIFIED", svc("web", 10, selector="c"))
    await _settle()
    assert woken == ["ns/shop"]
    await cache.close()


async def test_a_kind_not_served_is_read_directly_without_relisting_in_a_loop() -> None:
    kube = FakeKube({"virtualservices": []}, missing=("virtualservices",))
    now = [0.0]
    cache = SharedCache(kube, None, clock=lambda: now[0])  # type: ignore[arg-type]
    for _ in range(3):
        assert await cache.get_or_none(VIRTUAL_SERVICES.path("ns", "web")) is None
        await asyncio.sleep(0.05)
    assert kube.lists == ["virtualservices"]  # listed once, then left alone
    assert len(kube.gets) == 3  # each read answered by the API server
    now[0] = 1000.0  # later (the CRD may be installed by now): tried again
    kube.missing = ()
    assert await cache.get_or_none(VIRTUAL_SERVICES.path("ns", "web")) is None
    assert kube.lists == ["virtualservices", "virtualservices"] and len(kube.gets) == 3
    await cache.close()


async def test_reads_outside_the_controllers_namespace_go_to_the_api_server() -> None:
    kube = FakeKube({"services": [svc("web", 5)]})
    cache = SharedCache(kube, "team-a")  # type: ignore[arg-type]
    assert await cache.get_or_none(SERVICES.path("ns", "web")) is not None
    assert kube.lists == [] and len(kube.gets) == 1
    await cache.close()


async def test_the_owner_index_follows_adds_changes_and_deletes() -> None:
    def rs(name: str, owner: str, rv: int) -> JSON:
        return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv),
                             "ownerReferences": [{"uid": owner, "controller": True}]}}
    kube = FakeKube({"replicasets": [rs("a", "u1", 1), rs("b", "u2", 2)]})
    inf = Informer(kube, REPLICASETS)  # type: ignore[arg-type]
    task = asyncio.create_task(inf.run())
    await inf.synced.wait()
    assert [o["metadata"]["name"] for o in inf.owned_by("u1")] == ["a"]
    kube.push("replicasets", "ADDED", rs("c", "u1", 3))
    kube.push("replicasets", "MODIFIED", rs("b", "u1", 4))  # adopted by u1
    await _settle()
    assert sorted(o["metadata"]["name"] for o in inf.owned_by("u1")) == ["a", "b", "c"]
    assert inf.owned_by("u2") == []
    kube.push("replicasets", "DELETED", rs("a", "u1", 5))
    await _settle()
    assert sorted(o["metadata"]["name"] for o in inf.owned_by("u1")) == ["b", "c"]
    task.cancel()


def test_lean_drops_what_the_controller_never_reads_and_keeps_the_rest() -> None:
    obj: JSON = {"metadata": {"name": "x", "managedFields": [{}],
                        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}",
                                        "keep": "1"}},
           "spec": {"a": 1}}
    out = lean(obj)
    assert out == {"metadata": {"name": "x", "annotations": {"keep": "1"}}, "spec": {"a": 1}}
    assert "managedFields" in obj["metadata"]  # the input is not changed


async def test_what_a_reader_edits_never_changes_the_shared_store() -> None:
    kube = FakeKube({"services": [svc("web", 5)]})
    cache = SharedCache(kube, None)  # type: ignore[arg-type]
    obj = await cache.get_or_none(SERVICES.path("ns", "web"))
    assert obj is not None
    obj["spec"]["selector"]["app"] = "edited"  # a router building its patch in place
    again = await cache.get_or_none(SERVICES.path("ns", "web"))
    assert again is not None and again["spec"]["selector"] == {"app": "a"}
    await cache.close()


def test_watches_last_five_to_ten_minutes_spread_like_client_go() -> None:
    # Regression (issue 14 benchmark): 8 watches reopened every 240 s made an idle
    # controller at N = 1,000 send 23 % more requests than Argo.
    kube = FakeKube({})
    timeouts = {Informer(kube, SERVICES).watch_timeout for _ in range(50)}  # type: ignore[arg-type]
    assert min(timeouts) >= 300 and max(timeouts) <= 600 and len(timeouts) > 5
    assert Informer(kube, SERVICES, watch_timeout=30).watch_timeout == 30  # type: ignore[arg-type]


async def test_versions_follow_what_a_rollout_read_and_refuse_when_a_read_was_direct() -> None:
    # what lets the periodic resync pass by a rollout at rest (issue 14: no full resync of
    # work a watch already delivers)
    kube = FakeKube({"services": [svc("web", 5)], "virtualservices": []},
                    missing=("virtualservices",))
    cache = SharedCache(kube, None)  # type: ignore[arg-type]
    cache.begin("ns/shop")
    token = reading_for.set("ns/shop")
    await cache.get_or_none(SERVICES.path("ns", "web"))
    await cache.get_or_none(SERVICES.path("ns", "absent"))
    reading_for.reset(token)
    seen = cache.versions("ns/shop")
    assert seen == (("services", "ns/absent", None), ("services", "ns/web", "5"))
    kube.push("services", "MODIFIED", svc("web", 6))
    await _settle()
    assert cache.versions("ns/shop") != seen  # changed since: not at rest any more
    assert cache.versions("ns/nobody") == ()

    cache.begin("ns/shop")  # this time a read the stores cannot serve
    token = reading_for.set("ns/shop")
    await cache.get_or_none(VIRTUAL_SERVICES.path("ns", "web"))
    reading_for.reset(token)
    assert cache.versions("ns/shop") is None
    await cache.close()


async def test_a_lagging_watch_event_never_rolls_our_own_write_back() -> None:
    # Regression (bench-controller with step-first scheduling): the follow-up reconcile of a
    # status write ran before the watch had caught up; an older event (someone's earlier
    # change) replaced our written version in the store, the reconcile wrote with it and
    # met a conflict, and the retry queued behind every other rollout's step work.
    kube = FakeKube({"replicasets": [svc("web", 5)]})
    informer = Informer(kube, REPLICASETS, None)  # type: ignore[arg-type]
    task = asyncio.create_task(informer.run())
    await asyncio.wait_for(informer.synced.wait(), 1)
    informer.wrote(svc("web", 9, selector="ours"))  # our write's answer
    kube.push("replicasets", "MODIFIED", svc("web", 7, selector="theirs"))  # older, late
    await _settle()
    stored = informer.get("ns/web")
    assert stored is not None and stored["metadata"]["resourceVersion"] == "9"
    kube.push("replicasets", "MODIFIED", svc("web", 11, selector="later"))  # newer: taken
    await _settle()
    stored = informer.get("ns/web")
    assert stored is not None and stored["spec"]["selector"] == {"app": "later"}
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

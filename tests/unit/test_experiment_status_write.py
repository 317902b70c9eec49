"""The Experiment reconciler's status write keeps its informer's store by the informer's
rules (read-your-writes): never behind what the watch already delivered, without the
fields the store leaves out. Before, it assigned the written object into the store
directly, so a newer version delivered meanwhile was replaced by an older one."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from rollouts.api.experiment import ExperimentStatus
from rollouts.controller.experiment_reconciler import EXPERIMENTS, ExperimentReconciler
from rollouts.kube.client import JSON, Kube
from rollouts.kube.events import EventRecorder
from rollouts.kube.informer import Informer


class _Kube:
    """Answers the status write with the object at ``rv`` (what the API server returned)."""

    def __init__(self, rv: str) -> None:
        self.rv = rv
        self.replaced: list[str] = []

    async def replace(self, path: str, body: JSON) -> JSON:
        self.replaced.append(path)
        out: dict[str, Any] = {**body, "metadata": {**body["metadata"], "resourceVersion": self.rv,
                                                     "managedFields": [{"manager": "x"}]}}
        return out


def _experiment(rv: str, phase: str) -> JSON:
    return {"apiVersion": "rollouts.dev/v1alpha1", "kind": "Experiment",
            "metadata": {"name": "e1", "namespace": "ns", "uid": "u1", "resourceVersion": rv},
            "spec": {}, "status": {"phase": phase}}


def _reconciler(kube: _Kube, store: Informer) -> ExperimentReconciler:
    k = cast(Kube, kube)
    return ExperimentReconciler(k, store, Informer(k, EXPERIMENTS), Informer(k, EXPERIMENTS),
                                EventRecorder(k))


def test_status_write_never_puts_an_older_version_in_the_store() -> None:
    kube = _Kube(rv="5")
    experiments = Informer(cast(Kube, kube), EXPERIMENTS)
    read = _experiment("4", "Pending")
    experiments.store["ns/e1"] = _experiment("7", "Running")  # delivered by the watch meanwhile
    ok = asyncio.run(_reconciler(kube, experiments)._write_status(
        read, ExperimentStatus(phase="Running")))
    assert ok and kube.replaced == [EXPERIMENTS.path("ns", "e1", "status")]
    assert experiments.store["ns/e1"]["metadata"]["resourceVersion"] == "7"


def test_status_write_is_read_at_once_without_managed_fields() -> None:
    kube = _Kube(rv="5")
    experiments = Informer(cast(Kube, kube), EXPERIMENTS)
    read = _experiment("4", "Pending")
    experiments.store["ns/e1"] = read
    asyncio.run(_reconciler(kube, experiments)._write_status(read, ExperimentStatus(phase="Running")))
    stored = experiments.store["ns/e1"]
    assert stored["metadata"]["resourceVersion"] == "5" and stored["status"]["phase"] == "Running"
    assert "managedFields" not in stored["metadata"]

"""Server-side apply of manifests for the kinds this project ships and uses."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from rollouts.api.constants import GROUP, VERSION
from rollouts.kube.client import JSON, Kube, Resource

KINDS: dict[str, Resource] = {
    "Namespace": Resource("", "v1", "namespaces", namespaced=False),
    "ServiceAccount": Resource("", "v1", "serviceaccounts"),
    "Service": Resource("", "v1", "services"),
    "ConfigMap": Resource("", "v1", "configmaps"),
    "Secret": Resource("", "v1", "secrets"),
    "Deployment": Resource("apps", "v1", "deployments"),
    "ClusterRole": Resource("rbac.authorization.k8s.io", "v1", "clusterroles", namespaced=False),
    "ClusterRoleBinding": Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings",
                                   namespaced=False),
    "Role": Resource("rbac.authorization.k8s.io", "v1", "roles"),
    "RoleBinding": Resource("rbac.authorization.k8s.io", "v1", "rolebindings"),
    "CustomResourceDefinition": Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                                         namespaced=False),
    "Rollout": Resource(GROUP, VERSION, "rollouts"),
    "AnalysisTemplate": Resource(GROUP, VERSION, "analysistemplates"),
    "ClusterAnalysisTemplate": Resource(GROUP, VERSION, "clusteranalysistemplates", namespaced=False),
    "AnalysisRun": Resource(GROUP, VERSION, "analysisruns"),
    "Experiment": Resource(GROUP, VERSION, "experiments"),
    "VirtualService": Resource("networking.istio.io", "v1", "virtualservices"),
    "DestinationRule": Resource("networking.istio.io", "v1", "destinationrules"),
    "Ingress": Resource("networking.k8s.io", "v1", "ingresses"),
    "HTTPRoute": Resource("gateway.networking.k8s.io", "v1", "httproutes"),
    "GRPCRoute": Resource("gateway.networking.k8s.io", "v1", "grpcroutes"),
    "TCPRoute": Resource("gateway.networking.k8s.io", "v1", "tcproutes"),
    "TrafficSplit": Resource("split.smi-spec.io", "v1alpha1", "trafficsplits"),
}


def resource_for(obj: JSON) -> Resource:
    kind = obj.get("kind")
    if kind not in KINDS:
        raise ValueError(f"don't know how to apply kind {kind!r}")
    res = KINDS[str(kind)]
    api_version = str(obj.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    return Resource(group, version or res.version, res.plural, res.namespaced)


async def apply(kube: Kube, obj: JSON, namespace: str | None = None,
                field_manager: str = "rollouts-apply") -> Any:
    res = resource_for(obj)
    md = obj.setdefault("metadata", {})
    ns = None
    if res.namespaced:
        ns = md.get("namespace") or namespace or "default"
        md["namespace"] = ns
    path = res.path(ns, md["name"])
    return await kube.request("PATCH", path, body=obj,
                              query={"fieldManager": field_manager, "force": "true"},
                              content_type="application/apply-patch+yaml")


async def apply_files(kube: Kube, paths: list[Path], skip_kinds: tuple[str, ...] = ()) -> list[JSON]:
    """Apply every document of the YAML files (like ``kubectl apply -f``); the applied objects."""
    applied = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") not in skip_kinds:
                applied.append(await apply(kube, doc))
    return applied


async def wait_established(kube: Kube, crds: list[JSON], timeout: float = 30) -> None:
    """Wait until the API server serves these CustomResourceDefinitions."""
    deadline = asyncio.get_running_loop().time() + timeout
    for crd in (c for c in crds if c.get("kind") == "CustomResourceDefinition"):
        path = resource_for(crd).path(None, crd["metadata"]["name"])
        while True:
            conds = ((await kube.get(path)).get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                break
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"CRD {crd['metadata']['name']} not Established in {timeout:.0f}s")
            await asyncio.sleep(0.1)

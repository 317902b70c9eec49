"""Building AnalysisRuns from a Rollout's ``analysis`` blocks and (Cluster)AnalysisTemplates.

Argo's rules: the run's metrics are the templates' metrics in order; its args are the
templates' declared args, with values given by the Rollout (``value``, or ``valueFrom``
``podTemplateHashValue: Stable|Latest`` or ``fieldRef``) taking precedence.
"""

from __future__ import annotations

import re
from typing import Any

from rollouts.api.constants import API_VERSION, GROUP, INSTANCE_ID_LABEL, POD_TEMPLATE_HASH_LABEL, VERSION
from rollouts.kube.cache import Reader
from rollouts.kube.client import JSON, Resource

TEMPLATES = Resource(GROUP, VERSION, "analysistemplates")
CLUSTER_TEMPLATES = Resource(GROUP, VERSION, "clusteranalysistemplates", namespaced=False)
ROLLOUT_LABEL = f"{GROUP}/rollout"


class AnalysisSpecError(Exception):
    pass


def template_refs(analysis: Any) -> list[tuple[str, bool]]:
    if not isinstance(analysis, dict):
        raise AnalysisSpecError("analysis must be an object with templates")
    refs = analysis.get("templates")
    if not isinstance(refs, list) or not refs:
        raise AnalysisSpecError("analysis.templates must list at least one template")
    out = []
    for t in refs:
        if not isinstance(t, dict) or not isinstance(t.get("templateName"), str):
            raise AnalysisSpecError("each analysis.templates entry needs templateName")
        out.append((t["templateName"], t.get("clusterScope") is True))
    return out


async def load_templates(kube: Reader, ns: str, analysis: Any) -> list[JSON]:
    out = []
    for name, cluster in template_refs(analysis):
        path = CLUSTER_TEMPLATES.path(None, name) if cluster else TEMPLATES.path(ns, name)
        obj = await kube.get_or_none(path)
        if obj is None:
            kind = "ClusterAnalysisTemplate" if cluster else "AnalysisTemplate"
            raise AnalysisSpecError(f"{kind} {name} not found")
        out.append(obj)
    return out


def _field(obj: Any, path: str) -> Any:
    cur = obj
    for part in re.findall(r"[^.\[\]']+", path):
        if not isinstance(cur, dict) or part not in cur:
            raise AnalysisSpecError(f"fieldRef {path!r} not found on the Rollout")
        cur = cur[part]
    return cur


def resolve_rollout_args(analysis: dict[str, Any], rollout: JSON, stable_hash: str,
                         canary_hash: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for a in analysis.get("args") or []:
        if not isinstance(a, dict) or not isinstance(a.get("name"), str):
            raise AnalysisSpecError("each analysis arg needs a name")
        vf = a.get("valueFrom")
        if a.get("value") is not None:
            out[a["name"]] = {"name": a["name"], "value": str(a["value"])}
        elif isinstance(vf, dict) and vf.get("podTemplateHashValue") in ("Stable", "Latest"):
            h = stable_hash if vf["podTemplateHashValue"] == "Stable" else canary_hash
            out[a["name"]] = {"name": a["name"], "value": h}
        elif isinstance(vf, dict) and isinstance(vf.get("fieldRef"), dict):
            out[a["name"]] = {"name": a["name"],
                              "value": str(_field(rollout, str(vf["fieldRef"].get("fieldPath"))))}
        else:
            raise AnalysisSpecError(f"analysis arg {a['name']} needs value or valueFrom")
    return out


def build_run(rollout: JSON, templates: list[JSON], analysis: dict[str, Any], name: str, kind: str,
              step_index: int | None, stable_hash: str, canary_hash: str) -> JSON:
    md = rollout["metadata"]
    metrics: list[JSON] = []
    args: dict[str, dict[str, Any]] = {}
    dry: list[JSON] = []
    retention: list[JSON] = []
    for t in templates:
        spec = t.get("spec") or {}
        metrics += spec.get("metrics") or []
        for a in spec.get("args") or []:
            if isinstance(a, dict) and isinstance(a.get("name"), str):
                vf = a.get("valueFrom")
                ref = vf.get("fieldRef") if isinstance(vf, dict) else None
                if isinstance(ref, dict):  # resolved against the Rollout, like the Rollout's own args
                    a = {"name": a["name"], "value": str(_field(rollout, str(ref.get("fieldPath"))))}
                args.setdefault(a["name"], a)
        dry += spec.get("dryRun") or []
        retention += spec.get("measurementRetention") or []
    args.update(resolve_rollout_args(analysis, rollout, stable_hash, canary_hash))
    run_spec: JSON = {"metrics": metrics, "args": list(args.values())}
    if dry:
        run_spec["dryRun"] = dry
    if retention:
        run_spec["measurementRetention"] = retention
    labels = {ROLLOUT_LABEL: md["name"], POD_TEMPLATE_HASH_LABEL: canary_hash,
              f"{GROUP}/analysis": kind}
    instance = (md.get("labels") or {}).get(INSTANCE_ID_LABEL)
    if instance:  # the run belongs to the controller instance the Rollout names
        labels[INSTANCE_ID_LABEL] = instance
    if step_index is not None:
        labels[f"{GROUP}/step"] = str(step_index)
    return {
        "apiVersion": API_VERSION, "kind": "AnalysisRun",
        "metadata": {
            "name": name, "namespace": md["namespace"], "labels": labels,
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": "Rollout", "name": md["name"],
                                 "uid": md["uid"], "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": run_spec,
    }

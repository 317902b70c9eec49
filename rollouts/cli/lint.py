"""`rollouts lint`: offline checks of Rollout and analysis manifests, with line numbers.

Pure apart from reading the CRDs shipped with the package: no cluster needed, so it runs
in pre-commit hooks and CI. Each object is checked twice: as the API server validates it
(the CRD's schema and its CEL rules, ``source`` "api-server": "lint clean" means "the server
accepts it") and as the controller reads it (``parse_spec``, what it would report as
InvalidSpec, or the analysis checks it makes when a run starts; ``source`` "controller").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path as FsPath
from typing import Any

import yaml

from rollouts.cli.schema import Path, check, parse_path, path_text

GROUP = "rollouts.dev"
ANALYSIS_KINDS = ("AnalysisTemplate", "ClusterAnalysisTemplate", "AnalysisRun")
SPEC_PATH_RE = re.compile(r"\bspec(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*")
# metadata.name of a custom resource: a DNS subdomain, as the API server checks it
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SERVER, CONTROLLER = "api-server", "controller"  # who refuses it


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    severity: str  # "error" or "warning"
    message: str
    kind: str = ""
    name: str = ""
    source: str = ""  # SERVER, CONTROLLER or "" (the file itself)

    def __str__(self) -> str:
        what = f" {self.kind}/{self.name}:" if self.kind else ""
        return f"{self.file}:{self.line}: {self.severity}:{what} {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "severity": self.severity,
                "kind": self.kind, "name": self.name, "message": self.message,
                "source": self.source}


def crd_dirs() -> list[FsPath]:
    here = FsPath(__file__).resolve()
    # installed wheel: rollouts/_crds; source tree: <repo>/crds
    return [p for p in (here.parents[1] / "_crds", here.parents[2] / "crds") if p.is_dir()]


@cache
def _crd_versions() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the CRD's version entry, from every CRD shipped."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for d in crd_dirs():
        for f in sorted(d.glob("*.yaml")):
            for doc in yaml.safe_load_all(f.read_text()):
                if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc.get("spec") or {}
                for v in spec.get("versions") or []:
                    key = (f"{spec.get('group')}/{v.get('name')}",
                           str((spec.get("names") or {}).get("kind")))
                    if (v.get("schema") or {}).get("openAPIV3Schema") and key not in out:
                        out[key] = v
    return out


def schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema, from every CRD shipped."""
    return {k: v["schema"]["openAPIV3Schema"] for k, v in _crd_versions().items()}


def _subresource_findings(doc: dict[str, Any], subresources: dict[str, Any]
                          ) -> tuple[dict[str, Any], list[tuple[Path, str]]]:
    """What the status and scale subresources change: a create ignores status, and the
    replicas the scale subresource reads must fit an int32."""
    if "status" in subresources:
        doc = {k: v for k, v in doc.items() if k != "status"}
    errs: list[tuple[Path, str]] = []
    scale = subresources.get("scale")
    if isinstance(scale, dict) and isinstance(scale.get("specReplicasPath"), str):
        path = parse_path(scale["specReplicasPath"])
        cur: Any = doc
        for p in path:
            cur = cur.get(p) if isinstance(cur, dict) else None
        if isinstance(cur, int) and not isinstance(cur, bool) and not -2**31 <= cur < 2**31:
            errs.append((path, f"{path_text(path)}: must be at most 2147483647 (an int32), got {cur}"))
    return doc, errs


def line_of(node: yaml.Node | None, path: Path) -> int:
    """1-based line of the deepest node along ``path`` that exists in the document."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for p in path:
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(p, str):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == p:
                    nxt = v
                    line = k.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(p, int) and p < len(node.value):
            nxt = node.value[p]
            line = nxt.start_mark.line + 1
        if nxt is None:
            break
        node = nxt
    return line


def _analysis_checks(spec: Any) -> list[tuple[Path, str]]:
    """Semantic checks the schema cannot make: unique metric names, declared args."""
    if not isinstance(spec, dict):
        return []
    errs: list[tuple[Path, str]] = []
    seen: set[str] = set()
    raw = spec.get("metrics")
    metrics: list[Any] = raw if isinstance(raw, list) else []
    for i, m in enumerate(metrics):
        name = m.get("name") if isinstance(m, dict) else None
        if isinstance(name, str):
            if name in seen:
                errs.append((("spec", "metrics", i, "name"), f"duplicate metric name {name!r}"))
            seen.add(name)
    declared = {a.get("name") for a in spec.get("args") or [] if isinstance(a, dict)}
    for ref in sorted(set(re.findall(r"\{\{\s*args\.([A-Za-z0-9_-]+)\s*\}\}", yaml.safe_dump(metrics)))):
        if ref not in declared:
            errs.append((("spec", "args"), f"metrics use {{{{args.{ref}}}}} but spec.args does not "
                                           f"declare {ref!r}"))
    from rollouts.metrics.judge import validate_judge_spec
    from rollouts.metrics.providers import validate as validate_provider

    for i, m in enumerate(metrics):  # the judge's parameters, as its measurement checks them
        prov = m.get("provider") if isinstance(m, dict) else None
        if isinstance(prov, dict) and "judge" in prov:
            errs += [(("spec", "metrics", i, "provider", "judge"), msg)
                     for msg in validate_judge_spec(prov["judge"])]
        for kind, fields in (prov.items() if isinstance(prov, dict) else ()):  # Argo's fields
            errs += [(("spec", "metrics", i, "provider", kind), msg)
                     for msg in validate_provider(str(kind), fields)]
    return errs


NOTIFICATIONS_CONFIGMAP = "rollouts-notifications"


def _notification_findings(doc: dict[str, Any], node: yaml.Node | None, file: str,
                           name: str) -> list[Finding]:
    """The notifications ConfigMap (by its default name, or any with ``receiver.*`` keys) as
    the controller reads it: each receiver's fields, subscriptions, Alertmanager URLs."""
    raw = doc.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if name != NOTIFICATIONS_CONFIGMAP and not any(str(k).startswith("receiver.") for k in data):
        return []
    from rollouts.notify.config import parse_config

    out = []
    for e in parse_config({str(k): v for k, v in data.items() if isinstance(v, str)}).errors:
        key = e.split(":", 1)[0].split("[", 1)[0]  # "receiver.x: ..." / "subscriptions[0]: ..."
        out.append(Finding(file, line_of(node, ("data", key)), "error", e, "ConfigMap", name,
                           CONTROLLER))
    return out


def lint_document(doc: Any, node: yaml.Node | None, file: str) -> list[Finding]:
    if doc is None:
        return []
    if not isinstance(doc, dict):
        return [Finding(file, line_of(node, ()), "error", "a manifest must be a mapping")]
    kind, api = str(doc.get("kind") or ""), str(doc.get("apiVersion") or "")
    name = str((doc.get("metadata") or {}).get("name") or "") if isinstance(doc.get("metadata"),
                                                                           dict) else ""
    if kind == "ConfigMap" and api == "v1":
        return _notification_findings(doc, node, file, name)
    if kind not in ("Rollout", *ANALYSIS_KINDS):
        return []  # Services, VirtualServices...: not ours to check
    out: list[Finding] = []

    def err(path: Path, msg: str, source: str = SERVER) -> None:
        out.append(Finding(file, line_of(node, path), "error", msg, kind, name, source))

    if api.startswith("argoproj.io/"):
        err(("apiVersion",), f"apiVersion {api}: use {GROUP}/v1alpha1 (same fields, our API group)")
        return out
    version = _crd_versions().get((api, kind))
    if version is None:
        if api.split("/")[0] == GROUP:
            err(("apiVersion",), f"unknown apiVersion {api} for {kind}")
        elif kind == "Rollout":
            err(("apiVersion",), f"apiVersion {api}: expected {GROUP}/v1alpha1")
        return out  # another group's kind of the same name
    raw_md = doc.get("metadata")
    md: dict[str, Any] = raw_md if isinstance(raw_md, dict) else {}
    if not name and not md.get("generateName"):
        err(("metadata",), "metadata.name is required")
    elif name and (len(name) > 253 or not NAME_RE.match(name)):
        err(("metadata", "name"), f"metadata.name {name!r} must be a DNS subdomain: lower-case "
                                  "letters, digits, '-' and '.', starting and ending alphanumeric")
    schema_paths: list[Path] = []
    doc, scale_errs = _subresource_findings(doc, version.get("subresources") or {})
    for path, msg in [*scale_errs, *((p, f"{path_text(p)}: {m}")
                                     for p, m in check(doc, version["schema"]["openAPIV3Schema"]))]:
        err(path, msg)
        schema_paths.append(path)
    if kind == "Rollout":
        from rollouts.api.spec import parse_spec

        _spec, errors = parse_spec(doc.get("spec"))
        for e in errors:
            m = SPEC_PATH_RE.search(e)
            path = parse_path(m.group(0)) if m else ("spec",)
            # the server already said it, at this field or inside it
            if len(path) > 2 and any(p[:len(path)] == path for p in schema_paths):
                continue
            err(path, e, CONTROLLER)
    elif kind in ("AnalysisTemplate", "ClusterAnalysisTemplate"):
        for path, msg in _analysis_checks(doc.get("spec")):
            err(path, msg, CONTROLLER)
    return out


def lint_text(text: str, file: str) -> tuple[list[Finding], int]:
    """Findings of one file and how many of our objects it holds."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(e, "problem", None) or str(e)
        return [Finding(file, line, "error", f"invalid YAML: {problem}")], 0
    findings: list[Finding] = []
    ours = 0
    for doc, node in zip(docs, nodes, strict=False):
        if isinstance(doc, dict) and doc.get("kind") in ("Rollout", *ANALYSIS_KINDS):
            ours += 1
        findings += lint_document(doc, node, file)
    return sorted(findings, key=lambda f: f.line), ours

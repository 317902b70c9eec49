"""`rollouts lint` clean means the API server accepts it, and the reverse: for a corpus of
good and bad Rollouts and analysis templates, lint's verdict equals the server's on a
dry-run create (strict field validation, as kubectl applies). Argo fields we do not
implement pass the server unpruned and come back as an InvalidSpec naming them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import yaml

from rollouts.cli.lint import CONTROLLER, SERVER, lint_text
from rollouts.kube.apply import apply, resource_for
from rollouts.kube.client import JSON, Kube, KubeError
from tests.e2e.kit import ControllerProcess, eventually, get_rollout, services, virtual_service
from tests.e2e.lint_corpus import all_cases, rollout, schema_mutations


def _get(doc: Any, path: str) -> Any:
    """The value at a lint path like spec.strategy.canary.steps[3].experiment, or None."""
    cur = doc
    for part in path.replace("[", ".[").split("."):
        if part.startswith("["):
            i = int(part[1:-1])
            cur = cur[i] if isinstance(cur, list) and i < len(cur) else None
        else:
            cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


async def _server_verdict(kube: Kube, ns: str, doc: JSON) -> tuple[bool, str, JSON | None]:
    """(refused, the server's message, the object it would store)."""
    res = resource_for(doc)
    body = copy.deepcopy(doc)
    if res.namespaced:
        body.setdefault("metadata", {})["namespace"] = ns
    try:
        stored = await kube.create(res.path(ns if res.namespaced else None), body,
                                   dryRun="All", fieldValidation="Strict")
    except KubeError as e:
        assert e.status in (400, 422), f"not a validation answer: {e}"
        return True, e.message, None
    return False, "", stored


async def test_lint_verdict_equals_the_api_servers(rkube: Kube, namespace: str,
                                                   installed: None) -> None:
    cases = all_cases()
    divergent: list[str] = []
    pruned: list[str] = []
    for case in cases:
        findings, _ = lint_text(yaml.safe_dump(case.doc, sort_keys=False), f"{case.id}.yaml")
        lint_refuses = any(f.source == SERVER for f in findings)
        refused, message, stored = await _server_verdict(rkube, namespace, case.doc)
        if lint_refuses != refused or refused != case.refused:
            divergent.append(f"{case.id}: server {'refuses' if refused else 'accepts'} ({message}), "
                             f"lint {'refuses' if lint_refuses else 'accepts'} "
                             f"({[f.message for f in findings]})")
        if case.gap is not None and stored is not None:
            if _get(stored, case.gap) is None:
                pruned.append(f"{case.id}: the server dropped {case.gap}")
            if not any(f.source == CONTROLLER and f.message.startswith(case.gap) for f in findings):
                divergent.append(f"{case.id}: lint does not name {case.gap}")
    assert divergent == [], "\n".join(divergent)
    assert pruned == [], "\n".join(pruned)
    assert sum(c.refused for c in cases) >= 40 and sum(not c.refused for c in cases) >= 20


async def test_lint_agrees_with_the_server_on_every_field_mutated(
        rkube: Kube, namespace: str, installed: None) -> None:
    """Property: whatever one field of a good manifest is set to (wrong types, bounds,
    null, removed), lint refuses it exactly when the server does."""
    cases = schema_mutations()
    divergent: list[str] = []
    for case in cases:
        findings, _ = lint_text(yaml.safe_dump(case.doc, sort_keys=False), "m.yaml")
        lint_refuses = any(f.source == SERVER for f in findings)
        refused, message, _stored = await _server_verdict(rkube, namespace, case.doc)
        if lint_refuses != refused:
            divergent.append(f"{case.id}: server {'refuses' if refused else 'accepts'} "
                             f"({message[:300]}), lint {'refuses' if lint_refuses else 'accepts'} "
                             f"({[f.message for f in findings if f.source == SERVER][:3]})")
    assert len(cases) > 500
    assert divergent == [], f"{len(divergent)} of {len(cases)}:\n" + "\n".join(divergent)


async def test_an_unimplemented_argo_field_is_an_invalid_spec_naming_it(
        rkube: Kube, namespace: str, start_controller: Callable[..., ControllerProcess]) -> None:
    ns = namespace
    start_controller()
    for obj in [*services(), virtual_service()]:
        await apply(rkube, obj, ns)
    ro = rollout()
    ro["spec"]["strategy"]["canary"]["minPodsPerReplicaSet"] = 2
    ro["spec"]["strategy"]["canary"]["steps"].append({"plugin": {"name": "acme/step"}})
    await apply(rkube, ro, ns)

    async def invalid() -> JSON | None:
        st = (await get_rollout(rkube, ns)).get("status") or {}
        return next((c for c in st.get("conditions") or [] if c.get("type") == "InvalidSpec"
                     and c.get("status") == "True"), None)

    cond = await eventually(invalid, 30, "InvalidSpec condition")
    assert "spec.strategy.canary.minPodsPerReplicaSet is not supported" in cond["message"]
    assert "spec.strategy.canary.steps[3].plugin is not supported" in cond["message"]
    # nothing was created for it
    rss = await rkube.get_list(f"/apis/apps/v1/namespaces/{ns}/replicasets")
    assert rss["items"] == []

"""deploy/argocd/actions: Argo CD's resource actions for a Rollout (promote, promote-full,
abort, retry, restart), run in a real Lua as Argo CD runs them: the object as the global
``obj``, the script's return value the new object. Each action must record exactly what
`rollouts ACTION` records, and refuse exactly when the CLI refuses."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lupa import LuaError, LuaRuntime

from rollouts.api.actions import Action, check_action
from rollouts.api.spec import parse_spec
from rollouts.api.status import RolloutStatus

DIR = Path(__file__).resolve().parents[2] / "deploy" / "argocd"
SIGNALS = ("promote", "promote-full", "abort", "retry")


def to_lua(lua: LuaRuntime, v: Any) -> Any:
    if isinstance(v, dict):
        return lua.table_from({k: to_lua(lua, x) for k, x in v.items()})
    if isinstance(v, list):
        return lua.table_from([to_lua(lua, x) for x in v])
    return v


def from_lua(v: Any) -> Any:
    if type(v).__name__ == "_LuaTable":
        d = dict(v.items())
        if d and all(isinstance(k, int) for k in d):
            return [from_lua(d[k]) for k in sorted(d)]
        return {k: from_lua(x) for k, x in d.items()}
    return v


def run(script: str, obj: dict[str, Any]) -> Any:
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = to_lua(lua, obj)
    return from_lua(lua.execute(script))


def script(action: str) -> str:
    return (DIR / "actions" / action / "action.lua").read_text()


def rollout(**status: Any) -> dict[str, Any]:
    return {"apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "demo", "namespace": "shop", "generation": 2},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "demo"}},
                     "template": {"metadata": {"labels": {"app": "demo"}},
                                  "spec": {"containers": [{"name": "app", "image": "demo:2"}]}},
                     "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}},
            "status": {"observedGeneration": 2, **status}}


CANARY: dict[str, Any] = {"phase": "Paused", "stableRS": "aaa", "currentPodHash": "bbb",
                          "currentStepIndex": 1}
STATES: dict[str, dict[str, Any]] = {
    "healthy": {"phase": "Healthy", "stableRS": "aaa", "currentPodHash": "aaa"},
    "canary": CANARY,
    "aborted": {**CANARY, "phase": "Degraded", "abort": True},
    "pending": {**CANARY, "pendingAction": {"action": "pause", "id": "x", "user": "bob",
                                            "requestedAt": "2024-05-01T12:00:00Z"}},
    "new": {},
}


def cli_verdict(action: str, status: dict[str, Any]) -> str | None:
    """What the CLI's own rule (check_action) says of this action on this status."""
    obj = rollout(**status)
    spec, _ = parse_spec(obj["spec"])
    act = Action("promote" if action.startswith("promote") else action, "argocd",
                 "2024-05-01T12:00:00Z", action == "promote-full", "id1",
                 status.get("currentPodHash", ""))
    return check_action(spec, RolloutStatus.from_dict(obj["status"]), act)


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", SIGNALS)
def test_actions_refuse_exactly_when_the_cli_refuses(action: str, state: str) -> None:
    status = STATES[state]
    why = cli_verdict(action, status)
    discovered = run((DIR / "actions" / "discovery.lua").read_text(), rollout(**status))
    if why is None:
        out = run(script(action), rollout(**status))
        assert discovered[action]["disabled"] is False
        pending = out["status"]["pendingAction"]
        # the record the controller reads: the same parser and rules as for the CLI's
        act = Action.from_dict(pending)
        assert act is not None and act.user == "argocd" and act.id
        assert act.action == ("promote" if action.startswith("promote") else action)
        assert act.full is (action == "promote-full")
        assert act.pod_hash == status["currentPodHash"]
        assert check_action(parse_spec(out["spec"])[0], RolloutStatus.from_dict(out["status"]),
                            act) is None
        t = datetime.fromisoformat(pending["requestedAt"].replace("Z", "+00:00"))
        assert abs(datetime.now(UTC) - t) < timedelta(minutes=1)
        # nothing else of the status changes
        assert {k: v for k, v in out["status"].items() if k != "pendingAction"} == \
            {"observedGeneration": 2, **status}
    else:
        assert discovered[action]["disabled"] is True, (action, state, why)
        with pytest.raises(LuaError) as e:
            run(script(action), rollout(**status))
        assert str(e.value).strip(), "a refusal says why"


def test_refusals_say_why() -> None:
    with pytest.raises(LuaError, match="no update is in progress"):
        run(script("promote"), rollout(**STATES["healthy"]))
    with pytest.raises(LuaError, match="retry it first, or promote-full"):
        run(script("promote"), rollout(**STATES["aborted"]))
    with pytest.raises(LuaError, match=r"another action \(pause\) is pending"):
        run(script("abort"), rollout(**STATES["pending"]))
    with pytest.raises(LuaError, match="only to an aborted rollout"):
        run(script("retry"), rollout(**CANARY))


def test_restart_sets_restart_at_now_and_is_always_offered() -> None:
    out = run(script("restart"), rollout(**STATES["healthy"]))
    t = datetime.fromisoformat(out["spec"]["restartAt"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - t) < timedelta(minutes=1)
    assert out["status"] == {"observedGeneration": 2, **STATES["healthy"]}
    for status in STATES.values():
        assert run((DIR / "actions" / "discovery.lua").read_text(),
                   rollout(**status))["restart"]["disabled"] is False


def test_the_shared_part_of_the_signal_actions_is_identical() -> None:
    heads = {a: script(a).rsplit("return request(", 1)[0] for a in SIGNALS}
    assert len(set(heads.values())) == 1


def test_the_argocd_cm_patch_is_generated_from_these_scripts() -> None:
    spec = importlib.util.spec_from_file_location("render_cm", DIR / "render_cm.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (DIR / "argocd-cm-patch.yaml").read_text() == mod.render(), \
        "run: python deploy/argocd/render_cm.py"

"""deploy/argocd/health.lua maps a Rollout's status to Argo CD's health, run in a real Lua."""

from pathlib import Path
from typing import Any

import pytest
from lupa import LuaRuntime

LUA = (Path(__file__).resolve().parents[2] / "deploy" / "argocd" / "health.lua").read_text()


def health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)

    def table(v: Any) -> Any:
        if isinstance(v, dict):
            return lua.table_from({k: table(x) for k, x in v.items()})
        if isinstance(v, list):
            return lua.table_from([table(x) for x in v])
        return v

    lua.globals().obj = table(obj)
    hs = lua.execute(LUA)
    return hs["status"], hs["message"]


def ro(status: dict[str, Any] | None, generation: int = 2) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"generation": generation}}
    if status is not None:
        obj["status"] = status
    return obj


@pytest.mark.parametrize("status, expected", [
    (None, "Progressing"),
    ({"observedGeneration": 1, "phase": "Healthy"}, "Progressing"),  # not the latest spec yet
    ({"observedGeneration": 2, "phase": "Healthy"}, "Healthy"),
    ({"observedGeneration": 2, "phase": "Paused", "message": "paused at step 3/5"}, "Suspended"),
    ({"observedGeneration": 2, "phase": "Progressing"}, "Progressing"),
    ({"observedGeneration": 2, "phase": "Degraded", "message": "RolloutAborted: x"}, "Degraded"),
    ({"observedGeneration": 2, "phase": "Healthy",
      "conditions": [{"type": "InvalidSpec", "status": "True", "message": "Service x not found"}]},
     "Degraded"),
])
def test_health(status: dict[str, Any] | None, expected: str) -> None:
    assert health(ro(status))[0] == expected


def test_message_carries_the_explanation() -> None:
    st = {"observedGeneration": 2, "phase": "Degraded",
          "message": "RolloutAborted: canary error rate is 1.6–2.9 x stable"}
    assert health(ro(st)) == ("Degraded", st["message"])

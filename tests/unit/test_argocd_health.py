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


BG = {"observedGeneration": 2, "currentPodHash": "v2", "stableRS": "v1"}


@pytest.mark.parametrize("status, expected", [
    # what the controller writes at each stage of a blue-green update (issue 13)
    ({**BG, "phase": "Progressing", "message": "waiting for the new revision v2: 1/3 pods available",
      "blueGreen": {"activeSelector": "v1", "previewSelector": "v2"}}, "Progressing"),
    ({**BG, "phase": "Paused", "message": "preview v2 ready: waiting for promote",
      "pauseConditions": [{"reason": "BlueGreenPause", "startTime": "2024-05-01T12:00:00Z"}],
      "blueGreen": {"activeSelector": "v1", "previewSelector": "v2"}}, "Suspended"),
    ({**BG, "phase": "Progressing", "message": "postPromotion analysis x running",
      "blueGreen": {"activeSelector": "v2", "previewSelector": "v2"}}, "Progressing"),
    ({**BG, "phase": "Degraded", "message": "RolloutAborted: prePromotion analysis x failed",
      "abort": True, "blueGreen": {"activeSelector": "v1", "previewSelector": "v2"}}, "Degraded"),
    ({**BG, "stableRS": "v2", "phase": "Healthy",
      "blueGreen": {"activeSelector": "v2", "previewSelector": "v2"}}, "Healthy"),
    # a Healthy phase while the active Service still selects another revision is not healthy
    ({**BG, "stableRS": "v2", "phase": "Healthy",
      "blueGreen": {"activeSelector": "v1", "previewSelector": "v2"}}, "Progressing"),
])
def test_blue_green_health(status: dict[str, Any], expected: str) -> None:
    assert health(ro(status))[0] == expected

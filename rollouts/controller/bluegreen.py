"""The blue-green strategy (being built: until then a blue-green Rollout is reported, not run)."""

from __future__ import annotations

from datetime import datetime

from rollouts.api.constants import Cond, Phase, Reason
from rollouts.api.spec import RolloutSpec
from rollouts.controller.decision import Decision, Observations


def decide_blue_green(d: Decision, spec: RolloutSpec, obs: Observations, now: datetime) -> None:
    st = d.status
    msg = "spec.strategy.blueGreen is not implemented by this controller yet"
    st.set_condition(Cond.INVALID_SPEC, True, Reason.INVALID_SPEC, msg, now)
    st.phase = Phase.DEGRADED
    st.message = f"InvalidSpec: {msg}"

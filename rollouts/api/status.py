"""The Rollout status: all progress lives here so a restarted controller resumes from it.

Parsing is tolerant: a status edited by hand into nonsense is read as far as it makes
sense and never crashes the controller. Unknown keys are kept and written back.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def fmt_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(v: Any) -> datetime | None:
    if not isinstance(v, str):
        return None
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _int_or_none(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _dict_or_none(v: Any) -> dict[str, Any] | None:
    return v if isinstance(v, dict) else None


def _str_or_empty(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _weight(v: Any) -> int:
    """A stored canary weight, clamped to 0..100 (a hand-edited 150 must not scale to 150 %)."""
    w = _int_or_none(v)
    return 0 if w is None else min(max(w, 0), 100)


# Keys this module owns; everything else in status is carried through untouched.
_KNOWN = {
    "observedGeneration", "phase", "message", "currentPodHash", "stableRS", "currentStepIndex",
    "currentStepHash", "pauseConditions", "controllerPause", "abort", "abortedAt", "abortedBy",
    "abortReason", "promoteFull", "canary", "conditions", "replicas", "updatedReplicas",
    "readyReplicas", "availableReplicas", "selector", "pendingAction", "lastAction",
    "scaleDownAt", "progressAt", "userPause", "restartedAt", "draining", "analysis",
    "trafficRouting", "blueGreen",
}


def _run_status(v: Any) -> dict[str, str] | None:
    """Argo's RolloutAnalysisRunStatus ``{name, status, message}``; None unless it names a run."""
    if not isinstance(v, dict) or not isinstance(v.get("name"), str) or not v["name"]:
        return None
    out = {"name": v["name"], "status": _str_or_empty(v.get("status"))}
    if _str_or_empty(v.get("message")):
        out["message"] = v["message"]
    return out


@dataclass
class BlueGreenStatus:
    """Argo's ``status.blueGreen``: the revisions the active and preview Services select (as
    written by the controller), whether a preview scaled to previewReplicaCount may grow to
    spec.replicas, and the current pre/post-promotion AnalysisRuns."""

    active_selector: str | None = None
    preview_selector: str | None = None
    scale_up_preview_check_point: bool = False
    pre_promotion_run: dict[str, str] | None = None
    post_promotion_run: dict[str, str] | None = None

    @staticmethod
    def from_dict(raw: Any) -> BlueGreenStatus:
        d: dict[str, Any] = raw if isinstance(raw, dict) else {}
        return BlueGreenStatus(
            active_selector=_str_or_none(d.get("activeSelector")),
            preview_selector=_str_or_none(d.get("previewSelector")),
            scale_up_preview_check_point=d.get("scaleUpPreviewCheckPoint") is True,
            pre_promotion_run=_run_status(d.get("prePromotionAnalysisRunStatus")),
            post_promotion_run=_run_status(d.get("postPromotionAnalysisRunStatus")),
        )

    def to_dict(self) -> dict[str, Any]:
        out = {
            "activeSelector": self.active_selector,
            "previewSelector": self.preview_selector,
            "scaleUpPreviewCheckPoint": self.scale_up_preview_check_point or None,
            "prePromotionAnalysisRunStatus": copy.deepcopy(self.pre_promotion_run),
            "postPromotionAnalysisRunStatus": copy.deepcopy(self.post_promotion_run),
        }
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class RunRecord:
    """The last phase seen of a current AnalysisRun (Events fire when it changes)."""

    name: str
    phase: str = ""
    message: str = ""


@dataclass
class AnalysisProgress:
    """``status.analysis``: the attempt counter (a restart of the steps, a retry or a new
    revision starts a new attempt: new run names, so an old verdict is never reused), the
    current run of each kind (step, background, prePromotion, postPromotion) and how often
    each kind's run was replaced after an inconclusive verdict."""

    attempt: int = 0
    runs: dict[str, RunRecord] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    # keys written by others (a run summary: phase, metrics...), carried through untouched
    other: dict[str, Any] = field(default_factory=dict)

    def new_attempt(self) -> None:
        self.attempt += 1
        self.runs.clear()
        self.restarts.clear()

    def replace_run(self, kind: str) -> None:
        """The run of ``kind`` is replaced by a new one (``<kind>1``, ``<kind>2``...)."""
        self.restarts[kind] = self.restarts.get(kind, 0) + 1
        self.runs.pop(kind, None)

    @staticmethod
    def from_dict(raw: Any) -> AnalysisProgress:
        d: dict[str, Any] = raw if isinstance(raw, dict) else {}
        runs = {k: RunRecord(_str_or_empty(v.get("name")), _str_or_empty(v.get("phase")),
                             _str_or_empty(v.get("message")))
                for k, v in d.items() if isinstance(v, dict) and "name" in v}
        restarts = {k.removesuffix("Restarts"): v for k, v in d.items()
                    if k.endswith("Restarts") and _int_or_none(v) is not None}
        known = {"attempt", *runs, *(f"{k}Restarts" for k in restarts)}
        other = {k: copy.deepcopy(v) for k, v in d.items() if k not in known and v is not None}
        return AnalysisProgress(max(_int_or_none(d.get("attempt")) or 0, 0), runs, restarts, other)

    def to_dict(self) -> dict[str, Any] | None:
        out: dict[str, Any] = copy.deepcopy(self.other)
        if self.attempt:
            out["attempt"] = self.attempt
        for k, r in self.runs.items():
            out[k] = {"name": r.name, "phase": r.phase, "message": r.message}
        for k, n in self.restarts.items():
            if n:
                out[f"{k}Restarts"] = n
        return out or None


@dataclass
class RolloutStatus:
    observed_generation: int | None = None
    phase: str | None = None
    message: str = ""
    current_pod_hash: str | None = None
    stable_rs: str | None = None
    current_step_index: int | None = None
    current_step_hash: str | None = None
    pause_conditions: list[dict[str, Any]] = field(default_factory=list)
    controller_pause: bool = False
    abort: bool = False
    aborted_at: str | None = None
    aborted_by: str | None = None
    abort_reason: str | None = None
    promote_full: bool = False
    canary_weight: int = 0
    conditions: list[dict[str, Any]] = field(default_factory=list)
    replicas: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    selector: str = ""
    pending_action: dict[str, Any] | None = None
    last_action: dict[str, Any] | None = None
    scale_down_at: dict[str, str] = field(default_factory=dict)
    progress_at: str | None = None
    user_pause: dict[str, Any] | None = None
    restarted_at: str | None = None
    # The pods the canary Service/subset selects when that is not the current revision: a
    # superseded canary whose traffic is still draining back to the stable, or the stable
    # itself once an aborted canary carries no traffic (written as the canary weight's
    # podTemplateHash, so status names the pods that really get the canary share).
    canary_route_hash: str | None = None
    # Traffic is leaving the canary route after a restart of the steps (new template, new
    # steps, retry) as fast as the stable's available pods allow; the steps wait for it.
    draining: bool = False
    # what the weights block names, kept for the status readers (CLI, Argo-style tools)
    canary_service: str | None = None
    stable_service: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # keys under status.canary other than weights (e.g. written by the analysis layer)
    canary_extra: dict[str, Any] = field(default_factory=dict)
    # set for a blue-green rollout: status.blueGreen is written and status.canary.weights not
    blue_green: BlueGreenStatus | None = None
    analysis: AnalysisProgress = field(default_factory=AnalysisProgress)
    # the spec's trafficRouting the routers were last written for: when the spec's changes,
    # what the old routers wrote is taken back (a router removed from the spec must not keep
    # routing traffic that status no longer describes)
    traffic_routing: dict[str, Any] | None = None

    @staticmethod
    def from_dict(raw: Any) -> RolloutStatus:
        d: dict[str, Any] = raw if isinstance(raw, dict) else {}
        canary = _dict_or_none(d.get("canary")) or {}
        weights = canary.get("weights")
        weights = weights if isinstance(weights, dict) else {}
        cw = _dict_or_none(weights.get("canary")) or {}
        sw = _dict_or_none(weights.get("stable")) or {}
        pcs = d.get("pauseConditions")
        conds = d.get("conditions")
        sda = d.get("scaleDownAt")
        current = _str_or_none(d.get("currentPodHash"))
        route = _str_or_none(cw.get("podTemplateHash"))
        return RolloutStatus(
            observed_generation=_int_or_none(d.get("observedGeneration")),
            phase=_str_or_none(d.get("phase")),
            message=_str_or_empty(d.get("message")),
            current_pod_hash=current,
            stable_rs=_str_or_none(d.get("stableRS")),
            current_step_index=_int_or_none(d.get("currentStepIndex")),
            current_step_hash=_str_or_none(d.get("currentStepHash")),
            pause_conditions=[p for p in pcs if isinstance(p, dict)] if isinstance(pcs, list) else [],
            controller_pause=d.get("controllerPause") is True,
            abort=d.get("abort") is True,
            aborted_at=_str_or_none(d.get("abortedAt")),
            aborted_by=_str_or_none(d.get("abortedBy")),
            abort_reason=_str_or_none(d.get("abortReason")),
            promote_full=d.get("promoteFull") is True,
            canary_weight=_weight(cw.get("weight")),
            conditions=[c for c in conds if isinstance(c, dict)] if isinstance(conds, list) else [],
            replicas=_int_or_none(d.get("replicas")) or 0,
            updated_replicas=_int_or_none(d.get("updatedReplicas")) or 0,
            ready_replicas=_int_or_none(d.get("readyReplicas")) or 0,
            available_replicas=_int_or_none(d.get("availableReplicas")) or 0,
            selector=_str_or_empty(d.get("selector")),
            pending_action=_dict_or_none(d.get("pendingAction")),
            last_action=_dict_or_none(d.get("lastAction")),
            scale_down_at={str(k): v for k, v in sda.items() if isinstance(v, str)}
            if isinstance(sda, dict) else {},
            progress_at=_str_or_none(d.get("progressAt")),
            user_pause=_dict_or_none(d.get("userPause")),
            restarted_at=_str_or_none(d.get("restartedAt")),
            canary_route_hash=route if route != current else None,
            draining=d.get("draining") is True,
            canary_service=_str_or_none(cw.get("serviceName")),
            stable_service=_str_or_none(sw.get("serviceName")),
            extra={k: copy.deepcopy(v) for k, v in d.items() if k not in _KNOWN and v is not None},
            canary_extra={k: copy.deepcopy(v) for k, v in canary.items()
                          if k != "weights" and v is not None},
            blue_green=BlueGreenStatus.from_dict(d["blueGreen"])
            if isinstance(d.get("blueGreen"), dict) else None,
            analysis=AnalysisProgress.from_dict(d.get("analysis")),
            traffic_routing=copy.deepcopy(_dict_or_none(d.get("trafficRouting"))),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(copy.deepcopy(self.extra))
        out.update({
            "observedGeneration": self.observed_generation,
            "phase": self.phase,
            "message": self.message,
            "currentPodHash": self.current_pod_hash,
            "stableRS": self.stable_rs,
            "currentStepIndex": self.current_step_index,
            "currentStepHash": self.current_step_hash,
            "pauseConditions": self.pause_conditions or None,
            "controllerPause": self.controller_pause or None,
            "abort": self.abort or None,
            "abortedAt": self.aborted_at,
            "abortedBy": self.aborted_by,
            "abortReason": self.abort_reason,
            "promoteFull": self.promote_full or None,
            "canary": {**copy.deepcopy(self.canary_extra), "weights": {
                "canary": {"weight": self.canary_weight,
                           "podTemplateHash": self.canary_route_hash or self.current_pod_hash,
                           "serviceName": self.canary_service},
                "stable": {"weight": 100 - self.canary_weight, "podTemplateHash": self.stable_rs,
                           "serviceName": self.stable_service},
            }},
            "conditions": self.conditions or None,
            "replicas": self.replicas,
            "updatedReplicas": self.updated_replicas,
            "readyReplicas": self.ready_replicas,
            "availableReplicas": self.available_replicas,
            "selector": self.selector,
            "pendingAction": self.pending_action,
            "lastAction": self.last_action,
            "scaleDownAt": self.scale_down_at or None,
            "progressAt": self.progress_at,
            "userPause": self.user_pause,
            "restartedAt": self.restarted_at,
            "draining": self.draining or None,
            "analysis": self.analysis.to_dict(),
            "trafficRouting": copy.deepcopy(self.traffic_routing),
        })
        if self.blue_green is not None:
            # a blue-green rollout has no canary weights (Argo writes none either)
            out["blueGreen"] = self.blue_green.to_dict()
            if self.canary_extra:
                out["canary"] = copy.deepcopy(self.canary_extra)
            else:
                out.pop("canary")
        return {k: v for k, v in out.items() if v is not None}

    def copy(self) -> RolloutStatus:
        return copy.deepcopy(self)

    def condition(self, ctype: str) -> dict[str, Any] | None:
        return next((c for c in self.conditions if c.get("type") == ctype), None)

    def set_condition(self, ctype: str, status: bool, reason: str, message: str,
                      now: datetime) -> None:
        s = "True" if status else "False"
        cur = self.condition(ctype)
        if cur is not None and cur.get("status") == s and cur.get("reason") == reason \
                and cur.get("message") == message:
            return
        ts = fmt_time(now)
        new = {"type": ctype, "status": s, "reason": reason, "message": message,
               "lastUpdateTime": ts,
               "lastTransitionTime": cur.get("lastTransitionTime", ts)
               if cur is not None and cur.get("status") == s else ts}
        # replaced in place: a changed order alone must not look like a status change
        out: list[dict[str, Any]] = []
        placed = False
        for c in self.conditions:
            if c.get("type") != ctype:
                out.append(c)
            elif not placed:  # the first of (hand-made) duplicates is replaced, others dropped
                out.append(new)
                placed = True
        self.conditions = out if placed else [*out, new]

    def remove_condition(self, ctype: str) -> None:
        self.conditions = [c for c in self.conditions if c.get("type") != ctype]

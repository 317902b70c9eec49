"""Request and response bodies of the HTTP API (they make its OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool


class PromoteRequest(BaseModel):
    # strict: "yes", "on", 1 are not true; a promote --full must be meant
    model_config = ConfigDict(extra="forbid", strict=True)
    full: StrictBool = Field(False, description="skip all remaining steps (promote to stable at once)")


class Weights(BaseModel):
    canary: int
    stable: int


class Revisions(BaseModel):
    canary: str | None = None
    stable: str | None = None


class BlueGreenView(BaseModel):
    activeService: str | None = None
    previewService: str | None = None
    activeSelector: str | None = Field(None, description="the revision the active Service selects")
    previewSelector: str | None = Field(None, description="the revision the preview Service selects")
    scaleUpPreviewCheckPoint: bool = False


class Replicas(BaseModel):
    desired: int | None = None
    current: int = 0
    updated: int = 0
    ready: int = 0
    available: int = 0


class StepView(BaseModel):
    index: int
    kind: str = Field(description="setWeight, pause or analysis")
    description: str
    state: str = Field(description="done, current or pending")
    weight: int | None = None
    pauseSeconds: float | None = None


class Container(BaseModel):
    name: str
    image: str


class RolloutListItem(BaseModel):
    namespace: str
    name: str
    phase: str
    message: str
    currentStepIndex: int | None = None
    totalSteps: int
    weights: Weights
    replicas: Replicas
    upToDate: bool
    aborted: bool
    createdAt: str | None = None
    strategy: str = Field("canary", description="canary or blueGreen")


class RolloutList(BaseModel):
    items: list[RolloutListItem]


class RolloutView(RolloutListItem):
    generation: int | None = None
    observedGeneration: int | None = None
    pausedBy: str | None = None
    specPaused: bool
    steps: list[StepView]
    revisions: Revisions
    blueGreen: BlueGreenView | None = None
    containers: list[Container]
    analysis: dict[str, Any] | None = None
    pendingAction: dict[str, Any] | None = None
    lastAction: dict[str, Any] | None = None
    conditions: list[dict[str, Any]]
    specErrors: list[str]


class ActionAccepted(BaseModel):
    namespace: str
    name: str
    action: str
    id: str = Field(description="matches status.lastAction.id once the controller has applied it")
    user: str
    requestedAt: str
    full: bool = False
    podHash: str = Field("", description="the revision the action is bound to")
    message: str


class Problem(BaseModel):
    detail: str

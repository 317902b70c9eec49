"""Names users see on the cluster: the API group, labels, condition types and reasons."""

from typing import Final

GROUP: Final = "rollouts.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
ROLLOUT_PLURAL: Final = "rollouts"

# Label on our ReplicaSets, their pods and the Services/subsets we point at them.
POD_TEMPLATE_HASH_LABEL: Final = "rollouts-pod-template-hash"
REVISION_ANNOTATION: Final = f"{GROUP}/revision"
FIELD_MANAGER: Final = "rollouts-controller"
# Argo's controller-instance-id label: which controller (--instance-id) acts on the object
INSTANCE_ID_LABEL: Final = f"{GROUP}/controller-instance-id"

# Argo's defaults
DEFAULT_SCALE_DOWN_DELAY_S: Final = 30
DEFAULT_ABORT_SCALE_DOWN_DELAY_S: Final = 30
DEFAULT_PROGRESS_DEADLINE_S: Final = 600
DEFAULT_REVISION_HISTORY_LIMIT: Final = 10


class Phase:
    PROGRESSING: Final = "Progressing"
    PAUSED: Final = "Paused"
    HEALTHY: Final = "Healthy"
    DEGRADED: Final = "Degraded"


class Cond:
    PROGRESSING: Final = "Progressing"
    AVAILABLE: Final = "Available"
    PAUSED: Final = "Paused"
    INVALID_SPEC: Final = "InvalidSpec"
    COMPLETED: Final = "Completed"


class Reason:
    """CamelCase reasons for conditions and Events (Argo's names where they exist)."""

    NEW_RS: Final = "NewReplicaSetCreated"
    ROLLOUT_UPDATED: Final = "RolloutUpdated"
    STEP_COMPLETED: Final = "RolloutStepCompleted"
    WEIGHT_UPDATED: Final = "TrafficWeightUpdated"
    PAUSED: Final = "RolloutPaused"
    RESUMED: Final = "RolloutResumed"
    CANARY_PAUSE: Final = "CanaryPauseStep"
    PAUSED_BY_SPEC: Final = "PausedBySpec"
    COMPLETED: Final = "RolloutCompleted"
    HEALTHY: Final = "RolloutHealthy"
    ABORTED: Final = "RolloutAborted"
    RETRIED: Final = "RolloutRetried"
    PROMOTED: Final = "RolloutPromoted"
    PROMOTED_FULL: Final = "RolloutPromotedFull"
    INVALID_SPEC: Final = "InvalidSpec"
    PROGRESS_DEADLINE: Final = "ProgressDeadlineExceeded"
    ACTION_REJECTED: Final = "ActionRejected"
    SCALED_DOWN: Final = "ScaledDownReplicaSet"
    AVAILABLE: Final = "AvailableReason"
    NOT_AVAILABLE: Final = "NotAvailable"
    # Argo's pause reason and message for an inconclusive (step or background) analysis
    INCONCLUSIVE: Final = "InconclusiveAnalysisRun"
    # blue-green (Argo's names): the pause before the active Service switches, and the
    # Event written each time the controller moves a Service's selector
    BLUE_GREEN_PAUSE: Final = "BlueGreenPause"
    SWITCH_SERVICE: Final = "SwitchService"

"""The web dashboard the controller serves (``/dashboard/``): rollouts, their ReplicaSets,
pods, AnalysisRuns and the judge's evidence, with the actions RBAC allows."""

from rollouts.server.dashboard.routes import install_dashboard

__all__ = ["install_dashboard"]

"""The HTTP API for manual judgement, served by the controller process (FastAPI)."""

from rollouts.server.api import create_api

__all__ = ["create_api"]

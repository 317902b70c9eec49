"""Metric providers: where a measurement's value comes from (Argo's ``provider`` block).

One module per provider; ``registry`` maps each ``provider.<name>`` to it. Each turns a
resolved provider spec into a ``Reading`` (the value the conditions see as ``result``,
what was asked, kept in the measurement). A provider failure raises ``ProviderError``
with the upstream message: the measurement is then an Error, never a crash and never a
pass. Blocking work runs in threads or async clients with timeouts.
"""

from __future__ import annotations

from rollouts.metrics.providers import counters
from rollouts.metrics.providers.base import Context, ProviderError, Reading, decode_secret_data
from rollouts.metrics.providers.prometheus import prometheus, prometheus_query
from rollouts.metrics.providers.registry import REGISTRY, measure, validate
from rollouts.metrics.providers.web import json_path, web

__all__ = ["REGISTRY", "Context", "ProviderError", "Reading", "counters", "decode_secret_data", "json_path",
           "measure", "prometheus", "prometheus_query", "validate", "web"]

"""AnalysisRun objects as the reconcilers build and read them (pure): the spec merged
from AnalysisTemplates, and what an observed run says.

Used by the Experiment reconciler; ``analysis_builder.build_run`` (a Rollout's runs)
merges templates by the same rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

JSON = dict[str, Any]


def template_args(templates: Iterable[JSON]) -> dict[str, JSON]:
    """The args the templates declare, by name; the first template declaring one wins."""
    out: dict[str, JSON] = {}
    for t in templates:
        for a in (t.get("spec") or {}).get("args") or []:
            if isinstance(a, dict) and isinstance(a.get("name"), str):
                out.setdefault(a["name"], dict(a))
    return out


def run_spec(templates: Sequence[JSON], args: dict[str, JSON], *, dry_run: Sequence[JSON] = (),
             retention: Sequence[JSON] = ()) -> JSON:
    """An AnalysisRun's spec: every template's metrics in order, ``args``; ``dryRun`` and
    ``measurementRetention``: the given ones, then each template's (absent when empty)."""
    specs = [t.get("spec") or {} for t in templates]
    dry = [*dry_run, *(d for s in specs for d in s.get("dryRun") or [])]
    keep = [*retention, *(d for s in specs for d in s.get("measurementRetention") or [])]
    out: JSON = {"metrics": [m for s in specs for m in s.get("metrics") or []],
                 "args": list(args.values())}
    if dry:
        out["dryRun"] = dry
    if keep:
        out["measurementRetention"] = keep
    return out


class RunState(NamedTuple):
    name: str
    phase: str
    message: str
    terminated: bool  # spec.terminate: stopped by a controller or a user, not a verdict


def run_state(run: JSON, *, pending: str = "Pending") -> RunState:
    """What an observed AnalysisRun says (``pending`` until it has a phase)."""
    st = run.get("status") or {}
    return RunState(name=run["metadata"]["name"], phase=str(st.get("phase") or pending),
                    message=str(st.get("message") or ""),
                    terminated=(run.get("spec") or {}).get("terminate") is True)

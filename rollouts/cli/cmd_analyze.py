"""`rollouts analyze --replay`: what an analysis template would have decided in the past."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer


def _time(value: str) -> datetime:
    """RFC 3339 time, or an age like 30m / 2h / 1d meaning that long ago."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[:-1].isdigit() and value[-1] in units:
        return datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * units[value[-1]])
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def analyze(
    template: Path = typer.Argument(..., help="AnalysisTemplate YAML file (see --name)"),
    replay: bool = typer.Option(False, "--replay", help="evaluate over a past time range (required)"),
    start: str = typer.Option("1h", help="start: RFC 3339 time or an age like 30m, 2h"),
    end: str = typer.Option("0s", help="end: RFC 3339 time or an age (default now)"),
    arg: list[str] = typer.Option([], "--arg", help="NAME=VALUE for the template's args (repeatable)"),
    output: str = typer.Option("table", "-o", "--output", help="table or json"),
    name: str = typer.Option(None, "--name", help="template name, when the file holds several"),
    interval: str = typer.Option(None, help="measure this often instead of each metric's interval"),
) -> None:
    """Replay an analysis template over past Prometheus data and print each interval's verdict.

    Exit code 0 if the analysis would have succeeded (or was still running at the end),
    1 if it would have failed, errored or been inconclusive, 2 on bad input.
    """
    import yaml

    from rollouts.api.duration import parse_duration
    from rollouts.controller.analysisrun import TERMINAL
    from rollouts.replay import replay as run_replay

    if not replay:
        typer.echo("only --replay is supported: rollouts analyze --replay TEMPLATE ...", err=True)
        raise typer.Exit(2)
    try:
        docs = [d for d in yaml.safe_load_all(template.read_text()) if d]
        tmpl = next(d for d in docs if d.get("kind") in ("AnalysisTemplate", "ClusterAnalysisTemplate")
                    and (name is None or d["metadata"]["name"] == name))
        args = dict(a.split("=", 1) for a in arg)
        every = parse_duration(interval) if interval else None
        rows = list(asyncio.run(run_replay(tmpl, args, _time(start), _time(end), interval=every)))
    except (OSError, StopIteration, ValueError, yaml.YAMLError) as e:
        typer.echo(f"error: {e or 'no AnalysisTemplate in the file'}", err=True)
        raise typer.Exit(2) from e
    if output == "json":
        typer.echo(json.dumps([{**r.__dict__, "time": r.time.isoformat()} for r in rows], indent=2))
    else:
        for r in rows:
            typer.echo(f"{r.time:%Y-%m-%d %H:%M:%S}  {r.metric:<20} {r.phase:<12} -> {r.metric_phase:<12} "
                       f"{r.value[:40]:<40} {r.message}")
    finals = {r.metric: r.metric_phase for r in rows}
    bad = [m for m, p in finals.items() if p in TERMINAL and p != "Successful"]
    if bad:
        typer.echo(f"would have decided: {', '.join(f'{m} {finals[m]}' for m in bad)}", err=True)
        raise typer.Exit(1)
    typer.echo("would have decided: no failure in the range", err=True)

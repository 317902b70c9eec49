"""`get rollout --watch`: a live view on a terminal, change-by-change snapshots elsewhere."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime

from rollouts.cli.common import Output, dump, is_tty
from rollouts.cli.fetch import fetch_view
from rollouts.cli.render import to_text
from rollouts.cli.session import Session


async def watch_rollout(s: Session, name: str, output: Output, limit: float,
                        interval: float) -> None:
    deadline = time.monotonic() + limit if limit > 0 else None
    if output is Output.table and is_tty():
        await _live(s, name, deadline, interval)
        return
    last = ""
    while deadline is None or time.monotonic() < deadline:
        view = await fetch_view(s.kube, s.namespace, name)
        data = view.as_dict()
        key = json.dumps(data, sort_keys=True, default=str)
        if key != last:  # print only changes: a pipe or a CI log is not flooded
            last = key
            if output is Output.json:
                sys.stdout.write(json.dumps(data, default=str) + "\n")  # one document a line
            elif output is Output.yaml:
                sys.stdout.write("---\n" + dump(data, output))
            else:
                stamp = datetime.now(UTC).strftime("%H:%M:%SZ")
                sys.stdout.write(f"--- {name} at {stamp}\n"
                                 + to_text(view.renderable()))
            sys.stdout.flush()
        await asyncio.sleep(interval)


async def _live(s: Session, name: str, deadline: float | None, interval: float) -> None:
    from rich.live import Live

    view = await fetch_view(s.kube, s.namespace, name)
    with Live(view.renderable(), auto_refresh=False,
              screen=False) as live:
        while deadline is None or time.monotonic() < deadline:
            await asyncio.sleep(interval)
            view = await fetch_view(s.kube, s.namespace, name)
            live.update(view.renderable(), refresh=True)

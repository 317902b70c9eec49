"""Read commands: `list rollouts`, `get rollout [--watch]`, `status`."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Annotated

import typer

from rollouts.cli import exitcodes
from rollouts.cli.common import (
    FLAG,
    AllNamespacesOpt,
    ContextOpt,
    KubeconfigOpt,
    NamespaceOpt,
    Output,
    OutputOpt,
    RolloutNameArg,
    emit,
    is_tty,
    progress,
)

list_app = typer.Typer(help="List resources.", no_args_is_help=True)
get_app = typer.Typer(help="Show one resource in detail.", no_args_is_help=True)

NameArg = RolloutNameArg


def parse_timeout(value: str) -> float:
    from rollouts.api.duration import parse_duration

    try:
        return parse_duration(value.strip() if value.strip() else "0")
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e


@list_app.command("rollouts")
def list_rollouts(kubeconfig: KubeconfigOpt = None, context: ContextOpt = None,
                  namespace: NamespaceOpt = None, all_namespaces: AllNamespacesOpt = False,
                  output: OutputOpt = Output.table) -> None:
    """List rollouts with their phase, step and canary weight."""
    from rollouts.api.summary import list_row
    from rollouts.cli.session import Session, with_session
    from rollouts.kube.signals import ROLLOUTS

    async def body(s: Session) -> None:
        data = await s.kube.get_list(ROLLOUTS.path(None if all_namespaces else s.namespace))
        items = sorted(data.get("items") or [], key=lambda o: (o["metadata"].get("namespace", ""),
                                                                o["metadata"]["name"]))
        rows = [list_row(o) for o in items]
        if output is not Output.table:
            emit({"items": rows}, output)
        elif not rows:
            progress(f"No rollouts found{'' if all_namespaces else f' in namespace {s.namespace}'}.")
        else:
            from rich.console import Console

            from rollouts.cli.render import list_table

            Console(soft_wrap=not is_tty()).print(list_table(rows, all_namespaces))

    with_session(kubeconfig, context, namespace, body)


@get_app.command("rollout")
def get_rollout(name: NameArg, kubeconfig: KubeconfigOpt = None, context: ContextOpt = None,
                namespace: NamespaceOpt = None, output: OutputOpt = Output.table,
                watch: Annotated[bool, typer.Option("--watch", "-w", metavar=FLAG, help=(
                    "keep showing the rollout as it changes (live on a terminal; otherwise a "
                    "new snapshot each time it changes)"))] = False,
                timeout: Annotated[str, typer.Option(
                    metavar="DURATION",
                    help="with --watch: stop after this long, e.g. 30s, 5m (0: until Ctrl-C)")] = "0",
                interval: Annotated[float, typer.Option(hidden=True)] = 1.0) -> None:
    """Show a rollout: steps (current marked), weights, ReplicaSets, analysis, last events."""
    from rollouts.cli.fetch import fetch_view
    from rollouts.cli.session import Session, with_session

    limit = parse_timeout(timeout)

    async def once(s: Session) -> None:
        view = await fetch_view(s.kube, s.namespace, name)
        if output is not Output.table:
            emit(view.as_dict(), output)
            return
        from rich.console import Console

        console = Console()
        if is_tty():
            console.print(view.renderable())
        else:  # a pipe: plain text without the blanks rich pads table cells with
            from rollouts.cli.render import to_text

            sys.stdout.write(to_text(view.renderable(), width=console.width))

    async def watching(s: Session) -> None:
        from rollouts.cli.watch import watch_rollout

        await watch_rollout(s, name, output, limit, interval)

    with_session(kubeconfig, context, namespace, watching if watch else once)


def status(name: NameArg, kubeconfig: KubeconfigOpt = None, context: ContextOpt = None,
           namespace: NamespaceOpt = None,
           timeout: Annotated[str, typer.Option(
               metavar="DURATION",
               help="give up after this long: seconds or 30s, 5m, 1h (0: wait forever)")] = "0",
           interval: Annotated[float, typer.Option(hidden=True)] = 1.0) -> None:
    """Wait until the rollout is Healthy or Degraded.

    Exit codes: 0 Healthy, 1 Degraded, 3 timed out, 4 not found or API error.
    """
    from rollouts.api.summary import settled_phase, summarize
    from rollouts.cli.session import Session, with_session
    from rollouts.cli.timefmt import fmt_duration
    from rollouts.kube.signals import ROLLOUTS

    limit = parse_timeout(timeout)

    async def body(s: Session) -> int:
        deadline = time.monotonic() + limit if limit > 0 else None
        last = ""
        while True:
            obj = await s.kube.get(ROLLOUTS.path(s.namespace, name))
            settled = settled_phase(obj)
            sm = summarize(obj)
            line = (f"{sm['phase']}" + (f" - step {sm['currentStepIndex']}/{sm['totalSteps']}"
                                        if sm["currentStepIndex"] is not None else "")
                    + (f", active {sm['blueGreen'].get('activeSelector') or '-'}, preview "
                       f"{sm['blueGreen'].get('previewSelector') or '-'}" if sm.get("blueGreen")
                       else f", canary weight {sm['weights']['canary']}%")
                    + (f": {sm['message']}" if sm["message"] else ""))
            if settled is not None:
                print(line, flush=True)
                return exitcodes.status_exit(settled)
            if line != last:
                progress(line)
                last = line
            if deadline is not None and time.monotonic() >= deadline:
                progress(f"timed out after {fmt_duration(limit)} waiting for {name} to be Healthy "
                         "or Degraded")
                return exitcodes.TIMEOUT
            await asyncio.sleep(interval)

    raise typer.Exit(with_session(kubeconfig, context, namespace, body))

"""Manual judgement from the command line: promote, abort, retry, pause, resume.

The CLI records intent in status.pendingAction with the user's own credentials (the
same code as the HTTP API: ``rollouts.kube.signals.request_action``); the controller
applies it and answers in status.lastAction, which the command waits for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rollouts.cli import exitcodes
from rollouts.cli.common import (
    FLAG,
    ContextOpt,
    KubeconfigOpt,
    NamespaceOpt,
    Output,
    OutputOpt,
    RolloutNameArg,
    emit,
    fail,
    progress,
)

if TYPE_CHECKING:  # kubernetes_asyncio is imported only when a command runs
    from rollouts.cli.session import Session

NameArg = RolloutNameArg
WaitOpt = Annotated[bool, typer.Option(
    "--wait/--no-wait", metavar=FLAG,
    help="wait until the controller has applied (or rejected) the action")]
WaitTimeoutOpt = Annotated[str, typer.Option(
    "--wait-timeout", metavar="DURATION",
    help="how long to wait for the controller, e.g. 30s, 2m (exit 3 when exceeded)")]

PAST = {"promote": "promoted", "abort": "aborted", "retry": "retried", "pause": "paused",
        "resume": "resumed"}
HELP = {
    "promote": "End the current pause (or skip the current step, as Argo does); "
               "--full skips all remaining steps.",
    "abort": "Abort the canary: all traffic back to stable, canary scaled down.",
    "retry": "Restart the steps of an aborted rollout.",
    "pause": "Hold the rollout at its current step until `resume`.",
    "resume": "Lift a pause set with `pause` (a `pause` step ends with `promote`).",
}


async def wait_applied(s: Session, name: str, action_id: str, timeout: float) -> dict[str, Any] | None:
    from rollouts.kube.signals import ROLLOUTS

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = await s.kube.get(ROLLOUTS.path(s.namespace, name))
        last = (obj.get("status") or {}).get("lastAction") or {}
        if last.get("id") == action_id:
            return dict(last)
        await asyncio.sleep(0.5)
    return None


def run_action(action: str, name: str, kubeconfig: str | None, context: str | None,
               namespace: str | None, output: Output, wait: bool, wait_for: str,
               full: bool = False) -> None:
    from rollouts.cli.cmd_read import parse_timeout
    from rollouts.cli.session import with_session
    from rollouts.cli.timefmt import fmt_duration
    from rollouts.kube.signals import ActionRejected, request_action

    wait_timeout = parse_timeout(wait_for)

    async def body(s: Session) -> int:
        user = await s.username()
        try:
            act = await request_action(s.kube, s.namespace, name, action, user=user, full=full)
        except ActionRejected as e:
            raise fail(f"cannot {action} {s.namespace}/{name}: {e}", exitcodes.REJECTED) from e
        result: dict[str, Any] = {**act.to_dict(), "namespace": s.namespace, "name": name,
                                  "result": "Pending"}
        code = exitcodes.OK
        if wait:
            progress(f"{action} recorded as {user}; waiting for the controller...")
            applied = await wait_applied(s, name, act.id, wait_timeout)
            if applied is None:
                progress(f"the controller has not applied the {action} within "
                         f"{fmt_duration(wait_timeout)} "
                         "(it stays pending in status.pendingAction)")
                code = exitcodes.TIMEOUT
            else:
                result.update(applied)
                if applied.get("result") != "Applied":
                    progress(f"the controller rejected the {action}: {applied.get('message', '')}")
                    code = exitcodes.REJECTED
        if output is not Output.table:
            emit(result, output)
        elif code == exitcodes.OK:
            verb = PAST[action] + (" fully" if full else "")
            suffix = "" if wait else " (requested)"
            print(f"rollout {s.namespace}/{name} {verb}{suffix}", flush=True)
        return code

    raise typer.Exit(with_session(kubeconfig, context, namespace, body))


def _command(action: str) -> Callable[..., None]:
    if action == "promote":
        def promote(name: NameArg, kubeconfig: KubeconfigOpt = None, context: ContextOpt = None,
                    namespace: NamespaceOpt = None, output: OutputOpt = Output.table,
                    full: Annotated[bool, typer.Option(
                        "--full", metavar=FLAG,
                        help="skip all remaining steps and analyses")] = False,
                    wait: WaitOpt = True, wait_timeout: WaitTimeoutOpt = "30s") -> None:
            run_action("promote", name, kubeconfig, context, namespace, output, wait, wait_timeout,
                       full)
        promote.__doc__ = HELP["promote"]
        return promote

    def cmd(name: NameArg, kubeconfig: KubeconfigOpt = None, context: ContextOpt = None,
            namespace: NamespaceOpt = None, output: OutputOpt = Output.table,
            wait: WaitOpt = True, wait_timeout: WaitTimeoutOpt = "30s") -> None:
        run_action(action, name, kubeconfig, context, namespace, output, wait, wait_timeout)
    cmd.__doc__ = HELP[action]
    cmd.__name__ = action
    return cmd


def register(app: typer.Typer) -> None:
    for action in PAST:
        app.command(action, rich_help_panel="Manual judgement")(_command(action))

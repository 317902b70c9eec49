"""Shell completion: rollout names from the cluster, and kubectl's plugin protocol.

`rollouts --install-completion` (bash, zsh, fish) completes commands, flags and, for
commands taking a rollout, the names of the rollouts in the namespace given so far
(--namespace / --context / --kubeconfig on the line are honoured).

`kubectl rollouts <TAB>` (kubectl 1.26+) runs ``kubectl_complete-rollouts ARGS...`` with the
words after the plugin name, the last one being the word under the cursor, and expects
Cobra's answer: one candidate a line (``value<TAB>description``), then ``:DIRECTIVE``.
``rollouts __complete ARGS...`` gives that answer; the ``kubectl_complete-rollouts``
executable is a thin wrapper around it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import typer

# Cobra's ShellCompDirective values
DIRECTIVE_DEFAULT = 0  # let the shell complete file names
DIRECTIVE_NO_FILE = 4
# a completion that hangs is worse than none; $ROLLOUTS_COMPLETE_TIMEOUT (seconds) for slow APIs
LIST_TIMEOUT_S = 5.0
FILE_FLAGS = ("--kubeconfig",)


def list_rollouts(kubeconfig: str | None, context: str | None,
                  namespace: str | None) -> list[tuple[str, str]]:
    """(name, phase) of the rollouts in the namespace; [] on any problem (completion must
    never print an error into the user's command line)."""
    import asyncio

    from rollouts.cli.kubeconfig import kubeconfig_problem

    if kubeconfig_problem(kubeconfig, context) is not None:
        return []
    try:
        limit = float(os.environ.get("ROLLOUTS_COMPLETE_TIMEOUT") or LIST_TIMEOUT_S)
    except ValueError:
        limit = LIST_TIMEOUT_S

    async def go() -> list[tuple[str, str]]:
        from rollouts.cli.session import open_session
        from rollouts.kube.signals import ROLLOUTS

        async with open_session(kubeconfig, context, namespace) as s:
            s.kube.timeout = limit
            data = await s.kube.get_list(ROLLOUTS.path(s.namespace))
        return [(str(o["metadata"]["name"]), str((o.get("status") or {}).get("phase") or ""))
                for o in data.get("items") or []]

    try:
        return asyncio.run(asyncio.wait_for(go(), limit + 1))
    except BaseException:  # typer.Exit from a failed session included: nothing to offer
        return []


# replaced in unit tests (the only part that talks to a cluster)
lister: Callable[[str | None, str | None, str | None], list[tuple[str, str]]] = list_rollouts


def complete_rollout_name(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Typer's autocompletion callback for a NAME argument."""
    p = ctx.params
    return sorted((n, phase) for n, phase in lister(p.get("kubeconfig"), p.get("context"),
                                                     p.get("namespace"))
                  if n.startswith(incomplete))


def cobra_answer(args: list[str], prog: str = "kubectl rollouts") -> str:
    """Cobra's ``__complete`` output for the words ``args`` (the last is being typed)."""
    # Typer carries its own copy of click: its resolver walks Typer's commands
    from typer._click.shell_completion import CompletionItem, ShellComplete

    from rollouts.cli.main import app

    class Cobra(ShellComplete):
        name = "cobra"
        source_template = ""

        def source_vars(self) -> dict[str, Any]:
            return {}

        def get_completion_args(self) -> tuple[list[str], str]:
            return (args[:-1], args[-1]) if args else ([], "")

        def format_completion(self, item: CompletionItem) -> str:
            return f"{item.value}\t{item.help}" if item.help else str(item.value)

    words = args[:-1]
    if words and words[-1] in FILE_FLAGS:
        return f":{DIRECTIVE_DEFAULT}\n"  # a path: the shell's own file completion
    comp = Cobra(typer.main.get_command(app), {}, prog, "_ROLLOUTS_COMPLETE")
    items = comp.get_completions(*comp.get_completion_args())
    if any(i.type in ("file", "dir") for i in items):
        return f":{DIRECTIVE_DEFAULT}\n"  # a path: the shell's own file completion
    lines = [comp.format_completion(i) for i in items if not str(i.value).startswith("__")]
    return "".join(f"{ln}\n" for ln in lines) + f":{DIRECTIVE_NO_FILE}\n"


def complete_command(args: list[str]) -> None:
    """`rollouts __complete ARGS...` (hidden)."""
    sys.stdout.write(cobra_answer(args))


def kubectl_complete_main(argv: Any = None) -> None:
    """The ``kubectl_complete-rollouts`` executable."""
    complete_command(list(sys.argv[1:] if argv is None else argv))

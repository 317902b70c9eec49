"""Flags every command shares (kubectl's names) and the machine-output helpers.

Kept free of Kubernetes imports: `rollouts --help` and `rollouts lint` start fast.
"""

from __future__ import annotations

import enum
import json
import sys
from typing import Annotated, Any

import typer

from rollouts.cli import exitcodes
from rollouts.cli.completion import complete_rollout_name


class Output(enum.StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


FLAG = ""  # a flag takes no value: no "<bool>" beside it in help

KubeconfigOpt = Annotated[str | None, typer.Option(
    "--kubeconfig", envvar="KUBECONFIG", show_envvar=False, metavar="FILE",
    help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")]
ContextOpt = Annotated[str | None, typer.Option("--context", metavar="CONTEXT",
                                                help="kubeconfig context to use")]
NamespaceOpt = Annotated[str | None, typer.Option(
    "--namespace", "-n", metavar="NAMESPACE",
    help="namespace (default: the context's namespace, else default)")]
AllNamespacesOpt = Annotated[bool, typer.Option(
    "--all-namespaces", "-A", metavar=FLAG, help="list across all namespaces")]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", metavar="FORMAT",
                                           help="output format: table, json or yaml",
                                           case_sensitive=False)]
RolloutNameArg = Annotated[str, typer.Argument(
    metavar="NAME", help="rollout name", show_default=False,
    autocompletion=complete_rollout_name)]


def is_tty(stream: Any = None) -> bool:
    s = stream or sys.stdout
    return bool(getattr(s, "isatty", lambda: False)())


def dump(data: Any, fmt: Output) -> str:
    if fmt is Output.yaml:
        import yaml

        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    return json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"


def emit(data: Any, fmt: Output) -> None:
    """Machine output: stdout, nothing else on it."""
    sys.stdout.write(dump(data, fmt))
    sys.stdout.flush()


def progress(msg: str) -> None:
    """Progress and diagnostics: stderr, so stdout stays parseable."""
    print(msg, file=sys.stderr, flush=True)


def fail(msg: str, code: int = exitcodes.FAILED) -> typer.Exit:
    progress(f"error: {msg}")
    return typer.Exit(code)

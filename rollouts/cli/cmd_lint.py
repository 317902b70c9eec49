"""The `lint` command (offline; no Kubernetes imports)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from rollouts.cli import exitcodes
from rollouts.cli.common import Output, OutputOpt, emit, progress


def lint(files: Annotated[list[Path], typer.Argument(
             metavar="FILE...", help="YAML files (- for standard input)", show_default=False)],
         output: OutputOpt = Output.table,
         strict: Annotated[bool, typer.Option(
             metavar="", help="fail when a file holds no Rollout or analysis object")] = False) -> None:
    """Check Rollout and AnalysisTemplate YAML offline (schema and semantics).

    Prints FILE:LINE: error: MESSAGE for each problem; exit code 1 when there is one.
    """
    from rollouts.cli.lint import Finding, lint_text

    findings: list[Finding] = []
    checked = 0
    for path in files:
        name = str(path)
        try:
            text = sys.stdin.read() if name == "-" else path.read_text()
        except OSError as e:
            findings.append(Finding(name, 0, "error", f"cannot read: {e.strerror or e}"))
            continue
        found, ours = lint_text(text, "<stdin>" if name == "-" else name)
        findings += found
        checked += ours
        if ours == 0 and not found:
            msg = "no Rollout or analysis object in this file"
            if strict:
                findings.append(Finding(name, 1, "error", msg))
            else:
                progress(f"{name}: {msg} (skipped)")
    errors = [f for f in findings if f.severity == "error"]
    if output is not Output.table:
        emit({"checked": checked, "findings": [f.as_dict() for f in findings]}, output)
    else:
        for f in findings:
            print(f, flush=True)
        progress(f"{checked} object(s) checked in {len(files)} file(s): "
                 f"{len(errors)} error(s)")
    raise typer.Exit(exitcodes.FAILED if errors else exitcodes.OK)

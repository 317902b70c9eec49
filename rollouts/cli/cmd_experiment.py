"""`get experiment NAME`: an Experiment's phase, templates and analyses."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from rollouts.cli.common import ContextOpt, KubeconfigOpt, NamespaceOpt, Output, OutputOpt, emit

ExperimentArg = Annotated[str, typer.Argument(metavar="NAME", help="experiment name",
                                              show_default=False)]


def experiment_view(obj: dict[str, Any]) -> dict[str, Any]:
    """What `get experiment` shows (also its -o json/yaml): Argo's status field names."""
    md, spec, st = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    return {
        "name": md.get("name"), "namespace": md.get("namespace"),
        "phase": st.get("phase") or "Pending", "message": st.get("message") or "",
        "duration": spec.get("duration"), "availableAt": st.get("availableAt"),
        "terminate": spec.get("terminate") is True,
        "templates": [{k: t.get(k) for k in ("name", "status", "replicas", "readyReplicas",
                                             "availableReplicas", "podTemplateHash", "serviceName",
                                             "message")}
                      for t in st.get("templateStatuses") or []],
        "analysisRuns": [{k: r.get(k) for k in ("name", "analysisRun", "phase", "message")}
                         for r in st.get("analysisRuns") or []],
    }


def _duration(value: Any) -> str:
    """``3600`` or ``60m`` as ``1h``, like every duration the CLI prints."""
    from rollouts.api.duration import parse_duration
    from rollouts.cli.timefmt import fmt_duration

    if value is None or value == "":
        return "(until terminated or required analyses end)"
    try:
        return fmt_duration(parse_duration(value))
    except ValueError:
        return str(value)  # shown as written: the controller reports the bad value


def render(view: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    head = Text()
    head.append(f"Name:         {view['name']}\nNamespace:    {view['namespace']}\n")
    head.append(f"Status:       {view['phase']}" + (f" ({view['message']})" if view["message"] else "")
                + "\n")
    head.append(f"Duration:     {_duration(view['duration'])}\n")
    head.append(f"Available at: {view['availableAt'] or '-'}")
    templates = Table(title="Templates", title_justify="left")
    for col in ("NAME", "STATUS", "READY", "AVAILABLE", "HASH", "SERVICE", "MESSAGE"):
        templates.add_column(col)
    for t in view["templates"]:
        templates.add_row(str(t["name"]), str(t["status"] or "-"),
                          f"{t['readyReplicas'] or 0}/{t['replicas'] or 0}",
                          str(t["availableReplicas"] or 0), str(t["podTemplateHash"] or "-"),
                          str(t["serviceName"] or "-"), str(t["message"] or ""))
    runs = Table(title="Analyses", title_justify="left")
    for col in ("NAME", "ANALYSISRUN", "PHASE", "MESSAGE"):
        runs.add_column(col)
    for r in view["analysisRuns"]:
        runs.add_row(str(r["name"]), str(r["analysisRun"] or "-"), str(r["phase"] or "-"),
                     str(r["message"] or ""))
    return Group(head, templates, runs) if view["analysisRuns"] else Group(head, templates)


def get_experiment(name: ExperimentArg, kubeconfig: KubeconfigOpt = None, context: ContextOpt = None,
                   namespace: NamespaceOpt = None, output: OutputOpt = Output.table) -> None:
    """Show an Experiment: phase, its templates' ReplicaSets and its AnalysisRuns."""
    from rollouts.api.constants import GROUP, VERSION
    from rollouts.cli.session import Session, with_session
    from rollouts.kube.client import Resource

    experiments = Resource(GROUP, VERSION, "experiments")

    async def body(s: Session) -> None:
        view = experiment_view(await s.kube.get(experiments.path(s.namespace, name)))
        if output is not Output.table:
            emit(view, output)
            return
        from rich.console import Console

        Console().print(render(view))

    with_session(kubeconfig, context, namespace, body)

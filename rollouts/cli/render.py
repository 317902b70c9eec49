"""Pure formatting of rollouts for people: rich tables, no I/O (unit-tested).

Colour appears only when the console is a terminal; rich decides that from the stream.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from rollouts.cli import timefmt
from rollouts.cli.tree import RunInfo, build_tree, render_tree, rollout_icon, status_run_infos

HASH_LABEL = "rollouts-pod-template-hash"
REVISION_ANNOTATION = "rollouts.dev/revision"

PHASE_STYLE = {"Healthy": "green", "Degraded": "red", "Paused": "yellow", "Progressing": "cyan",
               "Successful": "green", "Failed": "red", "Error": "red", "Inconclusive": "yellow",
               "Running": "cyan"}
STEP_MARK = {"done": "✓", "current": "▶", "pending": "·"}


def age(ts: Any, now: datetime | None = None) -> str:
    return timefmt.age(ts, now)


def step_text(s: dict[str, Any]) -> str:
    idx, total = s.get("currentStepIndex"), s.get("totalSteps", 0)
    return "-" if idx is None else f"{idx}/{total}"


def phase_text(phase: str) -> Text:
    return Text(phase, style=PHASE_STYLE.get(phase, ""))


def list_table(rows: list[dict[str, Any]], all_namespaces: bool, now: datetime | None = None) -> Table:
    t = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    cols = (["NAMESPACE"] if all_namespaces else []) + [
        "NAME", "PHASE", "STEP", "CANARY WEIGHT", "READY", "AGE", "MESSAGE"]
    for c in cols:
        t.add_column(c, overflow="fold" if c == "MESSAGE" else "ellipsis")
    for r in rows:
        rep = r["replicas"]
        desired = rep.get("desired")
        cells: list[str | Text] = [r["namespace"]] if all_namespaces else []
        blue_green = r.get("strategy") == "blueGreen"  # no steps, no weights: the Services switch
        cells += [r["name"], phase_text(r["phase"]), "-" if blue_green else step_text(r),
                  "-" if blue_green else f"{r['weights']['canary']}%",
                  f"{rep.get('ready', 0)}/{desired if desired is not None else '?'}",
                  age(r.get("createdAt"), now), r.get("message") or ""]
        t.add_row(*cells)
    return t


def replica_set_rows(summary: dict[str, Any], rss: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rollout's ReplicaSets, newest revision first, with their role."""
    canary, stable = summary["revisions"]["canary"], summary["revisions"]["stable"]
    bg = summary.get("blueGreen") or {}
    rows = []
    for rs in rss:
        md, spec, st = rs.get("metadata") or {}, rs.get("spec") or {}, rs.get("status") or {}
        h = (md.get("labels") or {}).get(HASH_LABEL, "")
        try:
            rev = int((md.get("annotations") or {}).get(REVISION_ANNOTATION, "0"))
        except ValueError:
            rev = 0
        if bg:  # blue-green: the role is what the Services select
            role = ("active" if h == bg.get("activeSelector") else "preview"
                    if h == bg.get("previewSelector") else "stable" if h == stable else "old")
        else:
            role = "stable" if h == stable else "canary" if h == canary else "old"
        images = [str(c.get("image", "")) for c in
                  ((spec.get("template") or {}).get("spec") or {}).get("containers") or []]
        rows.append({"name": md.get("name", ""), "hash": h, "revision": rev, "role": role,
                     "desired": int(spec.get("replicas") or 0),
                     "ready": int(st.get("readyReplicas") or 0),
                     "available": int(st.get("availableReplicas") or 0), "images": images})
    return sorted(rows, key=lambda r: -r["revision"])


def event_rows(events: list[dict[str, Any]], limit: int = 5) -> list[dict[str, Any]]:
    def when(e: dict[str, Any]) -> str:
        return str(e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") or "")
    def order(e: dict[str, Any]) -> tuple[str, int]:
        rv = str((e.get("metadata") or {}).get("resourceVersion") or "0")
        # timestamps have 1 s precision: the resourceVersion orders events of one second
        return when(e), int(rv) if rv.isdigit() else 0
    out = [{"time": when(e), "type": e.get("type", ""), "reason": e.get("reason", ""),
            "message": e.get("message", ""), "count": e.get("count", 1)}
           for e in sorted(events, key=order)]
    return out[-limit:]


def _action_line(a: dict[str, Any] | None, pending: bool) -> str:
    if not a:
        return "-"
    what = a.get("action", "?") + (" --full" if a.get("full") else "")
    if pending:
        return f"{what} by {a.get('user', '?')} (waiting for the controller)"
    msg = f": {a['message']}" if a.get("message") else ""
    earlier = f" (on earlier revision {a.get('podHash')})" if a.get("current") is False else ""
    return f"{what} by {a.get('user', '?')} -> {a.get('result', '?')}{msg}{earlier}"


def set_weight(s: dict[str, Any]) -> int:
    """The weight the steps ask for now (Argo's SetWeight): the last setWeight at or before
    the current step; 100 once the steps are done; 0 when aborted."""
    if s.get("aborted"):
        return 0
    idx, steps = s.get("currentStepIndex"), s.get("steps") or []
    if idx is None or idx >= len(steps):
        return 100
    return next((int(st["weight"]) for st in reversed(steps[: idx + 1]) if "weight" in st), 0)


def step_description(st: dict[str, Any]) -> str:
    if st.get("kind") == "pause" and st.get("pauseSeconds") is not None:
        return f"pause {timefmt.fmt_duration(float(st['pauseSeconds']))}"
    return str(st.get("description") or "")


def _images(s: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """Images that run, each with the roles of the ReplicaSets running it (Argo's Images)."""
    tags: dict[str, list[str]] = {}
    for r in rows:
        if r["desired"] > 0:
            for img in r["images"]:
                roles = tags.setdefault(img, [])
                if r["role"] != "old" and r["role"] not in roles:
                    roles.append(r["role"])
    if not tags:  # no ReplicaSet read (yet): the spec's images
        return [c["image"] for c in s["containers"]]
    return [img + (f" ({', '.join(roles)})" if roles else "") for img, roles in sorted(tags.items())]


def detail(summary: dict[str, Any], rss: list[dict[str, Any]], events: list[dict[str, Any]],
           now: datetime | None = None, *, pods: list[dict[str, Any]] | None = None,
           runs: list[RunInfo] | None = None) -> RenderableType:
    """The header, the tree (revisions, ReplicaSets, pods, AnalysisRuns), the steps and the
    last events. ``runs`` None: the AnalysisRuns could not be read; the tree then shows
    the runs the rollout's status records."""
    s = summary
    rows = replica_set_rows(s, rss)
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("Name:", s["name"])
    head.add_row("Namespace:", s["namespace"])
    status = Text(rollout_icon(s["phase"]) + " ")
    status.append(phase_text(s["phase"]))
    if not s["upToDate"]:
        status.append(" (spec change not yet observed)", style="dim")
    if s["aborted"]:
        status.append(" aborted", style="red")
    if s.get("pausedBy"):
        status.append(f" paused by {s['pausedBy']}", style="yellow")
    head.add_row("Status:", status)
    if s["message"]:
        head.add_row("Message:", s["message"])
    bg = s.get("blueGreen")
    if bg:
        head.add_row("Strategy:", "BlueGreen")
        head.add_row("Active:", f"{bg.get('activeService') or '-'} -> {bg.get('activeSelector') or '-'}")
        if bg.get("previewService"):
            head.add_row("Preview:",
                         f"{bg['previewService']} -> {bg.get('previewSelector') or '-'}")
    else:
        head.add_row("Strategy:", "Canary")
        current = next((step_description(st) for st in s["steps"] if st["state"] == "current"), "")
        # the current step's meaning up front: a live view cropped to a small terminal keeps it
        head.add_row("  Step:", step_text(s) + (f": {current}" if current else ""))
        head.add_row("  SetWeight:", str(set_weight(s)))
        head.add_row("  ActualWeight:", str(s["weights"]["canary"]))
    for i, img in enumerate(_images(s, rows)):
        head.add_row("Images:" if i == 0 else "", img)
    rep = s["replicas"]
    head.add_row("Replicas:", f"desired {rep['desired'] if rep['desired'] is not None else '?'}  "
                              f"current {rep['current']}  updated {rep['updated']}  "
                              f"ready {rep['ready']}  available {rep['available']}")
    if s.get("pendingAction"):
        head.add_row("Pending:", _action_line(s["pendingAction"], True))
    if s.get("lastAction"):
        head.add_row("Last action:", _action_line(s["lastAction"], False))
    for err in s.get("specErrors") or []:
        head.add_row(Text("Spec error:", style="red"), err)
    parts: list[RenderableType] = [head, Text("")]

    shown_runs = runs if runs is not None else status_run_infos(s)
    parts.append(render_tree(build_tree(s, rows, rss, pods or [], shown_runs, now)))

    if s["steps"]:
        steps = Table(title="Steps", title_justify="left", box=None, header_style="bold")
        for c in ("", "#", "STEP"):
            steps.add_column(c)
        for st in s["steps"]:
            style = "bold" if st["state"] == "current" else "dim" if st["state"] == "done" else ""
            steps.add_row(STEP_MARK[st["state"]], str(st["index"]), step_description(st), style=style)
        parts.append(steps)

    evs = event_rows(events)
    if evs:
        et = Table(title="Events", title_justify="left", box=None, header_style="bold")
        for c in ("AGE", "TYPE", "REASON", "MESSAGE"):
            et.add_column(c, overflow="fold" if c == "MESSAGE" else "ellipsis")
        for e in evs:
            et.add_row(age(e["time"], now), e["type"], e["reason"],
                       e["message"] + (f" (x{e['count']})" if (e["count"] or 1) > 1 else ""),
                       style="red" if e["type"] == "Warning" else "")
        parts.append(et)
    return Group(*parts)


def to_text(renderable: RenderableType, width: int = 120) -> str:
    """Plain text of a renderable (for non-TTY output and tests)."""
    console = Console(width=width, record=True, color_system=None, force_terminal=False,
                      file=io.StringIO())
    console.print(renderable)
    # rich pads table cells to the column width: no trailing blanks on a pipe
    return "".join(line.rstrip() + "\n" for line in console.export_text().splitlines())

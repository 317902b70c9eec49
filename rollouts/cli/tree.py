"""The tree of `get rollout`, as `kubectl argo rollouts get rollout` draws it (pure, no I/O).

Rollout -> revisions (newest first) -> ReplicaSets (stable / canary / active / preview)
-> pods, and each revision's AnalysisRuns with their measurement counts and, under a
run, the judge's verdict (or a failed run's reason). The icons and status words are
Argo's, so a user of its plugin reads ours without a legend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.text import Text

from rollouts.cli.timefmt import age, parse_time

HASH_LABEL = "rollouts-pod-template-hash"

# kinds
ICON_ROLLOUT, ICON_REVISION, ICON_RS, ICON_POD, ICON_RUN, ICON_EXPERIMENT = "⟳", "#", "⧉", "□", "α", "Σ"
# states (Argo's plugin)
OK, BAD, WARNING, UNKNOWN, PROGRESSING, WAITING, PAUSED, NEUTRAL = (
    "✔", "✖", "⚠", "?", "◌", "◷", "॥", "•")

ICON_STYLE = {OK: "green", BAD: "red", WARNING: "red", UNKNOWN: "yellow", PROGRESSING: "blue",
              WAITING: "yellow"}
TAG_STYLE = {"canary": "yellow", "stable": "green", "active": "green", "preview": "blue"}


def rollout_icon(phase: str) -> str:
    return {"Progressing": PROGRESSING, "Paused": PAUSED, "Healthy": OK, "Degraded": BAD,
            "Error": WARNING, "InvalidSpec": WARNING, "Unknown": UNKNOWN}.get(phase, " ")


def run_icon(phase: str) -> str:
    return {"Successful": OK, "Failed": BAD, "Error": WARNING, "Inconclusive": UNKNOWN,
            "Running": PROGRESSING, "Pending": WAITING}.get(phase, " ")


def pod_icon(status: str) -> str:
    if status.startswith("Init:"):
        return PROGRESSING
    if status.startswith(("Signal:", "ExitCode:")):
        return BAD
    if status.endswith("Error") or status.startswith("Err"):
        return WARNING
    return {"Pending": PROGRESSING, "Terminating": PROGRESSING, "ContainerCreating": PROGRESSING,
            "Running": OK, "Completed": OK, "Failed": BAD, "InvalidImageName": BAD,
            "CrashLoopBackOff": BAD, "ImagePullBackOff": WARNING,
            "RegistryUnavailable": WARNING, "Unknown": UNKNOWN}.get(status, " ")


def rs_icon(status: str) -> str:
    return {"Progressing": PROGRESSING, "Healthy": OK, "ReplicaFailure": BAD,
            "ScaledDown": NEUTRAL}.get(status, " ")


def pod_status(pod: dict[str, Any]) -> tuple[str, str, int]:
    """(status word, "ready/total" containers, restarts), like kubectl's STATUS column."""
    md, spec, st = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    reason = str(st.get("reason") or st.get("phase") or "Pending")
    restarts, ready = 0, 0
    initializing = False
    inits = spec.get("initContainers") or []
    for i, c in enumerate(st.get("initContainerStatuses") or []):
        restarts += int(c.get("restartCount") or 0)
        state = c.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            reason = "Init:" + str(term.get("reason") or f"ExitCode:{term.get('exitCode')}")
        elif c.get("started") and c.get("ready"):
            continue  # a sidecar (restartPolicy: Always) that is up
        elif wait and wait.get("reason") and wait.get("reason") != "PodInitializing":
            reason = "Init:" + str(wait["reason"])
        else:
            reason = f"Init:{i}/{len(inits)}"
        initializing = True
        break
    if not initializing:
        restarts = 0
        running = False
        for c in reversed(st.get("containerStatuses") or []):
            restarts += int(c.get("restartCount") or 0)
            state = c.get("state") or {}
            wait, term = state.get("waiting") or {}, state.get("terminated")
            if wait.get("reason"):
                reason = str(wait["reason"])
            elif term:
                reason = str(term.get("reason") or (f"Signal:{term['signal']}" if term.get("signal")
                                                    else f"ExitCode:{term.get('exitCode')}"))
            elif c.get("ready") and state.get("running") is not None:
                running = True
                ready += 1
        if reason == "Completed" and running:
            reason = "Running"
    if md.get("deletionTimestamp"):
        reason = "Unknown" if st.get("reason") == "NodeLost" else "Terminating"
    return reason, f"{ready}/{len(spec.get('containers') or [])}", restarts


def rs_status(rs: dict[str, Any]) -> str:
    md, spec, st = rs.get("metadata") or {}, rs.get("spec") or {}, rs.get("status") or {}
    desired = int(spec.get("replicas") or 0)
    if int(md.get("generation") or 0) > int(st.get("observedGeneration") or 0):
        return "Progressing"
    if any(c.get("type") == "ReplicaFailure" and c.get("status") == "True"
           for c in st.get("conditions") or []):
        return "ReplicaFailure"
    if int(st.get("availableReplicas") or 0) < desired:
        return "Progressing"
    return "ScaledDown" if desired == 0 else "Healthy"


@dataclass
class RunInfo:
    """What the tree (and ``-o json``) shows of one AnalysisRun."""
    name: str
    phase: str
    hash: str
    created: str
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    verdicts: list[str] = field(default_factory=list)
    kind: str = ""

    def counts(self) -> str:
        marks = ((OK, self.successful), (BAD, self.failed), (UNKNOWN, self.inconclusive),
                 (WARNING, self.error))
        return ",".join(f"{icon} {n}" for icon, n in marks if n > 0)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "phase": self.phase, "revision": self.hash,
                "createdAt": self.created, "successful": self.successful, "failed": self.failed,
                "inconclusive": self.inconclusive, "error": self.error, "verdicts": self.verdicts}


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def run_info(run: dict[str, Any]) -> RunInfo:
    """Counts summed over the run's metrics (Argo's INFO column) and the lines that explain
    it: each judge metric's latest decision and explanation, a failed metric's message."""
    md, st = run.get("metadata") or {}, run.get("status") or {}
    labels = md.get("labels") or {}
    phase = str(st.get("phase") or "Pending")
    info = RunInfo(name=str(md.get("name") or ""), phase=phase, hash=str(labels.get(HASH_LABEL) or ""),
                   created=str(md.get("creationTimestamp") or ""),
                   kind=str(labels.get("rollouts.dev/analysis") or ""))
    for m in st.get("metricResults") or []:
        if not isinstance(m, dict):
            continue
        info.successful += _int(m.get("successful"))
        info.failed += _int(m.get("failed"))
        info.inconclusive += _int(m.get("inconclusive"))
        info.error += _int(m.get("error"))
        ev = m.get("evidence")
        last = (m.get("measurements") or [{}])[-1]
        last = last if isinstance(last, dict) else {}
        if isinstance(ev, dict) and (ev.get("decision") or ev.get("explanation")):
            decision = str(ev.get("decision") or last.get("decision") or "?")
            text = str(ev.get("explanation") or last.get("message") or "")
            info.verdicts.append(f"{m.get('name', '?')}: {decision}" + (f" - {text}" if text else ""))
        elif m.get("phase") in ("Failed", "Error", "Inconclusive") and m.get("message"):
            info.verdicts.append(f"{m.get('name', '?')}: {str(m['phase']).lower()} - {m['message']}")
    if not info.verdicts and phase in ("Failed", "Error", "Inconclusive") and st.get("message"):
        info.verdicts.append(str(st["message"]))
    return info


def status_run_infos(summary: dict[str, Any]) -> list[RunInfo]:
    """Runs known only from the rollout's status (the AnalysisRuns cannot be listed)."""
    # a run of a replaced revision (or an earlier attempt) is history, not a verdict
    return [RunInfo(name=str(r.get("name") or ""), phase=str(r.get("phase") or "Pending"),
                    hash=str(r.get("revision") or ""), created="",
                    kind=str(r.get("kind") or "") + ("" if r.get("current")
                                                     else ", earlier revision or attempt"),
                    verdicts=[str(r["message"])] if r.get("message") else [])
            for r in (summary.get("analysis") or {}).get("runs") or []]


@dataclass
class Node:
    icon: str
    name: str
    kind: str = ""
    state_icon: str = ""
    status: str = ""
    age: str = ""
    info: str = ""
    style: str = ""
    children: list[Node] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # whole lines under the row (verdicts)


def build_tree(summary: dict[str, Any], rs_rows: list[dict[str, Any]], rss: list[dict[str, Any]],
               pods: list[dict[str, Any]], runs: list[RunInfo], now: datetime | None = None) -> Node:
    """``rs_rows`` are ``render.replica_set_rows`` (role, revision); ``rss`` and ``pods`` the
    raw objects (a pod belongs to the ReplicaSet its controller ownerReference names)."""
    raw_by_name = {str((r.get("metadata") or {}).get("name")): r for r in rss}
    uid_to_rs = {str((r.get("metadata") or {}).get("uid")): n for n, r in raw_by_name.items()}
    pods_of: dict[str, list[dict[str, Any]]] = {}
    for p in pods:
        for o in (p.get("metadata") or {}).get("ownerReferences") or []:
            rs_name = uid_to_rs.get(str(o.get("uid")))
            if o.get("controller") and rs_name is not None:
                pods_of.setdefault(rs_name, []).append(p)
    rev_of_hash = {r["hash"]: r["revision"] for r in rs_rows if r["hash"]}
    revisions: dict[int, Node] = {}

    def revision(rev: int) -> Node:
        if rev not in revisions:
            revisions[rev] = Node(ICON_REVISION, f"revision:{rev}" if rev > 0 else "revision:?")
        return revisions[rev]

    for row in rs_rows:
        raw = raw_by_name.get(row["name"], {})
        status = rs_status(raw) if raw else "Healthy"
        tag = row["role"] if row["role"] != "old" else ""
        rs_node = Node(ICON_RS, row["name"], "ReplicaSet", rs_icon(status), status,
                       age((raw.get("metadata") or {}).get("creationTimestamp"), now), tag,
                       style=TAG_STYLE.get(tag, ""))
        for p in sorted(pods_of.get(row["name"], []), key=lambda p: str(p["metadata"].get("name"))):
            st, ready, restarts = pod_status(p)
            info = f"ready:{ready}" + (f",restarts:{restarts}" if restarts else "")
            rs_node.children.append(Node(ICON_POD, str(p["metadata"].get("name")), "Pod",
                                         pod_icon(st), st,
                                         age(p["metadata"].get("creationTimestamp"), now), info))
        revision(row["revision"]).children.append(rs_node)

    def when(r: RunInfo) -> tuple[float, str]:
        t = parse_time(r.created)
        return (t.timestamp() if t else 0.0), r.name

    for r in sorted(runs, key=when):
        style = "blue" if r.phase in ("Pending", "Running") else ""
        label = r.name + (f" ({r.kind})" if r.kind else "")
        revision(rev_of_hash.get(r.hash, 0)).children.append(
            Node(ICON_RUN, label, "AnalysisRun", run_icon(r.phase), r.phase, age(r.created, now),
                 r.counts(), style=style, notes=list(r.verdicts)))

    phase = str(summary.get("phase") or "Unknown")
    root = Node(ICON_ROLLOUT, str(summary.get("name") or ""), "Rollout", rollout_icon(phase), phase,
                age(summary.get("createdAt"), now))
    root.children = [revisions[k] for k in sorted(revisions, reverse=True)]
    return root


def render_tree(root: Node) -> Text:
    """NAME KIND STATUS AGE INFO columns with ├── └── branches; a note (a verdict) is a
    whole line under its row, outside the columns so a long explanation does not widen them."""
    rows: list[tuple[str, Node, str]] = []  # (branch prefix, node, prefix for its notes)

    def walk(node: Node, prefix: str, sub: str) -> None:
        rows.append((prefix, node, sub))
        for i, child in enumerate(node.children):
            last = i == len(node.children) - 1
            walk(child, sub + ("└──" if last else "├──"), sub + ("   " if last else "│  "))

    walk(root, "", "")
    head = ("NAME", "KIND", "STATUS", "AGE", "INFO")
    cells = [(f"{p}{n.icon} {n.name}", n.kind, f"{n.state_icon} {n.status}" if n.status else "",
              n.age, n.info) for p, n, _ in rows]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(4)]
    out = Text()
    out.append("  ".join(h.ljust(w) for h, w in zip(head[:4], widths, strict=True)) + "  INFO\n",
               style="bold")
    for (prefix, node, sub), cell in zip(rows, cells, strict=True):
        line = Text(prefix + node.icon + " ")
        line.append(node.name, style=node.style)
        line.append(" " * (widths[0] - len(cell[0]) + 2))
        line.append(cell[1].ljust(widths[1] + 2))
        if node.status:
            line.append(node.state_icon, style=ICON_STYLE.get(node.state_icon, ""))
            line.append(" " + node.status)
        line.append(" " * (widths[2] - len(cell[2]) + 2))
        line.append(cell[3].ljust(widths[3] + 2))
        _append_info(line, node.info)
        line.rstrip()
        out.append_text(line)
        out.append("\n")
        for note in node.notes:
            pad = sub + ("│  " if node.children else "   ")
            out.append(f"{pad}  {note}\n", style="dim" if node.status == "Successful" else "")
    out.rstrip()
    return out


def _append_info(out: Text, info: str) -> None:
    for i, part in enumerate(info.split(",") if info else []):
        if i:
            out.append(",")
        icon, _, rest = part.partition(" ")
        if icon in ICON_STYLE and rest:
            out.append(icon, style=ICON_STYLE[icon])
            out.append(" " + rest)
        else:
            out.append(part, style=TAG_STYLE.get(part, ""))

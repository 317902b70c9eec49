"""The rollout page's tree: the rollout's ReplicaSets, each with its role and its pods.

Pure: built from the summary (``rollouts.api.summary.summarize``), the ReplicaSets the
rollout controls and the pods carrying a revision label. The role is the one the CLI
shows: canary/stable by revision, active/preview by what a blue-green's Services select.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rollouts.api.constants import POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION


def _role(h: str, summary: dict[str, Any]) -> str:
    canary, stable = summary["revisions"]["canary"], summary["revisions"]["stable"]
    bg = summary.get("blueGreen") or {}
    if bg:
        return ("active" if h == bg.get("activeSelector") else "preview"
                if h == bg.get("previewSelector") else "stable" if h == stable else "old")
    return "stable" if h == stable else "canary" if h == canary else "old"


def owned_by(obj: dict[str, Any], uid: str | None) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return bool(uid) and any(r.get("uid") == uid and r.get("controller") for r in refs)


def pod_row(pod: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    md, st = pod.get("metadata") or {}, pod.get("status") or {}
    cs = [c for c in st.get("containerStatuses") or [] if isinstance(c, dict)]
    waiting = next((str((c.get("state") or {}).get("waiting", {}).get("reason") or "")
                    for c in cs if (c.get("state") or {}).get("waiting")), "")
    status = ("Terminating" if md.get("deletionTimestamp") else waiting or str(st.get("phase") or "Pending"))
    total = len(cs) or len((pod.get("spec") or {}).get("containers") or [])
    return {"name": str(md.get("name") or ""),
            "status": status,
            "ready": f"{sum(1 for c in cs if c.get('ready'))}/{total}",
            "restarts": sum(int(c.get("restartCount") or 0) for c in cs),
            "createdAt": md.get("creationTimestamp"),
            "age": _age(md.get("creationTimestamp"), now)}


def _age(ts: Any, now: datetime | None) -> str:
    if not isinstance(ts, str):
        return ""
    try:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return ""
    s = int(((now or datetime.now(UTC)) - t).total_seconds())
    return f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h"


def replica_sets(summary: dict[str, Any], rss: list[dict[str, Any]], pods: list[dict[str, Any]],
                 now: datetime | None = None) -> list[dict[str, Any]]:
    """ReplicaSets newest revision first, each with role, counts, images and its pods."""
    by_hash: dict[str, list[dict[str, Any]]] = {}
    for p in pods:
        h = ((p.get("metadata") or {}).get("labels") or {}).get(POD_TEMPLATE_HASH_LABEL)
        if isinstance(h, str):
            by_hash.setdefault(h, []).append(p)
    rows = []
    for rs in rss:
        md, spec, st = rs.get("metadata") or {}, rs.get("spec") or {}, rs.get("status") or {}
        h = str((md.get("labels") or {}).get(POD_TEMPLATE_HASH_LABEL) or "")
        try:
            rev = int((md.get("annotations") or {}).get(REVISION_ANNOTATION, "0"))
        except ValueError:
            rev = 0
        mine = [p for p in by_hash.get(h, []) if owned_by(p, md.get("uid"))]
        images = [str(c.get("image", "")) for c in
                  ((spec.get("template") or {}).get("spec") or {}).get("containers") or []]
        rows.append({"name": str(md.get("name") or ""), "hash": h, "revision": rev,
                     "role": _role(h, summary), "desired": int(spec.get("replicas") or 0),
                     "ready": int(st.get("readyReplicas") or 0),
                     "available": int(st.get("availableReplicas") or 0), "images": images,
                     "pods": sorted((pod_row(p, now) for p in mine), key=lambda r: r["name"])})
    return sorted(rows, key=lambda r: -r["revision"])

"""One clear message when the kubeconfig cannot be used, checked before the client library
loads it (its errors name internals such as "Expected key current-context", and it logs a
second line of its own).

Pure but for reading the files: unit-tested with temporary files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HINT = "pass --kubeconfig FILE or set $KUBECONFIG (kubectl's kubeconfig works)"


def _where(kubeconfig: str | None, env: Mapping[str, str]) -> str:
    if kubeconfig is None:
        return "the default kubeconfig"
    return "$KUBECONFIG" if env.get("KUBECONFIG") == kubeconfig else "--kubeconfig"


def kubeconfig_problem(kubeconfig: str | None, context: str | None, *,
                       env: Mapping[str, str] | None = None, home: str | None = None) -> str | None:
    """None when the kubeconfig (or the in-cluster service account) can be used, else a
    message saying what is wrong and what to do."""
    env = os.environ if env is None else env
    if kubeconfig is None and env.get("KUBERNETES_SERVICE_HOST"):
        return None  # in a pod: the service account's credentials (make_api_client's choice)
    where = _where(kubeconfig, env)
    if kubeconfig is None:
        kubeconfig = str(Path(home or Path.home()) / ".kube" / "config")
    paths = [p for p in kubeconfig.split(os.pathsep) if p]
    if not paths:
        return f"no kubeconfig: {where} is empty; {HINT}"
    docs: list[tuple[str, dict[str, Any]]] = []
    for p in paths:
        doc_or_error = _read(p)
        if isinstance(doc_or_error, str):
            if doc_or_error == "missing":
                continue  # kubectl skips a missing file of a $KUBECONFIG list
            return f"cannot use kubeconfig {p} (from {where}): {doc_or_error}; {HINT}"
        docs.append((p, doc_or_error))
    shown = ", ".join(paths)
    if not docs:
        return f"no kubeconfig: {shown} (from {where}) does not exist; {HINT}"
    contexts = [str(c.get("name")) for _, d in docs for c in d.get("contexts") or []
                if isinstance(c, dict) and c.get("name")]
    if not contexts:
        return f"kubeconfig {shown} (from {where}) defines no context; {HINT}"
    wanted = context or next((str(d["current-context"]) for _, d in docs
                              if d.get("current-context")), None)
    if wanted is None:
        return (f"kubeconfig {shown} (from {where}) has no current context; pass --context NAME "
                f"(contexts: {', '.join(contexts)})")
    if wanted not in contexts:
        how = "--context" if context else "its current-context"
        return (f"context {wanted!r} ({how}) is not in kubeconfig {shown}; "
                f"contexts: {', '.join(contexts)}")
    return None


def _read(path: str) -> dict[str, Any] | str:
    """The parsed file, "missing", or what is wrong with it."""
    import yaml

    p = Path(path)
    if not p.exists():
        return "missing"
    if p.is_dir():
        return "it is a directory"
    try:
        text = p.read_text()
    except PermissionError:
        return "permission denied"
    except (OSError, UnicodeDecodeError) as e:
        return f"unreadable ({e})"
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        return "not valid YAML" + (f" (line {mark.line + 1})" if mark is not None else "")
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        return "not a kubeconfig (expected a mapping with contexts, clusters, users)"
    return doc

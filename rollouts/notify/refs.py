"""References from the notifications ConfigMap to values kept in Secrets (pure).

Every credential a receiver needs (a webhook URL, an SMTP password, a PagerDuty routing
key, an Opsgenie API key) is written ``field: {secretKeyRef: {name, key}}`` and read from
a Secret in the controller's namespace; an inline string is refused, so secrets never sit
in a ConfigMap that many can read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str


def secret_ref(d: dict[str, Any], fieldname: str, where: str, errors: list[str],
               *, required: bool = True) -> tuple[bool, SecretRef | None]:
    """(valid, ref) for ``d[fieldname]``; an absent optional field is (True, None)."""
    v = d.get(fieldname)
    if v is None and not required:
        return True, None
    if isinstance(v, str):
        errors.append(f"{where}: {fieldname} must come from a Secret "
                      f"({fieldname}: {{secretKeyRef: {{name, key}}}}), never inline")
        return False, None
    ref = v.get("secretKeyRef") if isinstance(v, dict) else None
    if not (isinstance(ref, dict) and isinstance(ref.get("name"), str) and ref["name"]
            and isinstance(ref.get("key"), str) and ref["key"]):
        errors.append(f"{where}: {fieldname}.secretKeyRef needs name and key")
        return False, None
    return True, SecretRef(ref["name"], ref["key"])

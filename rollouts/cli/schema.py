"""Offline checks of an object against a CRD's openAPIV3Schema (structural schemas only).

Covers what the API server checks before CEL: types, required fields, enums, bounds,
lengths, patterns, int-or-string and unknown fields (which a strict apply rejects). The
``x-kubernetes-validations`` rules are CEL and are not evaluated here; ``parse_spec``
makes the same checks on the spec.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

Path = tuple[str | int, ...]
TYPES: dict[str, tuple[type, ...]] = {"object": (dict,), "array": (list,), "string": (str,),
                                      "integer": (int,), "number": (int, float),
                                      "boolean": (bool,)}


def _type_ok(value: Any, t: str) -> bool:
    if isinstance(value, bool) and t in ("integer", "number"):
        return False
    return isinstance(value, TYPES.get(t, (object,)))


def _name(v: Any) -> str:
    return "null" if v is None else {dict: "object", list: "array", str: "string", bool: "boolean",
                                     int: "integer", float: "number"}.get(type(v), type(v).__name__)


def validate(value: Any, schema: dict[str, Any], path: Path = ()) -> Iterator[tuple[Path, str]]:
    """(path, message) for each violation."""
    if value is None:
        if not schema.get("nullable") and schema.get("type"):
            yield path, f"must be {schema['type']}, got null"
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not (_type_ok(value, "integer") or isinstance(value, str)):
            yield path, f"must be an integer or a string, got {_name(value)}"
            return
    elif (t := schema.get("type")) and not _type_ok(value, t):
        yield path, f"must be {'an' if t[0] in 'aeiou' else 'a'} {t}, got {_name(value)} {value!r}"[:200]
        return
    if "enum" in schema and value not in schema["enum"]:
        yield path, f"must be one of {', '.join(map(str, schema['enum']))}, got {value!r}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            yield path, f"must be >= {schema['minimum']}, got {value}"
        if "maximum" in schema and value > schema["maximum"]:
            yield path, f"must be <= {schema['maximum']}, got {value}"
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            yield path, f"must be at least {schema['minLength']} characters long"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            yield path, f"must be at most {schema['maxLength']} characters long"
        if "pattern" in schema and not re.search(schema["pattern"], value):
            yield path, f"must match {schema['pattern']}, got {value!r}"
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            yield path, f"must have at least {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            yield path, f"must have at most {schema['maxItems']} items"
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                yield from validate(item, schema["items"], (*path, i))
    if isinstance(value, dict):
        yield from _object(value, schema, path)


def _object(value: dict[str, Any], schema: dict[str, Any], path: Path) -> Iterator[tuple[Path, str]]:
    props: dict[str, Any] = schema.get("properties") or {}
    for req in schema.get("required") or []:
        if req not in value:
            yield path, f"missing required field {req!r}"
    extra = schema.get("additionalProperties")
    open_ = schema.get("x-kubernetes-preserve-unknown-fields") or (not props and extra is None)
    for k, v in value.items():
        if k in props:
            yield from validate(v, props[k], (*path, k))
        elif isinstance(extra, dict):
            yield from validate(v, extra, (*path, k))
        elif not open_:
            known = ", ".join(sorted(props)) or "none"
            yield (*path, k), f"unknown field {k!r} (known: {known})"


def path_text(path: Path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(document)"


def parse_path(text: str) -> Path:
    """``spec.steps[2].pause`` -> ("spec", "steps", 2, "pause")."""
    out: list[str | int] = []
    for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]", text):
        out.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
    return tuple(out)

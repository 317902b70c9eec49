"""Offline checks of an object against a CRD's openAPIV3Schema, as the API server makes them.

The server's order is kept because it changes verdicts: unknown fields are refused (a
strict apply, kubectl's default), nulls of non-nullable fields are dropped and defaults
filled in, then the structural checks (types, required, enums, bounds, lengths, patterns,
formats) run, and then the ``x-kubernetes-validations`` CEL rules, evaluated on the
pruned and defaulted object. Like the server, no CEL rule runs while a value has the wrong
type or is not one of its enum's.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

Path = tuple[str | int, ...]
TYPES: dict[str, tuple[type, ...]] = {"object": (dict,), "array": (list,), "string": (str,),
                                      "integer": (int,), "number": (int, float),
                                      "boolean": (bool,)}
# RFC 3339, what the server's date-time format accepts
DATE_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class Violation:
    path: Path
    message: str
    blocks_cel: bool = False  # a wrong type or enum value: the server then skips CEL


def _type_ok(value: Any, t: str) -> bool:
    if isinstance(value, bool) and t in ("integer", "number"):
        return False
    if t == "integer" and isinstance(value, int) and not -2**63 <= value < 2**63:
        return False  # the server reads a larger integer as a number, not an integer
    return isinstance(value, TYPES.get(t, (object,)))


def _name(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool) and not -2**63 <= v < 2**63:
        return "number (beyond 64 bits)"
    return "null" if v is None else {dict: "object", list: "array", str: "string", bool: "boolean",
                                     int: "integer", float: "number"}.get(type(v), type(v).__name__)


def _date_time_ok(v: str) -> bool:
    if not DATE_TIME_RE.match(v):
        return False
    try:
        datetime.fromisoformat(v[:19].replace("t", "T").replace(" ", "T"))
    except ValueError:
        return False
    return True


def _pruned_null(value: Any, schema: dict[str, Any]) -> bool:
    """The server drops a null field unless its schema says nullable."""
    return value is None and not schema.get("nullable")


def _walk(value: Any, schema: dict[str, Any], path: Path) -> Iterator[Violation]:
    if value is None:
        if not schema.get("nullable") and schema.get("type"):
            yield Violation(path, f"must be {schema['type']}, got null", True)
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not (_type_ok(value, "integer") or isinstance(value, str)):
            yield Violation(path, f"must be an integer or a string, got {_name(value)}", True)
            return
    elif (t := schema.get("type")) and not _type_ok(value, t):
        msg = f"must be {'an' if t[0] in 'aeiou' else 'a'} {t}, got {_name(value)} {value!r}"
        yield Violation(path, msg[:200], True)
        return
    if "enum" in schema and value not in schema["enum"]:
        yield Violation(path, f"must be one of {', '.join(map(str, schema['enum']))}, got {value!r}",
                        True)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            yield Violation(path, f"must be >= {schema['minimum']}, got {value}")
        if "maximum" in schema and value > schema["maximum"]:
            yield Violation(path, f"must be <= {schema['maximum']}, got {value}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            yield Violation(path, f"must be at least {schema['minLength']} characters long")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            yield Violation(path, f"must be at most {schema['maxLength']} characters long")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            yield Violation(path, f"must match {schema['pattern']}, got {value!r}")
        if schema.get("format") == "date-time" and not _date_time_ok(value):
            yield Violation(path, f"must be an RFC 3339 date-time like 2024-05-01T12:00:00Z, "
                                  f"got {value!r}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            yield Violation(path, f"must have at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            yield Violation(path, f"must have at most {schema['maxItems']} items")
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                yield from _walk(item, schema["items"], (*path, i))
    if isinstance(value, dict):
        yield from _object(value, schema, path)


def _object(value: dict[str, Any], schema: dict[str, Any], path: Path) -> Iterator[Violation]:
    props: dict[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    present = {k: v for k, v in value.items()
               if not (k in props and _pruned_null(v, props[k]))
               and not (k not in props and isinstance(extra, dict) and _pruned_null(v, extra))}
    for req in schema.get("required") or []:
        if req not in present and "default" not in (props.get(req) or {}):
            yield Violation(path, f"missing required field {req!r}")
    n = len(present)
    if "maxProperties" in schema and n > schema["maxProperties"]:
        yield Violation(path, f"must have at most {schema['maxProperties']} fields, got {n}")
    if "minProperties" in schema and n < schema["minProperties"]:
        yield Violation(path, f"must have at least {schema['minProperties']} fields, got {n}")
    open_ = schema.get("x-kubernetes-preserve-unknown-fields") or (not props and extra is None)
    for k, v in present.items():
        if k in props:
            yield from _walk(v, props[k], (*path, k))
        elif isinstance(extra, dict):
            yield from _walk(v, extra, (*path, k))
        elif not open_:
            known = ", ".join(sorted(props)) or "none"
            yield Violation((*path, k), f"unknown field {k!r} (known: {known})")


def validate(value: Any, schema: dict[str, Any], path: Path = ()) -> Iterator[tuple[Path, str]]:
    """(path, message) for each structural violation (no CEL)."""
    for v in _walk(value, schema, path):
        yield v.path, v.message


def normalize(value: Any, schema: dict[str, Any]) -> Any:
    """The object as the server stores it: unknown fields and non-nullable nulls pruned,
    defaults filled in. CEL rules see this, not the manifest."""
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [normalize(v, schema["items"]) for v in value]
    if not isinstance(value, dict):
        return value
    props: dict[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields") or (not props and extra is None)
    out: dict[str, Any] = {}
    for k, v in value.items():
        sub = props.get(k) if k in props else extra if isinstance(extra, dict) else None
        if sub is not None:
            if not _pruned_null(v, sub):
                out[k] = normalize(v, sub)
        elif keep_unknown:
            out[k] = v
    for k, sub in props.items():
        if k not in out and "default" in sub:
            out[k] = normalize(copy.deepcopy(sub["default"]), sub)
    return out


@cache
def _program(rule: str) -> Any:
    import cel  # the CEL runtime loads only when a rule is checked (lint, not every command)

    return cel.compile(rule)


def _rule_violations(value: Any, schema: dict[str, Any], path: Path) -> Iterator[Violation]:
    for r in schema.get("x-kubernetes-validations") or []:
        rule = r.get("rule") if isinstance(r, dict) else None
        if not isinstance(rule, str) or re.search(r"\boldSelf\b", rule):
            continue  # transition rules apply to updates only
        try:
            ok = _program(rule).execute({"self": value})
        except Exception as e:  # the server refuses an object whose rule cannot be evaluated
            yield Violation(path, f"rule {rule!r} could not be evaluated: {e}")
            continue
        if ok is not True:
            yield Violation(path, str(r.get("message") or f"failed rule: {rule}"))


def cel_violations(value: Any, schema: dict[str, Any], path: Path = ()) -> Iterator[Violation]:
    """The x-kubernetes-validations rules over a normalized object, outermost first."""
    if value is None:
        return
    yield from _rule_violations(value, schema, path)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from cel_violations(item, schema["items"], (*path, i))
    elif isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            sub = props.get(k) if k in props else extra if isinstance(extra, dict) else None
            if sub is not None:
                yield from cel_violations(v, sub, (*path, k))


def check(value: Any, schema: dict[str, Any]) -> list[tuple[Path, str]]:
    """Everything the API server's validation of a custom resource would refuse."""
    structural = list(_walk(value, schema, ()))
    out = [(v.path, v.message) for v in structural]
    if not any(v.blocks_cel for v in structural):
        out += [(v.path, v.message) for v in cel_violations(normalize(value, schema), schema)]
    return out


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

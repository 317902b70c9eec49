"""Typed readers of a raw Kubernetes object's fields, shared by the spec parsers
(``rollouts.api.spec``, ``rollouts.api.routing``).

Each one returns the value or a fallback and appends an error naming the field
(``<path>.<key> ...``) when the value has the wrong type; none raises. An absent field
(or ``null``) is never an error here: the caller knows whether it is required.
"""

from __future__ import annotations

from typing import Any

INT32_MAX = 2**31 - 1  # every integer field is an int32 in the CRD (and in Argo)


def obj(v: Any, path: str, errors: list[str]) -> dict[str, Any] | None:
    """An object, or None when absent or not an object."""
    if v is None:
        return None
    if not isinstance(v, dict):
        errors.append(f"{path} must be an object, got {type(v).__name__}")
        return None
    return v


def as_dict(v: Any, path: str, errors: list[str]) -> dict[str, Any]:
    """An object, or {} when absent or not an object."""
    d = obj(v, path, errors)
    return {} if d is None else d


def opt_str(d: dict[str, Any], key: str, path: str, errors: list[str]) -> str | None:
    """A non-empty string, or None when absent, empty or not a string."""
    v = d.get(key)
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        errors.append(f"{path}.{key} must be a string, got {v!r}")
        return None
    return v


def required_str(d: dict[str, Any], key: str, path: str, errors: list[str]) -> str | None:
    """As ``opt_str``, and an error when the field is absent or empty."""
    v = opt_str(d, key, path, errors)
    if v is None and d.get(key) in (None, ""):
        errors.append(f"{path}.{key} is required")
    return v


def opt_int(d: dict[str, Any], key: str, path: str, errors: list[str], lo: int,
            hi: int) -> int | None:
    """An integer in lo..hi, or None when absent or not one."""
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        errors.append(f"{path}.{key} must be an integer {lo}..{hi}, got {v!r}")
        return None
    return v


def int_field(d: dict[str, Any], key: str, default: int, errors: list[str], path: str,
              lo: int = 0, hi: int = INT32_MAX) -> int:
    """An integer in lo..hi, or ``default`` when absent or not one."""
    v = d.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        errors.append(f"{path}.{key} must be an integer, got {v!r}")
        return default
    if v < lo or v > hi:
        rng = f">= {lo}" if v < lo and hi == INT32_MAX else f"{lo}..{hi}"
        errors.append(f"{path}.{key} must be {rng}, got {v}")
        return default
    return v


def bool_field(d: dict[str, Any], key: str, errors: list[str], path: str) -> bool:
    """true or false; False when absent or not a boolean."""
    v = d.get(key, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        errors.append(f"{path}.{key} must be true or false, got {v!r}")
        return False
    return v

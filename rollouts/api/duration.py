"""Argo-style durations: an integer number of seconds, or "250ms", "30s", "5m", "1h"."""

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}
_RE = re.compile(r"^(\d+)(ms|s|m|h)?$")


def parse_duration(value: object) -> float:
    """Seconds for ``value``; ValueError with the offending value otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        return float(value)
    if isinstance(value, str):
        m = _RE.match(value.strip())
        if m:
            return int(m.group(1)) * _UNITS[m.group(2) or ""]
    raise ValueError(f"invalid duration {value!r}: use seconds (600) or 30s, 5m, 1h")

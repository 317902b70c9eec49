"""Durations and ages the way kubectl prints them: ``45s``, ``5m``, ``1h30m``, ``2d3h``.

One format everywhere in the CLI's output, so a pause of 300 s, a timeout and an
object's age read alike (Go's and kubectl's compact style, at most two units).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def fmt_duration(seconds: float) -> str:
    """``300`` -> ``5m``, ``5400`` -> ``1h30m``, ``90061`` -> ``1d1h``, ``0.25`` -> ``250ms``.

    The two most significant units, the second left out when zero: exact for the
    durations people write (30s, 5m, 1h30m), short for ages."""
    if math.isnan(seconds):
        return "-"
    if math.isinf(seconds):
        return "forever"
    if seconds < 0:
        seconds = 0
    if 0 < seconds < 1:
        return f"{round(seconds * 1000)}ms"
    s = int(seconds)
    parts: list[str] = []
    for unit, n in _UNITS:
        if s >= n or (unit == "s" and not parts):
            parts.append(f"{s // n}{unit}")
            s %= n
        elif parts:  # a zero middle unit: stop, keeping "1h" rather than "1h0m5s"
            break
        if len(parts) == 2:
            break
    while len(parts) == 2 and parts[1].startswith("0"):
        parts.pop()
    return "".join(parts)


def parse_time(ts: Any) -> datetime | None:
    if not isinstance(ts, str) or not ts:
        return None
    try:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def age(ts: Any, now: datetime | None = None) -> str:
    """How long ago an RFC 3339 timestamp was, like kubectl's AGE column; ``-`` if unknown."""
    t = parse_time(ts)
    if t is None:
        return "-"
    return fmt_duration(max(0, int(((now or datetime.now(UTC)) - t).total_seconds())))

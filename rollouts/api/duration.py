"""Argo-style durations: an integer number of seconds, or "250ms", "30s", "5m", "1h".

The same grammar as the CRD's validation rule (``^[0-9]+(ms|s|m|h)?$`` or a non-negative
integer), bounded like Argo's int32 seconds so that a deadline computed from a duration
can never overflow a datetime.
"""

import re
from typing import Final

MAX_SECONDS: Final = 2**31 - 1  # ~68 years; Argo stores durations as int32 seconds

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}
_RE = re.compile(r"^([0-9]+)(ms|s|m|h)?$")
_HINT = "use seconds (600) or 250ms, 30s, 5m, 1h"


def parse_duration(value: object) -> float:
    """Seconds for ``value``; ValueError with the offending value otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: {_HINT}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        seconds = float(value)
    elif isinstance(value, str) and (m := _RE.match(value.strip())):
        seconds = int(m.group(1)) * _UNITS[m.group(2) or ""]
    else:
        raise ValueError(f"invalid duration {value!r}: {_HINT}")
    if seconds > MAX_SECONDS:
        raise ValueError(f"invalid duration {value!r}: longer than {MAX_SECONDS} seconds")
    return seconds

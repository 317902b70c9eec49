"""Which incident receivers (PagerDuty, Opsgenie) each active alert was opened at (pure).

The alerts themselves are ``AlertTracker``'s; this remembers where each was sent so the
resolve goes to the same receivers, and so a receiver subscribed later (a ConfigMap edit,
a new annotation) still gets the alerts already active. After a controller restart the
tracker rebuilds the alerts from status and they are opened again: PagerDuty's
``dedup_key`` and Opsgenie's ``alias`` make that a repeat of the same incident.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rollouts.notify.alerts import Alert

Identity = tuple[str, str, str, str]


class IncidentBook:
    def __init__(self) -> None:
        self.opened: dict[Identity, set[str]] = {}
        # receivers an alert could not be sent to for lack of credentials: counted once, and
        # tried again on each decision, so a Secret created later still gets the alert out
        self.missing: dict[Identity, set[str]] = {}

    def to_open(self, active: Iterable[Alert], changed: Iterable[Alert],
                wanted: Callable[[Alert], list[str]]) -> list[tuple[Alert, str]]:
        """(alert, receiver) to trigger: a changed alert at every receiver that wants it (its
        text changed), any other active alert only at receivers it was not opened at yet."""
        changed_ids = {a.identity for a in changed}
        return [(a, r) for a in active for r in wanted(a)
                if a.identity in changed_ids or r not in self.opened.get(a.identity, set())]

    def sent(self, a: Alert, receiver: str) -> None:
        self.opened.setdefault(a.identity, set()).add(receiver)
        self.missing.get(a.identity, set()).discard(receiver)

    def unsent(self, a: Alert, receiver: str) -> bool:
        """Record a trigger that could not be sent; True the first time (count it then)."""
        seen = self.missing.setdefault(a.identity, set())
        first = receiver not in seen
        seen.add(receiver)
        return first

    def to_close(self, resolved: Iterable[Alert]) -> list[tuple[Alert, str]]:
        """Only where the alert was opened: there is nothing to resolve elsewhere."""
        out: list[tuple[Alert, str]] = []
        for a in resolved:
            self.missing.pop(a.identity, None)
            out += [(a, r) for r in sorted(self.opened.pop(a.identity, set()))]
        return out

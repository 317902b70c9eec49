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

    def to_open(self, active: Iterable[Alert], changed: Iterable[Alert],
                wanted: Callable[[Alert], list[str]]) -> list[tuple[Alert, str]]:
        """(alert, receiver) to trigger: a changed alert at every receiver that wants it (its
        text changed), any other active alert only at receivers it was not opened at yet."""
        out: list[tuple[Alert, str]] = []
        changed_ids = {a.identity for a in changed}
        for a in active:
            have = self.opened.setdefault(a.identity, set())
            for r in wanted(a):
                if r not in have or a.identity in changed_ids:
                    out.append((a, r))
                    have.add(r)
        return out

    def to_close(self, resolved: Iterable[Alert]) -> list[tuple[Alert, str]]:
        return [(a, r) for a in resolved for r in sorted(self.opened.pop(a.identity, set()))]

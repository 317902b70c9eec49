"""Exit codes of the `rollouts` command, one meaning each (documented in docs/cli.md)."""

from typing import Final

OK: Final = 0
# `status`: the rollout is Degraded (aborted, failed analysis, progress deadline);
# `lint`: at least one file has errors; otherwise a generic failure.
FAILED: Final = 1
USAGE: Final = 2  # bad flags or arguments (click's convention)
TIMEOUT: Final = 3  # `status --timeout` or an action's wait ran out
KUBE_ERROR: Final = 4  # not found, forbidden, the API server unreachable, bad kubeconfig
REJECTED: Final = 5  # the action does not apply now (HTTP 409), or the controller rejected it

PHASE_EXIT: Final = {"Healthy": OK, "Degraded": FAILED}


def status_exit(settled: str | None) -> int:
    """The exit code of `rollouts status` for a settled phase; None means it timed out."""
    return TIMEOUT if settled is None else PHASE_EXIT.get(settled, FAILED)

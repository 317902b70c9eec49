"""What a failed API answer says: the Status message when there is one, a plain sentence
when the body is not JSON (a path the API server does not serve answers "404 page not
found"), never a JSONDecodeError that hides the status."""

from __future__ import annotations

import asyncio
import logging

import pytest

from rollouts.controller.manager import wait_synced
from rollouts.kube.client import KubeError, error_of


def test_a_status_body_gives_its_message() -> None:
    e = error_of(403, b'{"kind":"Status","message":"rollouts is forbidden","code":403}', "Forbidden",
                 "/apis/rollouts.dev/v1alpha1/rollouts")
    assert e.status == 403 and e.message == "rollouts is forbidden"
    assert isinstance(e.body, dict)


def test_a_path_not_served_says_so_and_points_at_the_crds() -> None:
    # Regression: the informer logged "JSONDecodeError: Extra data: line 1 column 5".
    e = error_of(404, b"404 page not found\n", "Not Found",
                 "/apis/rollouts.dev/v1alpha1/namespaces/a/rollouts?watch=true")
    assert e.not_found
    assert e.message == ("the API server does not serve /apis/rollouts.dev/v1alpha1/namespaces/"
                         "a/rollouts (is the CRD installed? kubectl apply -f crds/)")


def test_a_non_json_body_is_quoted_not_parsed() -> None:
    e = error_of(502, b"<html>bad gateway</html>", "Bad Gateway", "/api/v1/pods")
    assert e.status == 502 and e.message == "<html>bad gateway</html>" and e.body is None
    assert error_of(500, b"", "Internal Server Error", "/api/v1/pods").message == \
        "Internal Server Error"


class _Informer:
    def __init__(self, plural: str) -> None:
        self.synced = asyncio.Event()
        self.last_error: Exception | None = None
        self.resource = type("R", (), {"plural": plural})()


async def test_waiting_for_caches_says_why_and_never_gives_up(caplog: pytest.LogCaptureFixture) -> None:
    # Regression: after 60 s the controller died with a bare TimeoutError.
    ok, blocked = _Informer("replicasets"), _Informer("rollouts")
    ok.synced.set()
    blocked.last_error = KubeError(403, "rollouts is forbidden")
    stop = asyncio.Event()
    caplog.set_level(logging.WARNING)
    task = asyncio.create_task(wait_synced([ok, blocked], unless=[stop],  # type: ignore[list-item]
                                           first=0.05, every=0.05))
    await asyncio.sleep(0.3)
    assert not task.done()
    assert "cannot start: rollouts not listed yet: HTTP 403: rollouts is forbidden" in caplog.text
    assert "replicasets" not in caplog.text
    blocked.synced.set()
    assert await asyncio.wait_for(task, 1) is True


async def test_waiting_for_caches_ends_on_stop() -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(wait_synced([_Informer("rollouts")], unless=[stop],  # type: ignore[list-item]
                                           first=10, every=10))
    await asyncio.sleep(0.05)
    stop.set()
    assert await asyncio.wait_for(task, 1) is False

"""A kubeconfig the CLI cannot use gets one clear message and exit code 4, before any
connection is tried (before: the client library's "Invalid kube-config file. Expected key
current-context" plus a logged "Config not found" line)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rollouts.cli import exitcodes
from rollouts.cli.kubeconfig import kubeconfig_problem

GOOD = """apiVersion: v1
kind: Config
current-context: dev
contexts:
- name: dev
  context: {cluster: c, user: u}
- name: prod
  context: {cluster: c, user: u}
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
"""


def write(tmp_path: Path, text: str, name: str = "config") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_a_usable_kubeconfig_passes(tmp_path: Path) -> None:
    kc = write(tmp_path, GOOD)
    assert kubeconfig_problem(kc, None, env={}) is None
    assert kubeconfig_problem(kc, "prod", env={}) is None
    # in a pod with no kubeconfig given: the service account is used
    assert kubeconfig_problem(None, None, env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"},
                              home=str(tmp_path / "nohome")) is None


def test_missing_file_names_the_path_and_where_it_came_from(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    msg = kubeconfig_problem(missing, None, env={"KUBECONFIG": missing})
    assert msg is not None and missing in msg and "does not exist" in msg and "$KUBECONFIG" in msg
    msg = kubeconfig_problem(None, None, env={}, home=str(tmp_path))
    assert msg is not None and f"{tmp_path}/.kube/config" in msg and "default kubeconfig" in msg
    msg = kubeconfig_problem(missing, None, env={})
    assert msg is not None and "--kubeconfig" in msg


def test_a_kubeconfig_list_skips_missing_files_like_kubectl(tmp_path: Path) -> None:
    kc = write(tmp_path, GOOD)
    assert kubeconfig_problem(f"{tmp_path}/nope{os.pathsep}{kc}", None, env={}) is None


@pytest.mark.parametrize("text, expected", [
    ("a: 1\ngarbage: [", "not valid YAML"),
    ("- a\n- b\n", "not a kubeconfig"),
    ("apiVersion: v1\nkind: Config\n", "defines no context"),
    (GOOD.replace("current-context: dev\n", ""), "has no current context; pass --context NAME "
                                                 "(contexts: dev, prod)"),
    (GOOD.replace("current-context: dev", "current-context: gone"),
     "context 'gone' (its current-context) is not in kubeconfig"),
])
def test_broken_kubeconfigs(tmp_path: Path, text: str, expected: str) -> None:
    msg = kubeconfig_problem(write(tmp_path, text), None, env={})
    assert msg is not None and expected in msg, msg


def test_unknown_context(tmp_path: Path) -> None:
    msg = kubeconfig_problem(write(tmp_path, GOOD), "staging", env={})
    assert msg == (f"context 'staging' (--context) is not in kubeconfig {tmp_path}/config; "
                   "contexts: dev, prod")


def test_the_command_prints_one_line_and_exits_4(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    env = {k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST",)}
    env.update(KUBECONFIG=missing, HOME=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "rollouts.cli.main", "get", "rollout", "demo"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == exitcodes.KUBE_ERROR == 4
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        f"error: no kubeconfig: {missing} (from $KUBECONFIG) does not exist; pass --kubeconfig "
        "FILE or set $KUBECONFIG (kubectl's kubeconfig works)"], r.stderr

"""Shell completion: rollout names for commands that take one (the namespace and
kubeconfig typed so far are used), and kubectl's plugin protocol (Cobra's __complete
answer, printed by kubectl_complete-rollouts). The cluster is replaced by a fake lister."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollouts.cli import completion
from rollouts.cli.completion import cobra_answer

REPO = Path(__file__).resolve().parents[2]
CALLS: list[tuple[str | None, str | None, str | None]] = []


@pytest.fixture(autouse=True)
def fake_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def lister(kubeconfig: str | None, context: str | None,
               namespace: str | None) -> list[tuple[str, str]]:
        CALLS.append((kubeconfig, context, namespace))
        return [("demo", "Paused"), ("checkout", "Healthy"), ("dashboard", "Progressing")]
    CALLS.clear()
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setattr(completion, "lister", lister)
    yield


def lines(answer: str) -> list[str]:
    return answer.splitlines()


@pytest.mark.parametrize("words", [
    ["get", "rollout", ""], ["promote", ""], ["abort", ""], ["status", ""], ["undo", ""],
    ["restart", ""], ["set", "image", ""]])
def test_every_command_taking_a_rollout_completes_its_name(words: list[str]) -> None:
    assert lines(cobra_answer(words)) == ["checkout\tHealthy", "dashboard\tProgressing",
                                          "demo\tPaused", ":4"]


def test_the_typed_prefix_filters() -> None:
    assert lines(cobra_answer(["get", "rollout", "d"])) == ["dashboard\tProgressing",
                                                           "demo\tPaused", ":4"]
    assert lines(cobra_answer(["promote", "x"])) == [":4"]


def test_namespace_context_and_kubeconfig_on_the_line_are_used() -> None:
    cobra_answer(["get", "rollout", "-n", "shop", "--context", "prod", "--kubeconfig", "/k", "d"])
    assert CALLS == [("/k", "prod", "shop")]


def test_commands_and_flags_complete_and_the_hidden_command_is_not_offered() -> None:
    top = [ln.split("\t")[0] for ln in lines(cobra_answer([""]))]
    assert {"get", "list", "promote", "abort", "retry", "lint"} <= set(top)
    assert not any(w.startswith("__") for w in top) and top[-1] == ":4"
    flags = [ln.split("\t")[0] for ln in lines(cobra_answer(["get", "rollout", "--"]))]
    assert {"--namespace", "--watch", "--kubeconfig", "--output"} <= set(flags)
    assert CALLS == []  # no cluster call to complete a flag


def test_a_kubeconfig_path_is_left_to_the_shell() -> None:
    assert cobra_answer(["get", "rollout", "--kubeconfig", ""]) == ":0\n"


def test_kubectl_complete_script_speaks_cobra(tmp_path: Path) -> None:
    """deploy/krew/kubectl_complete-rollouts (and the pip-installed executable of the same
    name) answer kubectl with the subcommands; no cluster needed for those."""
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
           "KUBECONFIG": str(tmp_path / "none")}
    for exe in (REPO / "deploy" / "krew" / "kubectl_complete-rollouts",
                bindir / "kubectl_complete-rollouts"):
        r = subprocess.run([str(exe), "get", "ro"], capture_output=True, text=True, env=env,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[0].startswith("rollout\t"), r.stdout
        assert r.stdout.splitlines()[-1] == ":4"
        # a rollout name with no usable kubeconfig: nothing offered, nothing printed to stderr
        r = subprocess.run([str(exe), "promote", ""], capture_output=True, text=True, env=env,
                           timeout=120)
        assert (r.returncode, r.stdout, r.stderr) == (0, ":4\n", "")


def test_the_installed_shell_completion_is_wired(tmp_path: Path) -> None:
    """What `rollouts --install-completion` sets up for bash calls the program this way."""
    env = {**os.environ, "_ROLLOUTS_COMPLETE": "complete_bash", "COMP_WORDS": "rollouts get rol",
           "COMP_CWORD": "2", "KUBECONFIG": str(tmp_path / "none")}
    r = subprocess.run([str(Path(sys.executable).parent / "rollouts")], capture_output=True,
                       text=True, env=env, timeout=120)
    assert (r.returncode, r.stdout.split()) == (0, ["rollout"]), r

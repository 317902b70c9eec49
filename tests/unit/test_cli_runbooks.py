"""The runbook commands in deploy/monitoring's alerting rules run as written: every
`kubectl rollouts ...` parses with this CLI (command, flags, arguments), and every plain
kubectl command names an object the manifests create. (Before, RolloutDegraded told the
user to run `kubectl rollouts get NAME -n NS`, which has no such subcommand.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.main import get_command

from rollouts.cli.main import app

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "monitoring" / "prometheus-rules.yml"
LABELS = {"rollout": "demo", "namespace": "shop", "metric": "errors", "type": "slack",
          "receiver": "chat"}


def alerts() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def commands(text: str) -> list[list[str]]:
    """Each line of a runbook, labels filled in, the trailing comment removed."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: LABELS[m.group(1)], line)
        line = line.split("  #", 1)[0].strip()
        if line:
            out.append(shlex.split(line))
    return out


def parse_with_this_cli(args: list[str]) -> None:
    """Parses like a run would (unknown flag, missing or extra argument, bad value: an
    error) without running the command."""
    cmd: Any = get_command(app)
    name = "rollouts"
    while hasattr(cmd, "get_command") and args:
        sub = cmd.get_command(typer.Context(cmd), args[0])
        assert sub is not None, f"no command {args[0]!r} under {name!r}"
        cmd, name, args = sub, f"{name} {args[0]}", args[1:]
    assert not hasattr(cmd, "get_command"), f"{name!r} needs a subcommand"
    ctx = cmd.make_context(name, list(args))
    ctx.close()


def manifests() -> list[dict[str, Any]]:
    docs = []
    for f in sorted((REPO / "deploy").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return docs


def crd_plurals() -> set[str]:
    out = set()
    for f in (REPO / "crds").glob("*.yaml"):
        for d in yaml.safe_load_all(f.read_text()):
            if d and d.get("kind") == "CustomResourceDefinition":
                out.add(d["spec"]["names"]["plural"])
    return out


def check_kubectl(args: list[str]) -> None:
    """The plain kubectl commands the runbooks use, each against what deploy/ creates."""
    ns = args[args.index("-n") + 1] if "-n" in args else None
    if args[0] == "logs":
        (target,) = [a for a in args[1:] if a.startswith("deploy/")]
        assert any(d["kind"] == "Deployment" and d["metadata"]["name"] == target[7:]
                   and d["metadata"].get("namespace") == ns for d in manifests()), args
    elif args[:2] == ["get", "analysisruns"]:
        assert "analysisruns" in crd_plurals()
        from rollouts.cli.fetch import ROLLOUT_LABEL

        selector = args[args.index("-l") + 1]
        assert selector.split("=")[0] == ROLLOUT_LABEL, "the label the controller puts on runs"
    elif args[:2] == ["get", "configmap"]:
        group: Any = get_command(app)
        ctl = group.get_command(typer.Context(group), "controller")
        (default,) = [p.default for p in ctl.params if p.name == "notifications_configmap"]
        name = next(a for a in args[2:] if not a.startswith("-") and a not in (ns, "yaml"))
        assert name == default, f"{name} is not the controller's notifications ConfigMap"
        assert ns == "rollouts-system"
    else:
        pytest.fail(f"no check for kubectl {' '.join(args)}: add one here")


@pytest.mark.parametrize("alert", [a["alert"] for a in alerts()])
def test_every_runbook_command_runs(alert: str) -> None:
    (rule,) = [a for a in alerts() if a["alert"] == alert]
    cmds = commands(rule["annotations"].get("runbook", ""))
    assert cmds, f"{alert} has no runbook"
    for words in cmds:
        assert words[0] == "kubectl", words
        if words[1] == "rollouts":
            parse_with_this_cli(words[2:])
        else:
            check_kubectl(words[1:])
    # the description's inline command too
    for inline in re.findall(r"`(kubectl rollouts [^`]+)`", rule["annotations"]["description"]):
        parse_with_this_cli(commands(inline)[0][2:])


def test_the_checker_catches_what_was_shipped_before() -> None:
    with pytest.raises(Exception, match=r"Missing|No such|needs a subcommand|no command"):
        parse_with_this_cli(["get", "demo", "-n", "shop"])  # `kubectl rollouts get NAME`
    with pytest.raises(Exception, match="No such option"):
        parse_with_this_cli(["promote", "demo", "--namespaces", "shop"])
    with pytest.raises(Exception, match="extra argument"):
        parse_with_this_cli(["abort", "demo", "shop"])
    parse_with_this_cli(["get", "rollout", "demo", "-n", "shop"])


def test_the_prometheusrule_object_carries_the_same_rules() -> None:
    obj = yaml.safe_load((REPO / "deploy" / "monitoring" / "prometheusrule.yaml").read_text())
    assert obj["spec"] == yaml.safe_load(RULES.read_text())

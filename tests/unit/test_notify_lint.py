"""`rollouts lint` checks the notifications ConfigMap as the controller reads it: every
receiver type's fields, with the line of the broken entry."""

from __future__ import annotations

from rollouts.cli.lint import lint_text

CM = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: rollouts-notifications
data:
  receiver.oncall: |
    type: pagerdutyv2
    routingKey: {secretKeyRef: {name: notif, key: pd}}
  receiver.ops: |
    type: opsgenie
    apiKey: my-inline-key
  receiver.mail: |
    type: email
    host: smtp.example.com
    from: rollouts@example.com
    to: []
  subscriptions: |
    - triggers: [on-rollout-aborted]
      receivers: [oncall, ops, nobody]
"""


def test_lint_reports_bad_receivers_at_their_lines() -> None:
    findings, _ = lint_text(CM, "cm.yaml")
    got = [(f.line, f.kind, f.name, f.source, f.message.split(":")[0]) for f in findings]
    assert got == [
        (9, "ConfigMap", "rollouts-notifications", "controller", "receiver.ops"),
        (12, "ConfigMap", "rollouts-notifications", "controller", "receiver.mail"),
        (17, "ConfigMap", "rollouts-notifications", "controller", "subscriptions[0]"),
    ], got
    msgs = " | ".join(f.message for f in findings)
    assert "apiKey must come from a Secret" in msgs and "to must be a list" in msgs
    assert "unknown receivers ops, nobody" in msgs  # left out, so unknown to subscriptions


def test_lint_passes_a_good_configmap_and_ignores_other_configmaps() -> None:
    good = CM.split("  receiver.ops:")[0] + ("  subscriptions: |\n    - triggers: ['*']\n"
                                             "      receivers: [oncall]\n")
    assert lint_text(good, "cm.yaml")[0] == []
    other = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config}\ndata: {receiver: x}\n"
    assert lint_text(other, "cm.yaml")[0] == []

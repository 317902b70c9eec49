"""The `rollouts` command (also `kubectl rollouts`). Imports stay lazy: no scipy, numpy,
Kubernetes client or controller modules are loaded until a command needs them."""

from __future__ import annotations

import typer

from rollouts.cli import cmd_actions, cmd_analyze, cmd_experiment, cmd_lint, cmd_read, cmd_spec

app = typer.Typer(help="Progressive delivery for Kubernetes: canary rollouts over Istio.",
                  no_args_is_help=True, pretty_exceptions_enable=False,
                  epilog="Exit codes: 0 ok; 1 failed (status: Degraded; lint: errors); 2 usage; "
                         "3 timed out; 4 not found, forbidden or API unreachable; "
                         "5 action rejected (does not apply now). See docs/cli.md.")


@app.callback()
def main() -> None:
    """Progressive delivery for Kubernetes: canary rollouts over Istio.

    Exit codes: 0 ok; 1 failed (status: Degraded; lint: errors); 2 usage; 3 timed out;
    4 not found, forbidden or API unreachable; 5 action rejected (does not apply now).
    """


app.add_typer(cmd_read.list_app, name="list", rich_help_panel="Observe")
app.add_typer(cmd_read.get_app, name="get", rich_help_panel="Observe")
cmd_read.get_app.command("experiment")(cmd_experiment.get_experiment)
app.command("status", rich_help_panel="Observe")(cmd_read.status)
cmd_actions.register(app)
app.command("undo", rich_help_panel="Change the spec")(cmd_spec.undo)
app.command("restart", rich_help_panel="Change the spec")(cmd_spec.restart)
app.add_typer(cmd_spec.set_app, name="set", rich_help_panel="Change the spec")
app.command("lint", rich_help_panel="Offline")(cmd_lint.lint)
app.command("analyze", rich_help_panel="Offline")(cmd_analyze.analyze)


@app.command("__complete", hidden=True,
             context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def complete(args: list[str] = typer.Argument(None)) -> None:
    """Cobra's completion protocol, for `kubectl rollouts <TAB>` (kubectl_complete-rollouts)."""
    from rollouts.cli.completion import complete_command

    complete_command(list(args or []))


@app.command(rich_help_panel="Offline")
def version() -> None:
    """Print the version of this command (and plugin)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as pkg_version

    try:
        print(f"rollouts {pkg_version('rollouts')}")
    except PackageNotFoundError:
        print("rollouts (not installed)")


@app.command(rich_help_panel="Run")
def controller(
    kubeconfig: str = typer.Option(None, help="kubeconfig file (default: in-cluster or $KUBECONFIG)"),
    context: str = typer.Option(None, help="kubeconfig context"),
    namespace: str = typer.Option(None, "--namespace", "-n", help="watch one namespace (default: all)"),
    workers: int = typer.Option(4, help="concurrent reconciles (step work first, then new work)"),
    urgent_workers: int = typer.Option(
        2, help="further concurrent reconciles of step work only (a rollout whose pods or "
                "analysis changed, a timer), so it never waits for workers busy with new work"),
    leader_elect: bool = typer.Option(False, help="run for leadership on a Lease before acting"),
    lease_namespace: str = typer.Option("default", help="namespace of the leader-election Lease"),
    lease_name: str = typer.Option("rollouts-controller", help="name of the Lease"),
    lease_duration: str = typer.Option(
        "15s", "--leader-election-lease-duration", metavar="DURATION",
        help="a standby takes the Lease over after it has not changed for this long"),
    renew_deadline: str = typer.Option(
        "10s", "--leader-election-renew-deadline", metavar="DURATION",
        help="the leader stops acting when it could not renew for this long"),
    retry_period: str = typer.Option(
        "2s", "--leader-election-retry-period", metavar="DURATION",
        help="a standby, or a leader whose renewal failed, tries again this often"),
    renew_period: str = typer.Option(
        "", "--leader-election-renew-period", metavar="DURATION", show_default=False,
        help="a leader renews this often (client-go: every retry period; a Lease renewal is "
             "all an idle controller sends) [default: 5s, or half the renew deadline when "
             "shorter, never below the retry period]"),
    listen: str = typer.Option("127.0.0.1:8443", help="address of the HTTP API, /metrics, /healthz "
                                                      "and /readyz (HTTPS unless --insecure-http)"),
    resync_seconds: float = typer.Option(
        900.0, help="re-check every rollout this often (a safety net: changes arrive by watch "
                    "and timers re-queue their own rollout; Argo's --rollout-resync)"),
    qps: float = typer.Option(40.0, help="at most this many API requests per second "
                                         "(client-side throttling; 0 for none)"),
    burst: int = typer.Option(80, help="requests allowed at once above --qps"),
    instance_id: str = typer.Option(
        "", help="act only on Rollouts labelled rollouts.dev/controller-instance-id=ID (default: "
                 "those without the label), so several controllers split a fleet; the Lease "
                 "name gets -ID appended"),
    tls_cert_file: str = typer.Option(None, help="serve HTTPS with this certificate (PEM), e.g. "
                                                 "tls.crt of a mounted kubernetes.io/tls Secret "
                                                 "(default: a self-signed one made at start)"),
    tls_key_file: str = typer.Option(None, "--tls-private-key-file", "--tls-key-file",
                                     help="the certificate's private key (PEM), e.g. tls.key"),
    insecure_http: bool = typer.Option(False, "--insecure-http",
                                       help="serve plain HTTP on --listen (bearer tokens in clear "
                                            "text: only behind a TLS-terminating proxy or mesh)"),
    audience: list[str] = typer.Option(
        [], "--audience", help="also accept tokens minted for this audience (kubectl create token "
                               "--audience=...), besides the API server's (repeatable)"),
    metrics_listen: str = typer.Option(
        "", help="also serve /metrics, /healthz and /readyz in plain HTTP without authentication "
                 "on this address (e.g. 127.0.0.1:8080 for a local scraper); '' for none"),
    alertmanager_url: list[str] = typer.Option(
        [], "--alertmanager-url", help="Alertmanager base URL for rollout alerts (repeatable)"),
    notifications_configmap: str = typer.Option(
        "rollouts-notifications", help="ConfigMap of notification receivers and subscriptions "
        "in the controller's namespace ('' for none)"),
    controller_namespace: str = typer.Option(
        None, help="the controller's own namespace (default: $POD_NAMESPACE or rollouts-system)"),
    alert_resend_seconds: float = typer.Option(60.0, help="re-send active alerts this often"),
    rollout_alertmanager_urls: bool = typer.Option(
        True, help="honour the notifications.rollouts.dev/alertmanager-url annotation on Rollouts"),
) -> None:
    """Run the controller (and its HTTP API)."""
    from rollouts.controller.manager import ControllerOptions, run_controller

    if (tls_cert_file is None) != (tls_key_file is None):
        raise typer.BadParameter("--tls-cert-file and --tls-private-key-file go together")
    timings = _lease_timings(lease_duration=lease_duration, renew_deadline=renew_deadline,
                             retry_period=retry_period, renew_period=renew_period)
    if insecure_http and tls_cert_file:
        raise typer.BadParameter("--insecure-http and --tls-cert-file contradict each other")
    raise typer.Exit(run_controller(ControllerOptions(
        kubeconfig=kubeconfig, context=context, namespace=namespace, workers=workers,
        urgent_workers=urgent_workers,
        leader_elect=leader_elect, lease_namespace=lease_namespace, lease_name=lease_name,
        **timings,
        listen=listen, resync_seconds=resync_seconds, qps=qps, burst=burst,
        instance_id=instance_id, tls_cert_file=tls_cert_file,
        tls_key_file=tls_key_file, insecure_http=insecure_http, audiences=tuple(audience),
        metrics_listen=metrics_listen,
        alertmanager_urls=tuple(alertmanager_url), notifications_configmap=notifications_configmap,
        controller_namespace=controller_namespace, alert_resend_seconds=alert_resend_seconds,
        rollout_alertmanager_urls=rollout_alertmanager_urls)))


def _lease_timings(**flags: str) -> dict[str, float]:
    """The --leader-election-* durations in seconds, checked as the elector will use them."""
    from rollouts.api.duration import parse_duration
    from rollouts.kube.leader import default_renew_period

    out: dict[str, float] = {}
    for name, value in flags.items():
        flag = "--leader-election-" + name.replace("_", "-")
        if name == "renew_period" and not value:
            continue  # derived below from the others, as Argo has no such flag
        try:
            out[name] = parse_duration(value)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint=flag) from None
    if not out["retry_period"] < out["renew_deadline"] < out["lease_duration"]:
        raise typer.BadParameter("need retry period < renew deadline < lease duration",
                                 param_hint="--leader-election-*")
    if "renew_period" not in out:
        out["renew_period"] = default_renew_period(out["retry_period"], out["renew_deadline"])
    if not out["retry_period"] <= out["renew_period"] < out["renew_deadline"]:
        raise typer.BadParameter("need retry period <= renew period < renew deadline",
                                 param_hint="--leader-election-renew-period")
    return out


if __name__ == "__main__":
    app()

"""The `rollouts` command (also `kubectl rollouts`). Imports stay lazy: no scipy or
controller modules are loaded until a command needs them."""

from __future__ import annotations

import typer

app = typer.Typer(help="Progressive delivery for Kubernetes: canary rollouts over Istio.",
                  no_args_is_help=True)


@app.callback()
def main() -> None:
    """Progressive delivery for Kubernetes: canary rollouts over Istio."""


@app.command()
def controller(
    kubeconfig: str = typer.Option(None, help="kubeconfig file (default: in-cluster or $KUBECONFIG)"),
    context: str = typer.Option(None, help="kubeconfig context"),
    namespace: str = typer.Option(None, "--namespace", "-n", help="watch one namespace (default: all)"),
    workers: int = typer.Option(4, help="concurrent reconciles"),
    leader_elect: bool = typer.Option(False, help="run for leadership on a Lease before acting"),
    lease_namespace: str = typer.Option("default", help="namespace of the leader-election Lease"),
    lease_name: str = typer.Option("rollouts-controller", help="name of the Lease"),
    listen: str = typer.Option("127.0.0.1:8080", help="address of /healthz, /readyz (and the API)"),
    resync_seconds: float = typer.Option(30.0, help="re-check every rollout this often"),
) -> None:
    """Run the controller."""
    from rollouts.controller.manager import ControllerOptions, run_controller

    raise typer.Exit(run_controller(ControllerOptions(
        kubeconfig=kubeconfig, context=context, namespace=namespace, workers=workers,
        leader_elect=leader_elect, lease_namespace=lease_namespace, lease_name=lease_name,
        listen=listen, resync_seconds=resync_seconds)))


if __name__ == "__main__":
    app()

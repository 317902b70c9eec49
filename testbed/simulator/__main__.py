"""``python -m testbed.simulator --kubeconfig PATH [...]``: run until SIGTERM/SIGINT.

The first stdout line is ``listening HOST:PORT`` (flushed), so a parent process
can start it with ``--listen 127.0.0.1:0`` and read the port.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from .core import Simulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m testbed.simulator",
        description="Simulated data plane: Istio, NGINX, ALB, SMI and Gateway API routing -> "
                    "Istio and ingress-nginx metrics.",
    )
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), help="kubeconfig path")
    p.add_argument("--namespace", default=None, help="watch only this namespace (default: all)")
    p.add_argument("--rps", type=float, default=100.0, help="requests/s per VirtualService")
    p.add_argument("--seed", type=int, default=None, help="random seed (reproducible draws)")
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT for /metrics (0 = any)")
    p.add_argument("--tick", type=float, default=0.2, help="seconds between draws")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ...")
    p.add_argument("--no-pod-label", dest="per_pod", action="store_false",
                   help="one series per workload, without the pod label (default: per pod)")
    p.add_argument("--header", dest="headers", action="append", default=[], metavar="NAME=VALUE",
                   help="a header the --header-share of clients send (repeatable)")
    p.add_argument("--header-share", type=float, default=0.0,
                   help="share of clients sending the --header headers, in [0, 1]")
    args = p.parse_args(argv)
    headers = {}
    for h in args.headers:
        name, sep, value = h.partition("=")
        if not sep or not name:
            p.error(f"--header wants NAME=VALUE, got {h!r}")
        headers[name] = value
    args.headers = headers
    return args


async def run(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sim = Simulator(
        kubeconfig=args.kubeconfig,
        namespace=args.namespace,
        rps=args.rps,
        seed=args.seed,
        listen=args.listen,
        tick=args.tick,
        per_pod=args.per_pod,
        headers=args.headers,
        header_share=args.header_share,
    )
    await sim.start()
    try:
        print(f"listening {sim.address}", flush=True)
        await stop.wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(run(args))
    except (ValueError, TimeoutError) as e:  # bad arguments, API server never synced
        logging.getLogger("testbed.simulator").error("%s", e)
        return 2
    except Exception as e:  # e.g. an unreadable kubeconfig: one line, not a traceback
        logging.getLogger("testbed.simulator").error("failed: %r", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

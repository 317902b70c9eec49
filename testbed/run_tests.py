"""``make test``'s runner: one test bed for every test, the suite in two pytest processes.

The end-to-end tests mostly wait (for pods, Prometheus scrapes, analysis intervals), so two
processes sharing one bed finish in little more than half the time on two cores. Each test
has its own namespace, each process its own controller kubeconfig, and the files that edit
shared bed state (Alertmanager routes) stay in one shard (``ROLLOUTS_E2E_SHARD`` in
tests/e2e/conftest.py). Shard 1 also runs the unit tests. The bed is stopped at the end,
whatever happened, and no process of it may be left.

Usage: ``python -m testbed.run_tests [pytest args...]`` (args go to both processes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from testbed.cluster import TestBed, TestBedError, leftover_processes

SHARDS = 2


def _pytest(paths: list[str], shard: int, env: dict[str, str], extra: list[str],
            log: Path | None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "pytest", *paths, "-q", "-p", "no:cacheprovider", *extra]
    env = {**env, "ROLLOUTS_E2E_SHARD": f"{shard}/{SHARDS}"}
    out = open(log, "wb") if log is not None else None  # noqa: SIM115 (closed by the child's end)
    return subprocess.Popen(cmd, env=env, stdout=out or None, stderr=subprocess.STDOUT if out else None)


def main(argv: list[str]) -> int:
    t0 = time.monotonic()
    bed = TestBed()
    try:
        bed.start()
    except TestBedError as e:
        print(f"test bed failed to start: {e}", file=sys.stderr)
        bed.stop()
        return 1
    env = {**os.environ, "ROLLOUTS_TESTBED_DIR": str(bed.workdir)}
    logs = Path(bed.workdir) / "shard-logs"
    logs.mkdir(exist_ok=True)
    others = [logs / f"shard-{i}.log" for i in range(2, SHARDS + 1)]
    procs = [_pytest(["tests/unit", "tests/e2e"], 1, env, argv, None)]
    procs += [_pytest(["tests/e2e"], i, env, argv, log) for i, log in enumerate(others, start=2)]
    codes = []
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        codes = [p.wait() for p in procs]
    finally:
        for i, log in enumerate(others, start=2):
            print(f"\n===== shard {i}/{SHARDS} (tests/e2e) =====", flush=True)
            if log.exists():
                sys.stdout.write(log.read_text(errors="replace"))
        bed.stop()
        left = leftover_processes(Path(bed.workdir))
        if os.environ.get("ROLLOUTS_KEEP_TESTBED_LOGS") is None:
            shutil.rmtree(bed.workdir, ignore_errors=True)
    print(f"\n[make test] shards exited {codes} in {time.monotonic() - t0:.0f} s", flush=True)
    if left:
        print(f"test-bed processes still running after stop: {left}", file=sys.stderr)
        return 1
    return max(codes) if codes else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

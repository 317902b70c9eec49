"""``python -m testbed up|down|status|env``: the test bed for humans and the demo."""

from __future__ import annotations

import argparse
import shutil
import sys

from testbed.cluster import RUN_ROOT, State, TestBed, TestBedError, ensure_built, stop_state

DEFAULT_DIR = RUN_ROOT / "default"


def _print_state(st: State) -> None:
    print(f"kubeconfig:    {st.kubeconfig}")
    print(f"apiserver:     {st.apiserver_url}")
    print(f"prometheus:    {st.prometheus_url}")
    print(f"alertmanager:  {st.alertmanager_url}")
    print(f"logs:          {st.workdir}/logs/")
    print(f"\n  export KUBECONFIG={st.kubeconfig}")


def up() -> int:
    if (DEFAULT_DIR / "state.json").exists():
        st = State.load(DEFAULT_DIR)
        from testbed.cluster import _alive

        if all(_alive(p.pid) for p in st.processes):
            print("test bed already running:")
            _print_state(st)
            return 0
        stop_state(st)
        shutil.rmtree(DEFAULT_DIR, ignore_errors=True)
    bed = TestBed(workdir=DEFAULT_DIR)
    try:
        st = bed.start()
    except TestBedError as e:
        print(f"test bed failed to start: {e}", file=sys.stderr)
        return 1
    print("test bed running (stop it with `make testbed-down`):")
    _print_state(st)
    return 0


def down() -> int:
    if not (DEFAULT_DIR / "state.json").exists():
        print("no test bed running")
        return 0
    st = State.load(DEFAULT_DIR)
    stop_state(st)
    shutil.rmtree(DEFAULT_DIR, ignore_errors=True)
    print(f"stopped {len(st.processes)} processes")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m testbed")
    ap.add_argument("command", choices=["up", "down", "status", "setup"])
    args = ap.parse_args(argv)
    if args.command == "up":
        return up()
    if args.command == "down":
        return down()
    if args.command == "setup":
        print(ensure_built())
        return 0
    if (DEFAULT_DIR / "state.json").exists():
        _print_state(State.load(DEFAULT_DIR))
        return 0
    print("no test bed running")
    return 1


if __name__ == "__main__":
    sys.exit(main())

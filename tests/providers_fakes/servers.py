"""Real InfluxDB 1.x and Graphite (carbon-cache + graphite-web) started on 127.0.0.1 on
free ports, each with a data directory of its own, for the provider tests. Debian's
packages (testbed/setup.d/60-influx-graphite.sh); the processes are ours and are stopped
by PID. ``available()`` says whether the binaries are installed."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

SYSTEM_PYTHON = "/usr/bin/python3"  # graphite-web and Django are Debian's, not the venv's
INSTALL = "bash testbed/setup.d/60-influx-graphite.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def influx_available() -> bool:
    return shutil.which("influxd") is not None


def graphite_available() -> bool:
    return shutil.which("carbon-cache") is not None and Path(
        "/usr/lib/python3/dist-packages/graphite/wsgi.py").exists()


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, what: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}): {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {timeout}s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@dataclass
class Influx:
    address: str

    def query(self, q: str, db: str | None = None) -> dict[str, object]:
        r = httpx.post(f"{self.address}/query", params={"q": q, **({"db": db} if db else {})},
                       timeout=10)
        r.raise_for_status()
        out: dict[str, object] = r.json()
        return out

    def write(self, db: str, lines: str) -> None:
        r = httpx.post(f"{self.address}/write", params={"db": db, "precision": "s"},
                       content=lines, timeout=10)
        if r.status_code != 204:
            raise RuntimeError(f"InfluxDB write: HTTP {r.status_code} {r.text}")


@contextlib.contextmanager
def influxdb() -> Iterator[Influx]:
    with tempfile.TemporaryDirectory(prefix="rtb-influx-") as d:
        port, rpc = free_port(), free_port()
        conf = Path(d) / "influxdb.conf"
        conf.write_text(f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
[monitor]
  store-enabled = false
""")
        log = Path(d) / "influxd.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(["influxd", "run", "-config", str(conf)], stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait(f"http://127.0.0.1:{port}/ping", proc, log, "influxd")
            yield Influx(f"http://127.0.0.1:{port}")
        finally:
            _stop(proc)


@dataclass
class Graphite:
    address: str  # graphite-web
    line_port: int  # carbon's plaintext receiver

    def send(self, lines: list[tuple[str, float, float]]) -> None:
        """Datapoints (path, value, unix time) through carbon's line protocol."""
        with socket.create_connection(("127.0.0.1", self.line_port), timeout=5) as s:
            s.sendall("".join(f"{p} {v} {int(t)}\n" for p, v, t in lines).encode())


@contextlib.contextmanager
def graphite() -> Iterator[Graphite]:
    with tempfile.TemporaryDirectory(prefix="rtb-graphite-") as d:
        line, pickle, cache, web = free_port(), free_port(), free_port(), free_port()
        for sub in ("whisper", "log/webapp", "log/carbon", "run"):
            Path(d, sub).mkdir(parents=True)
        # 1-second points for an hour: the tests send points seconds apart
        Path(d, "storage-schemas.conf").write_text("[all]\npattern = .*\nretentions = 1s:1h\n")
        Path(d, "storage-aggregation.conf").write_text(
            "[default]\npattern = .*\nxFilesFactor = 0\naggregationMethod = average\n")
        Path(d, "carbon.conf").write_text(f"""[cache]
STORAGE_DIR = {d}/
LOCAL_DATA_DIR = {d}/whisper/
CONF_DIR = {d}/
LOG_DIR = {d}/log/carbon/
PID_DIR = {d}/run/
DATABASE = whisper
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = 1000
MAX_CREATES_PER_MINUTE = 1000
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {line}
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {pickle}
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = {cache}
WHISPER_FALLOCATE_CREATE = False
""")
        Path(d, "rtb_graphite_settings.py").write_text(f"""
SECRET_KEY = "rollouts-testbed"
ALLOWED_HOSTS = ["*"]
STORAGE_DIR = "{d}"
WHISPER_DIR = "{d}/whisper"
LOG_DIR = "{d}/log/webapp"
INDEX_FILE = "{d}/index"
CONF_DIR = "{d}"
CARBONLINK_HOSTS = ["127.0.0.1:{cache}"]
DATABASES = {{"default": {{"NAME": "{d}/graphite.db", "ENGINE": "django.db.backends.sqlite3"}}}}
DEFAULT_XFILES_FACTOR = 0
FUNCTION_PLUGINS = []
""")
        env = {**os.environ, "PYTHONPATH": d, "GRAPHITE_SETTINGS_MODULE": "rtb_graphite_settings",
               "DJANGO_SETTINGS_MODULE": "graphite.settings"}
        env.pop("VIRTUAL_ENV", None)
        serve = ("import sys; from wsgiref.simple_server import make_server, WSGIRequestHandler\n"
                 "from graphite.wsgi import application\n"
                 "class Q(WSGIRequestHandler):\n    def log_message(self, *a): pass\n"
                 f"make_server('127.0.0.1', {web}, application, handler_class=Q).serve_forever()\n")
        clog, wlog = Path(d, "carbon.out"), Path(d, "web.out")
        with open(clog, "wb") as out:
            carbon = subprocess.Popen(
                ["carbon-cache", f"--config={d}/carbon.conf", f"--pidfile={d}/run/carbon.pid",
                 f"--logdir={d}/log/carbon", "--nodaemon", "start"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        with open(wlog, "wb") as out:
            webp = subprocess.Popen([SYSTEM_PYTHON, "-c", serve], stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True, env=env,
                                    cwd=d)
        try:
            _wait_port(line, carbon, clog, "carbon-cache")
            _wait(f"http://127.0.0.1:{web}/render?target=none&format=json", webp, wlog, "graphite-web")
            yield Graphite(f"http://127.0.0.1:{web}", line)
        finally:
            _stop(webp)
            _stop(carbon)


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, what: str,
               timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}): {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s: {log.read_text()[-2000:]}")


if __name__ == "__main__":  # manual check: start both, print their addresses, wait
    with influxdb() as i, graphite() as g:
        print(i.address, g.address, g.line_port, file=sys.stderr)
        time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 5)

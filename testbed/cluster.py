"""Start and stop the local test bed: a real control plane on kwok fake nodes, plus
Prometheus and Alertmanager, every process bound to 127.0.0.1 on free ports.

Each process runs in its own session; its PID is recorded in the run directory's
``state.json`` so that ``stop`` (or ``python -m testbed down`` from another shell)
stops exactly what was started, never anything found by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SETUP_SCRIPT = REPO / "testbed" / "setup.sh"
CACHE_ROOT = Path(os.environ.get("TESTBED_CACHE", Path.home() / ".cache" / "rollouts-testbed"))
RUN_ROOT = CACHE_ROOT / "run"
ADMIN_TOKEN_USER = "admin"
FAKE_NODES = 3
# Istio kinds the product touches; the rest of Istio's ~14 CRDs are not needed.
ISTIO_KINDS = ("VirtualService", "DestinationRule")


class TestBedError(RuntimeError):
    __test__ = False

    """A test-bed process failed to start or become ready; the message names it."""


def log(msg: str) -> None:
    print(f"[testbed] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_built() -> Path:
    """Run the idempotent setup (builds once, then seconds) and return the cache dir."""
    proc = subprocess.run([str(SETUP_SCRIPT)], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise TestBedError(f"test-bed setup failed (exit {proc.returncode}); see messages above")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    cache = Path(lines[-1])
    if not (cache / ".complete").exists():
        raise TestBedError(f"setup printed {cache} but it is not a complete build")
    return cache


@dataclass
class Proc:
    name: str
    pid: int
    log: str


@dataclass
class State:
    workdir: str
    kubeconfig: str
    apiserver_url: str
    prometheus_url: str
    alertmanager_url: str
    admin_token: str
    processes: list[Proc] = field(default_factory=list)

    def save(self) -> None:
        Path(self.workdir, "state.json").write_text(json.dumps(asdict(self), indent=2))

    @staticmethod
    def load(workdir: Path) -> State:
        raw = json.loads((workdir / "state.json").read_text())
        procs = [Proc(**p) for p in raw.pop("processes")]
        return State(**raw, processes=procs)


def _insecure_ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _http_ok(url: str, token: str | None = None, timeout: float = 2.0) -> bool:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=_insecure_ctx()) as r:
            return 200 <= r.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


class TestBed:
    """One running test bed. ``start()`` then ``stop()``; usable as a context manager."""

    __test__ = False  # not a pytest test class

    def __init__(self, workdir: Path | None = None, nodes: int = FAKE_NODES, *,
                 kcm_api_qps: int | None = None, audit_policy: str | None = None) -> None:
        RUN_ROOT.mkdir(parents=True, exist_ok=True)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="bed-", dir=RUN_ROOT))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.nodes = nodes
        # kube-controller-manager's client limit (default 20/s, burst 30): the scale
        # benchmark raises it so that pod creation is not what it measures
        self.kcm_api_qps = kcm_api_qps
        # an audit.k8s.io/v1 Policy (YAML): kube-apiserver then logs the events it selects
        # as JSON lines to ``audit_log``, written from a queue (requests do not wait on it)
        self.audit_policy = audit_policy
        self.state: State | None = None
        self._procs: list[tuple[Proc, subprocess.Popen[bytes]]] = []

    # -- public -----------------------------------------------------------------
    @classmethod
    def attach(cls, workdir: Path) -> TestBed:
        """A handle on a bed started elsewhere (``python -m testbed up``); stop() is a no-op."""
        bed = cls(workdir=workdir)
        bed.state = State.load(workdir)
        bed.attached = True
        return bed

    attached = False

    def __enter__(self) -> TestBed:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def kubeconfig(self) -> str:
        assert self.state
        return self.state.kubeconfig

    @property
    def audit_log(self) -> Path | None:
        """kube-apiserver's audit log (JSON lines), or None: started without a policy."""
        return self.workdir / "audit.log" if self.audit_policy is not None else None

    @property
    def prometheus_url(self) -> str:
        assert self.state
        return self.state.prometheus_url

    @property
    def alertmanager_url(self) -> str:
        assert self.state
        return self.state.alertmanager_url

    def start(self) -> State:
        t0 = time.monotonic()
        cache = ensure_built()
        self.bin = cache / "bin"
        self.cache = cache
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise
        log(f"ready in {time.monotonic() - t0:.1f} s: kubeconfig {self.kubeconfig}")
        assert self.state
        return self.state

    def stop(self) -> None:
        if self.attached:
            return
        procs = list(self._procs)
        if not procs and (self.workdir / "state.json").exists():
            stop_state(State.load(self.workdir))
        for proc, popen in reversed(procs):
            _terminate(proc.pid, proc.name, popen)
        self._procs.clear()

    def add_scrape_target(self, job: str, address: str, labels: dict[str, str] | None = None) -> None:
        """Have Prometheus scrape ``address`` (host:port) every second under ``job``."""
        path = self.workdir / "targets" / f"{job}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": [address], "labels": {"job": job, **(labels or {})}}]))
        tmp.rename(path)  # atomic, so Prometheus never reads half a file

    def remove_scrape_target(self, job: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.workdir / "targets" / f"{job}.json").unlink()

    def route_alerts(self, match_label: str, match_value: str, webhook_url: str | None) -> None:
        """Route alerts whose ``match_label`` equals ``match_value`` to a webhook (None removes)."""
        routes_file = self.workdir / "am-routes.json"
        routes: dict[str, list[str]] = (
            json.loads(routes_file.read_text()) if routes_file.exists() else {}
        )
        key = f"{match_label}={match_value}"
        if webhook_url is None:
            routes.pop(key, None)
        else:
            routes[key] = [match_label, match_value, webhook_url]
        routes_file.write_text(json.dumps(routes))
        self._write_alertmanager_config(list(routes.values()))
        assert self.state
        req = urllib.request.Request(self.state.alertmanager_url + "/-/reload", method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            if r.status != 200:
                raise TestBedError(f"alertmanager reload failed: HTTP {r.status}")

    # -- start-up ---------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> Proc:
        logpath = self.workdir / "logs" / f"{name}.log"
        logpath.parent.mkdir(exist_ok=True)
        with open(logpath, "ab") as out:
            popen = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.workdir,
            )
        proc = Proc(name=name, pid=popen.pid, log=str(logpath))
        self._procs.append((proc, popen))
        if self.state:
            self.state.processes.append(proc)
            self.state.save()
        return proc

    def _wait(self, what: str, check: Any, timeout: float, proc: Proc | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and not _alive(proc.pid):
                tail = Path(proc.log).read_text(errors="replace")[-3000:]
                raise TestBedError(f"{proc.name} exited during start-up; last log lines:\n{tail}")
            if check():
                return
            time.sleep(0.2)
        hint = f" (log: {proc.log})" if proc else ""
        raise TestBedError(f"timed out after {timeout:.0f} s waiting for {what}{hint}")

    def _start_all(self) -> None:
        w = self.workdir
        pki = w / "pki"
        pki.mkdir(exist_ok=True)
        token = os.urandom(16).hex()
        (w / "tokens.csv").write_text(f'{token},{ADMIN_TOKEN_USER},{ADMIN_TOKEN_USER},"system:masters"\n')
        subprocess.run(
            ["openssl", "genrsa", "-out", str(pki / "sa.key"), "2048"], check=True,
            capture_output=True,
        )
        subprocess.run(
            ["openssl", "rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub")],
            check=True, capture_output=True,
        )
        ports = {k: free_port() for k in ("etcd", "etcd_peer", "apiserver", "prometheus", "alertmanager")}
        api_url = f"https://127.0.0.1:{ports['apiserver']}"
        kubeconfig = w / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(_kubeconfig(api_url, token)))
        self.state = State(
            workdir=str(w), kubeconfig=str(kubeconfig), apiserver_url=api_url,
            prometheus_url=f"http://127.0.0.1:{ports['prometheus']}",
            alertmanager_url=f"http://127.0.0.1:{ports['alertmanager']}",
            admin_token=token,
        )
        self.state.save()

        # Prometheus and Alertmanager first: they are independent and start in < 1 s.
        (w / "targets").mkdir(exist_ok=True)
        (w / "prometheus.yml").write_text(yaml.safe_dump(_prometheus_config(w, ports["alertmanager"])))
        self._write_alertmanager_config([])
        prom = self._spawn("prometheus", [
            "prometheus", f"--config.file={w / 'prometheus.yml'}", f"--storage.tsdb.path={w / 'prom'}",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}", "--web.enable-lifecycle",
            "--web.enable-admin-api", "--storage.tsdb.retention.time=1d",
        ])
        am = self._spawn("alertmanager", [
            "prometheus-alertmanager", f"--config.file={w / 'alertmanager.yml'}",
            f"--storage.path={w / 'am'}", f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
            "--cluster.listen-address=",
        ])

        etcd_url = f"http://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['etcd_peer']}"
        etcd = self._spawn("etcd", [
            str(self.bin / "etcd"), "--name=testbed", f"--data-dir={w / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=testbed={peer_url}", "--unsafe-no-fsync",
            "--listen-metrics-urls=", "--log-level=warn",
        ])
        self._wait("etcd /health", lambda: _http_ok(etcd_url + "/health"), 30, etcd)

        apiserver = self._spawn("kube-apiserver", [
            str(self.bin / "kube-apiserver"), f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={ports['apiserver']}", f"--cert-dir={pki}",
            f"--token-auth-file={w / 'tokens.csv'}", "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16", "--endpoint-reconciler-type=none",
            "--allow-privileged=true", "--profiling=false", "--v=1",
            *self._audit_flags(),
        ])
        self._wait("kube-apiserver /readyz", lambda: _http_ok(api_url + "/readyz"), 90, apiserver)

        kcm = self._spawn("kube-controller-manager", [
            str(self.bin / "kube-controller-manager"), f"--kubeconfig={kubeconfig}",
            "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'apiserver.crt'}", "--use-service-account-credentials=false",
            "--controllers=*,-nodeipam", "--concurrent-deployment-syncs=10",
            "--concurrent-replicaset-syncs=10", "--v=1",
            *([f"--kube-api-qps={self.kcm_api_qps}", f"--kube-api-burst={2 * self.kcm_api_qps}"]
              if self.kcm_api_qps else []),
        ])
        sched = self._spawn("kube-scheduler", [
            str(self.bin / "kube-scheduler"), f"--kubeconfig={kubeconfig}", "--leader-elect=false",
            "--bind-address=127.0.0.1", "--secure-port=0", "--v=1",
        ])
        stages = sorted(str(p) for p in (self.cache / "kwok-stages").glob("*.yaml"))
        kwok = self._spawn("kwok", [
            str(self.bin / "kwok"), f"--kubeconfig={kubeconfig}", "--manage-all-nodes=true",
            "--cidr=10.244.0.0/16", "--node-ip=10.0.0.1", *[f"--config={s}" for s in stages],
            # The heartbeat-with-lease stage expects kwok to keep node Leases; without them the
            # node lifecycle controller marks every node (and pod) NotReady after ~50 s.
            "--node-lease-duration-seconds=40",
        ])
        self._create_nodes_and_crds(kubeconfig)
        st = self.state
        self._wait("Prometheus /-/ready", lambda: _http_ok(st.prometheus_url + "/-/ready"), 30, prom)
        self._wait("Alertmanager /-/ready", lambda: _http_ok(st.alertmanager_url + "/-/ready"), 30, am)
        self._wait_for_ready_node_and_sa(kcm, sched, kwok)

    def _audit_flags(self) -> list[str]:
        if self.audit_policy is None:
            return []
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(self.audit_policy)
        return [
            f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            # batch: a request only queues its event (dropped if the queue is full) and one
            # goroutine writes the queue out, event by event, so no request waits on the file
            "--audit-log-mode=batch", "--audit-log-batch-buffer-size=100000",
            # one file, never rotated (the default rotates at 100 MB)
            "--audit-log-maxsize=0",
        ]

    def _kubectl_like(self) -> Kube:
        assert self.state
        return Kube(self.state.apiserver_url, self.state.admin_token)

    def _create_nodes_and_crds(self, kubeconfig: Path) -> None:
        kube = self._kubectl_like()
        for i in range(self.nodes):
            kube.apply(_fake_node(f"kwok-node-{i}"))
        docs = yaml.safe_load_all((self.cache / "istio-crds.yaml").read_text())
        wanted = [d for d in docs if d and d.get("kind") == "CustomResourceDefinition"
                  and d["spec"]["names"]["kind"] in ISTIO_KINDS
                  and d["spec"]["group"] == "networking.istio.io"]
        if len(wanted) != len(ISTIO_KINDS):
            raise TestBedError(f"Istio CRDs {ISTIO_KINDS} not found in {self.cache / 'istio-crds.yaml'}")
        wanted += router_crds(self.cache)
        for crd in wanted:
            kube.apply(crd)
        for crd in wanted:
            name = crd["metadata"]["name"]
            self._wait(f"CRD {name} Established", lambda n=name: kube.crd_established(n), 30)

    def _wait_for_ready_node_and_sa(self, *procs: Proc) -> None:
        kube = self._kubectl_like()

        def ready() -> bool:
            for p in procs:
                if not _alive(p.pid):
                    tail = Path(p.log).read_text(errors="replace")[-3000:]
                    raise TestBedError(f"{p.name} exited during start-up; last log lines:\n{tail}")
            return kube.any_node_ready() and kube.exists("/api/v1/namespaces/default/serviceaccounts/default")

        self._wait("a Ready kwok node and ServiceAccount default/default", ready, 90)

    def _write_alertmanager_config(self, routes: list[list[str]]) -> None:
        cfg: dict[str, Any] = {
            "route": {
                "receiver": "blackhole", "group_by": ["alertname", "namespace", "rollout"],
                "group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h",
                "routes": [
                    {"matchers": [f'{label}="{value}"'], "receiver": f"r{i}", "continue": True}
                    for i, (label, value, _) in enumerate(routes)
                ],
            },
            "receivers": [{"name": "blackhole"}] + [
                {"name": f"r{i}", "webhook_configs": [{"url": url, "send_resolved": True}]}
                for i, (_, _, url) in enumerate(routes)
            ],
        }
        (self.workdir / "alertmanager.yml").write_text(yaml.safe_dump(cfg))


ROUTER_CRDS_IN_REPO = REPO / "testbed" / "router-crds"


def router_crd_files(cache: Path) -> list[Path]:
    """The CRDs of the traffic routers beyond Istio: the Gateway API route kinds (downloaded
    by setup.sh into a cache dir it names in ``router-crds-dir``) and SMI's TrafficSplit
    (kept in the repository)."""
    pointer = cache / "router-crds-dir"
    if not pointer.is_file():
        raise TestBedError(f"{pointer} missing: run testbed/setup.sh")
    files = sorted(Path(pointer.read_text().strip()).glob("*.yaml"))
    if len(files) < 3:
        raise TestBedError(f"Gateway API CRDs missing in {pointer.read_text().strip()}")
    return files + sorted(ROUTER_CRDS_IN_REPO.glob("*.yaml"))


def router_crds(cache: Path) -> list[dict[str, Any]]:
    return [d for f in router_crd_files(cache) for d in yaml.safe_load_all(f.read_text())
            if d and d.get("kind") == "CustomResourceDefinition"]


class Kube:
    """A tiny synchronous admin client for bootstrapping (no kubernetes client needed)."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json") -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=10, context=_insecure_ctx()) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def apply(self, obj: dict[str, Any]) -> None:
        """Server-side apply by the test bed's field manager."""
        api = obj["apiVersion"]
        kind_path = {"Node": "nodes", "CustomResourceDefinition": "customresourcedefinitions"}[obj["kind"]]
        prefix = "/api/v1" if api == "v1" else f"/apis/{api}"
        path = f"{prefix}/{kind_path}/{obj['metadata']['name']}?fieldManager=testbed&force=true"
        status, body = self.request("PATCH", path, obj, "application/apply-patch+yaml")
        if status >= 300:
            raise TestBedError(f"apply {obj['kind']}/{obj['metadata']['name']}: HTTP {status} {body}")

    def exists(self, path: str) -> bool:
        return self.request("GET", path)[0] == 200

    def crd_established(self, name: str) -> bool:
        status, body = self.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        conds = ((body or {}).get("status") or {}).get("conditions") or [] if status == 200 else []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conds)

    def any_node_ready(self) -> bool:
        status, body = self.request("GET", "/api/v1/nodes")
        if status != 200:
            return False
        for node in body.get("items", []):
            for c in (node.get("status") or {}).get("conditions") or []:
                if c["type"] == "Ready" and c["status"] == "True" and not node["spec"].get("taints"):
                    return True
        return False


def _kubeconfig(url: str, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "testbed",
        # The apiserver self-signs its serving cert; the test bed is loopback only.
        "clusters": [{"name": "testbed", "cluster": {"server": url, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "testbed",
                      "context": {"cluster": "testbed", "user": "admin", "namespace": "default"}}],
    }


def _prometheus_config(w: Path, am_port: int) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "rule_files": [str(w / "rules" / "*.yml")],
        "scrape_configs": [{
            "job_name": "testbed",
            "file_sd_configs": [{"files": [str(w / "targets" / "*.json")], "refresh_interval": "1s"}],
        }],
    }


def _fake_node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "type": "kwok"},
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "250"},
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "250"},
        },
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) counts as gone.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z"):
            return False
    return True


def _is_ours(pid: int, workdir: str) -> bool:
    """Guard against PID reuse: our processes carry the run directory in argv or cwd."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return workdir in cmd or cwd.startswith(workdir)


def _terminate(pid: int, name: str, popen: subprocess.Popen[bytes] | None = None, grace: float = 10) -> None:
    if not _alive(pid):
        if popen:
            popen.poll()
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if popen is not None and popen.poll() is not None:
            return
        if popen is None and not _alive(pid):
            return
        time.sleep(0.1)
    log(f"{name} (pid {pid}) ignored SIGTERM for {grace:.0f} s; sending SIGKILL")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if popen is not None:
        popen.wait(5)


def stop_state(state: State) -> None:
    for p in reversed(state.processes):
        if _alive(p.pid) and _is_ours(p.pid, state.workdir):
            _terminate(p.pid, p.name)


def leftover_processes(root: Path = RUN_ROOT) -> list[str]:
    """Processes whose argv or cwd lies under the run root: should be none after a run."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() \
                and _is_ours(int(entry.name), str(root)) and _alive(int(entry.name)):
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry.name}: {cmd[:160]}")
    return found


@contextlib.contextmanager
def running(nodes: int = FAKE_NODES, keep: bool = False) -> Iterator[TestBed]:
    bed = TestBed(nodes=nodes)
    try:
        bed.start()
        yield bed
    finally:
        bed.stop()
        if not keep:
            shutil.rmtree(bed.workdir, ignore_errors=True)

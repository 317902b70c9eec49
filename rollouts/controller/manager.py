"""Wiring: informers -> work queue -> reconcile workers, leader election, health server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from rollouts.api.constants import INSTANCE_ID_LABEL, POD_TEMPLATE_HASH_LABEL
from rollouts.controller.analysis_reconciler import ANALYSIS_RUNS, AnalysisRunReconciler
from rollouts.controller.experiment_reconciler import EXPERIMENTS, ExperimentReconciler
from rollouts.controller.failures import ActionFailed
from rollouts.controller.reconciler import ROLLOUTS, Reconciler
from rollouts.controller.telemetry import Telemetry, controller_namespace
from rollouts.kube.cache import SharedCache
from rollouts.kube.client import JSON, REPLICASETS, Kube, make_api_client
from rollouts.kube.events import EventRecorder
from rollouts.kube.informer import Informer, key_of
from rollouts.kube.leader import LeaderElector
from rollouts.kube.ratelimit import urgent_context, urgent_requests
from rollouts.kube.workqueue import WorkQueue
from rollouts.observability.health import Health
from rollouts.server.app import create_app, create_plain_metrics_app
from rollouts.server.tls import ServingCert, load_serving_cert

log = logging.getLogger("rollouts.controller")
AR_PREFIX = "AnalysisRun:"  # work-queue keys of AnalysisRuns; plain "ns/name" keys are Rollouts
EX_PREFIX = "Experiment:"  # work-queue keys of Experiments


@dataclass
class ControllerOptions:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None  # None: all namespaces
    workers: int = 4  # take keys of both lanes (urgent first; see rollouts.kube.workqueue)
    # take urgent keys only, so that step work never waits for a worker busy with new work
    urgent_workers: int = 2
    leader_elect: bool = False
    lease_namespace: str = "default"
    lease_name: str = "rollouts-controller"
    # Argo's --leader-election-* timings; a settled leader renews every renew period
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    renew_period: float = 5.0
    listen: str = "127.0.0.1:8443"
    # a safety net only: every change arrives by watch and every timer re-queues its own
    # rollout (Argo's --rollout-resync default)
    resync_seconds: float = 900.0
    # client-side throttling (Argo's --qps/--burst defaults)
    qps: float = 40.0
    burst: int = 80
    # act only on Rollouts, AnalysisRuns and Experiments labelled with this instance id
    # ("": those without the label), so several controllers split a fleet
    instance_id: str = ""
    # alerting and notifications (rollouts.controller.telemetry)
    alertmanager_urls: tuple[str, ...] = ()
    notifications_configmap: str = "rollouts-notifications"  # "": no notifications config
    controller_namespace: str | None = None  # default: $POD_NAMESPACE or rollouts-system
    alert_resend_seconds: float = 60.0
    rollout_alertmanager_urls: bool = True  # honour the Rollout annotation
    # HTTPS with these (a mounted kubernetes.io/tls Secret), else a self-signed certificate
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    insecure_http: bool = False  # plain HTTP on --listen: only when asked for
    audiences: tuple[str, ...] = ()  # token audiences accepted besides the API server's
    metrics_listen: str = ""  # plain, unauthenticated /metrics + probes ("": none)


async def wait_synced(informers: list[Informer], *, unless: list[asyncio.Event],
                      first: float = 5.0, every: float = 30.0) -> bool:
    """True once every informer has listed; False as soon as one of ``unless`` is set (a
    SIGTERM, a lost lease). A resource that cannot be listed (its CRD not installed, RBAC
    forbidding it) is no reason to exit: the reason is logged after ``first`` seconds, then
    every ``every``, the controller reports itself inactive, and the work starts once it is
    fixed."""
    wait = first
    while True:
        if any(e.is_set() for e in unless):
            return False
        pending = [i for i in informers if not i.synced.is_set()]
        if not pending:
            return True
        waits = [asyncio.create_task(x.wait()) for x in [*(i.synced for i in pending), *unless]]
        try:
            done, _ = await asyncio.wait(waits, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if done:  # progress, or asked to stop: look again
            continue
        wait = every
        for i in informers:
            if not i.synced.is_set():
                log.warning("cannot start: %s not listed yet: %s", i.resource.plural,
                            i.last_error or "no answer")


# every this many resync passes, every Rollout is reconciled, at rest or not
FULL_RESYNC_EVERY = 4


def instance_selector(instance_id: str) -> str:
    """Argo's --instance-id: the objects labelled with it, or (no id) those without the label."""
    return f"{INSTANCE_ID_LABEL}={instance_id}" if instance_id else f"!{INSTANCE_ID_LABEL}"


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling (the manager owns SIGTERM/SIGINT), ticking
    once a second instead of ten times."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stop = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def stop(self) -> None:
        self.should_exit = True
        self._stop.set()

    async def main_loop(self) -> None:
        # uvicorn wakes every 0.1 s to refresh its Date header and look at should_exit: with
        # two servers that was most of an idle controller's CPU (0.27 s a minute with no
        # rollout at all). The Date header has a resolution of 1 s; stop() wakes it at once.
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000  # a multiple of 10: the header is refreshed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._stop.wait()


class Controller:
    def __init__(self, opts: ControllerOptions) -> None:
        self.opts = opts
        self.queue = WorkQueue()
        self.telemetry = Telemetry(self.queue)
        # ready while serving, leader or standby; leadership reported apart (metric, /readyz)
        self.health = Health(self.telemetry.metrics, leader_election=opts.leader_elect)
        self.analysis_reconciler: AnalysisRunReconciler | None = None
        self.experiment_reconciler: ExperimentReconciler | None = None
        self.experiments: Informer | None = None  # also read by the Rollout reconciler
        self.shared: SharedCache | None = None  # objects read by name, from informers
        self.recorder: EventRecorder | None = None
        self._cert: ServingCert | None = None

    # Lanes of the work queue: a Rollout's own change (a new revision to start) and the
    # resync are normal; whatever a key owns or waits on changing is urgent (step work of a
    # rollout in flight), and so are timers (add_after's default). An informer's first list
    # is a starting point, not news: its events are normal, or a restarted controller would
    # put every rollout with a ReplicaSet in the urgent lane, and the lanes would mean nothing.

    @staticmethod
    def _news_after_first_list(informer: Informer,
                               handler: Callable[..., None]) -> Callable[[str, JSON], None]:
        def handle(kind: str, obj: JSON) -> None:
            handler(kind, obj, urgent=informer.synced.is_set())
        return handle

    def _enqueue_rollout(self, kind: str, obj: JSON) -> None:
        if kind == "DELETED" and self.shared is not None:
            self.shared.forget(key_of(obj))
        # a person's promote, abort, retry, pause or resume (status.pendingAction) is a gate
        # someone is waiting at: step work, not behind a fleet's worth of new revisions
        pending = (obj.get("status") or {}).get("pendingAction") if kind != "DELETED" else None
        self.queue.add(key_of(obj), urgent=bool(pending))

    def _enqueue_run(self, _kind: str, run: JSON, *, urgent: bool = True) -> None:
        # a run is created by a rollout (or experiment) in a step: its progress is step work
        self.queue.add(AR_PREFIX + key_of(run), urgent=urgent)

    def _enqueue_experiment(self, _kind: str, obj: JSON, *, urgent: bool = True) -> None:
        self.queue.add(EX_PREFIX + key_of(obj), urgent=urgent)
        # a Rollout's experiment step reacts to its phase
        self._enqueue_owner(_kind, obj, urgent=urgent)

    def _enqueue_owner(self, _kind: str, rs: JSON, *, urgent: bool = True) -> None:
        md = rs.get("metadata") or {}
        for o in md.get("ownerReferences") or []:
            if o.get("kind") == "Rollout" and o.get("controller"):
                self.queue.add(f"{md.get('namespace')}/{o.get('name')}", urgent=urgent)
            elif o.get("kind") == "Experiment" and o.get("controller"):
                self.queue.add(f"{EX_PREFIX}{md.get('namespace')}/{o.get('name')}", urgent=urgent)

    def _enqueue_reader(self, key: str) -> None:
        """An object a rollout read (a Service, a route, a template) changed."""
        self.queue.add(key, urgent=True)

    async def _worker(self, reconciler: Reconciler, *, urgent_only: bool = False) -> None:
        while True:
            key, waited = await self.queue.get(urgent_only=urgent_only)
            urgent = self.queue.is_urgent(key)
            started = time.monotonic()
            try:
                await self._pass(reconciler, key, waited, urgent=urgent, since=started)
            finally:
                if key in reconciler.follow_up:  # its status write is step work: look again
                    reconciler.follow_up.discard(key)
                    self.queue.add(key, urgent=True)
                self.queue.done(key)

    async def _pass(self, reconciler: Reconciler, key: str, waited: float, *,
                    urgent: bool, since: float) -> None:
        """One reconcile of ``key``; a failure is retried with backoff."""
        self.telemetry.started(key, waited, urgent=urgent)
        try:
            # the requests of an urgent key's reconcile get the throttle's urgent lane, the
            # key that a worker took first going first (it finishes its step sooner)
            with urgent_requests(urgent, since=since):
                requeue = await self._reconcile(reconciler, key)
            self.queue.forget(key)
            self.telemetry.finished(key, requeue)
            if requeue is not None:
                self.queue.add_after(key, requeue)
        except asyncio.CancelledError:
            raise
        except ActionFailed as e:  # already in status and Events (and logged)
            self.telemetry.finished(key, error=True)
            self.queue.add_rate_limited(key, urgent=urgent)
            if e.requeue_after is not None:  # the progress deadline falls due before
                self.queue.add_after(key, e.requeue_after)
        except Exception as e:  # one bad object must never stop the others
            self.telemetry.finished(key, error=True)
            log.warning("reconcile %s failed: %s: %s", key, type(e).__name__, e)
            self.queue.add_rate_limited(key, urgent=urgent)

    async def _reconcile(self, reconciler: Reconciler, key: str) -> float | None:
        if key.startswith(AR_PREFIX):
            assert self.analysis_reconciler is not None
            return await self.analysis_reconciler.reconcile(key[len(AR_PREFIX):])
        if key.startswith(EX_PREFIX):
            assert self.experiment_reconciler is not None
            return await self.experiment_reconciler.reconcile(key[len(EX_PREFIX):])
        return await reconciler.reconcile(key)

    async def _resync(self, informer: Informer, prefix: str = "",
                      at_rest: Callable[[str], bool] | None = None) -> None:
        """Re-queue every object each --resync-seconds. A Rollout ``at_rest`` (nothing it
        read changed since a reconcile found it at rest) is passed by, except on every
        FULL_RESYNC_EVERY-th pass: the safety net stays, without a full reconcile of an idle
        fleet every 15 minutes."""
        passes = 0
        while True:
            await asyncio.sleep(self.opts.resync_seconds)
            passes += 1
            full = at_rest is None or passes % FULL_RESYNC_EVERY == 0
            skipped = 0
            for obj in informer.values():
                key = key_of(obj)
                if not full and at_rest is not None and at_rest(key):
                    skipped += 1
                    continue
                self.queue.add(prefix + key)
            if skipped:
                log.debug("resync of %s: %d at rest passed by", informer.resource.plural, skipped)

    def http_app(self, kube: Kube) -> FastAPI:
        """The app of --listen: the HTTP API, /metrics (authenticated), health."""
        return create_app(kube, ready=self.health.ready, metrics=self.telemetry.metrics,
                          namespace=self.opts.namespace, audiences=self.opts.audiences,
                          details=self.health.details)

    def _servers(self, kube: Kube) -> list[_QuietServer]:
        host, _, port = self.opts.listen.rpartition(":")
        main = uvicorn.Config(self.http_app(kube), host=host or "127.0.0.1", port=int(port),
                              log_level="warning", lifespan="off")
        if not self.opts.insecure_http:
            cert = load_serving_cert(self.opts.tls_cert_file, self.opts.tls_key_file, host)
            # uvicorn only builds a context from files; a generated key never goes to disk,
            # so the context is set after load() (serve() does not load twice)
            main.load()
            main.ssl = cert.context
            self._cert = cert
            log.info("serving HTTPS on %s (certificate: %s, sha256 %s)", self.opts.listen,
                     cert.source, cert.fingerprint)
        else:
            log.warning("serving plain HTTP on %s (--insecure-http): bearer tokens cross the "
                        "network in clear text", self.opts.listen)
        servers = [_QuietServer(main)]
        if self.opts.metrics_listen:
            mhost, _, mport = self.opts.metrics_listen.rpartition(":")
            servers.append(_QuietServer(uvicorn.Config(
                create_plain_metrics_app(self.telemetry.metrics, ready=self.health.ready,
                                         details=self.health.details),
                host=mhost or "127.0.0.1", port=int(mport), log_level="warning", lifespan="off")))
        return servers

    async def run(self) -> int:
        api = await make_api_client(self.opts.kubeconfig, self.opts.context)
        kube = Kube(api, qps=self.opts.qps or None, burst=self.opts.burst,
                    on_request=self.telemetry.metrics.api_request,
                    on_timing=self.telemetry.metrics.api_timing)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            servers = self._servers(kube)
        except ValueError as e:  # an unreadable certificate or key: say so, do not serve plain
            log.error("%s", e)
            await api.close()
            return 2
        tasks: list[asyncio.Task[object]] = [asyncio.create_task(s.serve()) for s in servers]
        n_servers = len(servers)
        if self._cert is not None and self._cert.files is not None:  # rotated Secret files
            tasks.append(asyncio.create_task(self._cert.watch()))
        elector = None
        exit_code = 0
        try:
            if self.opts.leader_elect:
                lease = self.opts.lease_name + (f"-{self.opts.instance_id}" if self.opts.instance_id else "")
                elector = LeaderElector(
                    kube, self.opts.lease_namespace, lease,
                    lease_duration=self.opts.lease_duration,
                    renew_deadline=self.opts.renew_deadline,
                    retry_period=self.opts.retry_period, renew_period=self.opts.renew_period)
                self.health.elector = elector
                # renewals never wait behind reconciles' requests: losing the Lease stops all
                tasks.append(asyncio.create_task(elector.run(), context=urgent_context()))
                log.info("waiting to become leader (%s/%s)", self.opts.lease_namespace, lease)
                got = asyncio.create_task(elector.is_leader.wait())
                stopped = asyncio.create_task(stop.wait())
                await asyncio.wait({got, stopped}, return_when=asyncio.FIRST_COMPLETED)
                got.cancel()
                stopped.cancel()
                if stop.is_set():
                    return 0
            mine = instance_selector(self.opts.instance_id)
            rollouts = Informer(kube, ROLLOUTS, self.opts.namespace, label_selector=mine)
            replicasets = Informer(kube, REPLICASETS, self.opts.namespace,
                                   label_selector=POD_TEMPLATE_HASH_LABEL)
            runs = Informer(kube, ANALYSIS_RUNS, self.opts.namespace, label_selector=mine)
            # the echo of our own writes is no news (the reconciler saw to it)
            rollouts.add_handler(self._enqueue_rollout, skip_own_writes=True)
            news = self._news_after_first_list
            replicasets.add_handler(news(replicasets, self._enqueue_owner), skip_own_writes=True)
            # a run's own status write is no news to the run; its Rollout reacts to it
            runs.add_handler(news(runs, self._enqueue_run), skip_own_writes=True)
            runs.add_handler(news(runs, self._enqueue_owner))
            experiments = self.experiments = Informer(kube, EXPERIMENTS, self.opts.namespace,
                                                      label_selector=mine)
            experiments.add_handler(news(experiments, self._enqueue_experiment))
            tasks += [asyncio.create_task(rollouts.run()), asyncio.create_task(replicasets.run()),
                      asyncio.create_task(runs.run()), asyncio.create_task(experiments.run())]
            self.analysis_reconciler = AnalysisRunReconciler(   # provider Secrets live there
                kube, runs, controller_namespace=controller_namespace(self.opts.controller_namespace))
            recorder = self.recorder = EventRecorder(kube.with_own_limits())
            recorder.start()
            self.experiment_reconciler = ExperimentReconciler(kube, experiments, replicasets, runs,
                                                              recorder)
            if not await wait_synced([rollouts, replicasets, runs, experiments],
                                     unless=[stop] + ([elector.lost] if elector else [])):
                if elector is not None and elector.lost.is_set():
                    exit_code = 2
                return exit_code
            listeners, notifier = await self.telemetry.start(self.opts, kube, rollouts, runs)
            tasks.append(notifier)
            shared = self.shared = SharedCache(kube, self.opts.namespace,
                                               on_change=self._enqueue_reader)
            reconciler = Reconciler(kube, rollouts, replicasets, recorder, analysis_runs=runs,
                                    listeners=listeners, experiments=experiments, shared=shared)
            tasks += [asyncio.create_task(self._worker(reconciler)) for _ in range(self.opts.workers)]
            tasks += [asyncio.create_task(self._worker(reconciler, urgent_only=True))
                      for _ in range(self.opts.urgent_workers)]
            tasks.append(asyncio.create_task(self._resync(rollouts, at_rest=reconciler.at_rest)))
            tasks.append(asyncio.create_task(self._resync(experiments, EX_PREFIX)))
            self.health.synced = True
            log.info("controller started (namespace: %s)", self.opts.namespace or "all")
            waiters: list[asyncio.Task[object]] = [asyncio.create_task(stop.wait())]
            if elector is not None:
                waiters.append(asyncio.create_task(elector.lost.wait()))
            waiters += tasks[n_servers:]
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if elector is not None and elector.lost.is_set():
                exit_code = 2  # stop acting at once; the process supervisor restarts us
            for t in done:
                if t in tasks and not t.cancelled() and t.exception() is not None:
                    log.error("controller task died: %r", t.exception())
                    exit_code = 1
            for w in waiters:
                if w not in tasks:
                    w.cancel()
        finally:
            self.health.stopping = True
            self.queue.shutdown()
            for s in servers:
                s.stop()
            for t in tasks[n_servers:]:
                t.cancel()
            if self.shared is not None:
                await self.shared.close()
            if self.recorder is not None:
                await self.recorder.close()
            await asyncio.gather(*tasks[n_servers:], return_exceptions=True)
            if elector is not None and exit_code != 2:
                await elector.release()
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.gather(*tasks[:n_servers]), 5)
            await api.close()
        return exit_code


def run_controller(opts: ControllerOptions) -> int:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(Controller(opts).run())

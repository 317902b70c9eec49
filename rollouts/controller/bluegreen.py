"""The blue-green strategy (Argo's ``strategy.blueGreen``).

The new revision runs beside the one users are served. The preview Service selects it as
soon as its ReplicaSet exists (Argo's order; the preview carries no production traffic and
a Service only sends to ready pods). The active Service, which carries the users, switches
to it only once every pod it needs is available (``previewReplicaCount`` pods first, then
``spec.replicas`` before the switch), the pre-promotion analysis succeeded and the pause
(``autoPromotionEnabled: false`` or ``autoPromotionSeconds``) ended. Then the
post-promotion analysis runs; when it succeeds the new revision becomes stable and the
previous one scales down after ``scaleDownDelaySeconds``.

An abort (a user's, a failed analysis, progressDeadlineAbort) sends the active Service back
to the stable revision, which kept all its pods throughout; the preview keeps the aborted
revision, which scales down after ``abortScaleDownDelaySeconds`` (0: never).

Everything the Services select is in ``status.blueGreen`` and every decision re-asserts it
(``PointService``), so the status never describes a selector that was not written.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rollouts.api.constants import POD_TEMPLATE_HASH_LABEL, Cond, Phase, Reason
from rollouts.api.spec import BlueGreenStrategy, RolloutSpec
from rollouts.api.status import BlueGreenStatus, RolloutStatus, fmt_time, parse_time
from rollouts.controller.decision import (
    AnalysisRunObs,
    ClusterAction,
    Decision,
    Observations,
    PointService,
    ReplicaSetObs,
    template_hash,
)
from rollouts.controller.lifecycle import (
    clear_abort,
    drop_pause_condition,
    fresh_attempt,
    held_by,
    hold_inconclusive,
    keep_progressing,
    mark_aborted,
    pause_condition,
    pause_start,
    set_aborted,
    set_healthy,
    set_pause_condition,
    settle,
)
from rollouts.controller.pending import apply_common, checked_action, mark_applied, start_full_promotion
from rollouts.controller.pod_metadata import born_with_role, metadata_actions
from rollouts.controller.replicas import (
    available,
    emit_replica_actions,
    prune_history,
    recover_stable,
    replica_counts,
    restart_pods,
    scale_old,
    seconds_until,
    with_anti_affinity,
)
from rollouts.controller.runs import (
    RUN_ACTIVE,
    RUN_ERROR,
    RUN_FAILED,
    RUN_INCONCLUSIVE,
    RUN_SUCCESSFUL,
    analysis_state,
    attempt,
    observe_run,
    run_name,
    sweep_runs,
)

PRE, POST = "prePromotion", "postPromotion"  # AnalysisRun kinds (the run's analysis label)


def _bg(st: RolloutStatus) -> BlueGreenStatus:
    if st.blue_green is None:
        st.blue_green = BlueGreenStatus()
    return st.blue_green


def _strategy(spec: RolloutSpec) -> BlueGreenStrategy:
    assert spec.blue_green is not None
    return spec.blue_green


def needs_pause(bgs: BlueGreenStrategy) -> bool:
    """Argo: the controller pauses before the switch when auto-promotion is off or delayed."""
    return not bgs.auto_promotion_enabled or bgs.auto_promotion_seconds > 0


# --- state changes -------------------------------------------------------------------


def _restart(st: RolloutStatus, now: datetime) -> None:
    """A fresh start for the current revision, the preview scale-up checkpoint down again."""
    bg = _bg(st)
    fresh_attempt(st, now)
    bg.scale_up_preview_check_point = False
    bg.pre_promotion_run = bg.post_promotion_run = None


def _new_revision(d: Decision, rss: dict[str, ReplicaSetObs], h: str, now: datetime) -> None:
    st = d.status
    bg = _bg(st)
    old = st.current_pod_hash
    if old and old in rss and old not in (st.stable_rs, h, bg.active_selector):
        st.scale_down_at[old] = fmt_time(now)  # a superseded preview never served users
    st.current_pod_hash = h
    _restart(st, now)
    clear_abort(st)
    st.user_pause = None
    st.scale_down_at.pop(h, None)
    if h == st.stable_rs:
        d.normal(Reason.ROLLOUT_UPDATED, f"template is back to the stable revision {h}")
    else:
        st.remove_condition(Cond.COMPLETED)
        d.normal(Reason.ROLLOUT_UPDATED, f"new revision {h}: the preview Service selects it; "
                 "the active Service switches once it is fully available and promoted")


def _apply_pending_action(d: Decision, spec: RolloutSpec, h: str, now: datetime) -> None:
    """Argo's meaning on a blue-green rollout: promote ends the pause before the switch (or an
    inconclusive analysis's pause: a new run starts); promote --full switches as soon as
    the new revision is fully available, without analysis (lifting an abort); abort sends
    the active Service back to the stable revision; retry starts the update again."""
    st = d.status
    act = checked_action(d, spec, now)
    if act is None:
        return
    who = act.user
    bg = _bg(st)
    if apply_common(d, act, now):
        pass
    elif act.action == "promote" and act.full:
        aborted = st.abort
        clear_abort(st)
        start_full_promotion(st, now)
        st.remove_condition(Cond.PAUSED)
        d.normal(Reason.PROMOTED_FULL, f"full promotion requested by {who}: the active Service "
                 f"switches to {h} once it is fully available, without analysis"
                 f"{' (the abort is lifted)' if aborted else ''}")
    elif act.action == "promote":
        what = []
        if pause_condition(st, Reason.INCONCLUSIVE) is not None:
            kind = POST if bg.active_selector == h else PRE
            analysis_state(st).replace_run(kind)
            drop_pause_condition(st, Reason.INCONCLUSIVE)
            if kind == PRE:
                # the pause before the switch is still to come: this promote does not end it
                st.controller_pause = False
            what.append(f"a new {kind} analysis starts")
        if pause_condition(st, Reason.BLUE_GREEN_PAUSE) is not None:
            # the controller pause stays set: the pause is over, not to be taken again
            drop_pause_condition(st, Reason.BLUE_GREEN_PAUSE)
            st.controller_pause = True
            what.append(f"the active Service switches to {h}")
        if st.user_pause is not None:
            what.append("the pause by a user is lifted")
        st.user_pause = None
        st.progress_at = fmt_time(now)
        d.normal(Reason.PROMOTED, f"promoted by {who}: {', '.join(what) or 'resumed'}")
    elif act.action == "retry":
        clear_abort(st)
        st.scale_down_at.pop(h, None)
        _restart(st, now)
        st.remove_condition(Cond.PROGRESSING)
        d.normal(Reason.RETRIED, f"retried by {who}: starting the blue-green update of {h} again")
    mark_applied(st, act, now)


# --- the phases of an update ---------------------------------------------------------


class _Update:
    """One decision on a blue-green rollout: what the new revision's ReplicaSet should hold
    (``target``; None: it waits for its scale-down deadline) and the runs that stay."""

    def __init__(self, d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs], h: str,
                 now: datetime) -> None:
        self.d, self.spec, self.rss, self.h, self.now = d, spec, rss, h, now
        self.st = d.status
        self.bg = _bg(d.status)
        self.bgs = _strategy(spec)
        self.target: int | None = spec.replicas
        self.keep_runs: set[str] = set()

    # -- helpers

    def available(self, h: str | None) -> int:
        return available(self.rss, h) if h else 0

    def fully_available(self, h: str | None) -> bool:
        return h is not None and h in self.rss and self.available(h) >= self.spec.replicas

    def switch_active(self, h: str) -> None:
        self.bg.active_selector = h
        self.st.progress_at = fmt_time(self.now)

    def set_available_condition(self) -> None:
        st, active = self.st, self.bg.active_selector
        n, want = self.available(active), self.spec.replicas
        ok = active is not None and n >= want
        st.set_condition(Cond.AVAILABLE, ok, Reason.AVAILABLE if ok else Reason.NOT_AVAILABLE,
                         f"active revision {active or '-'}: {n}/{want} pods available", self.now)

    def progressing(self, msg: str, *, clock: bool = True) -> None:
        """Phase Progressing; ``clock``: the progress deadline counts (not while an analysis
        measures: it has its own limits, as in Argo)."""
        st = self.st
        st.phase = Phase.PROGRESSING
        st.message = msg
        st.remove_condition(Cond.PAUSED)
        if not clock:
            st.progress_at = None
            st.set_condition(Cond.PROGRESSING, True, Reason.ROLLOUT_UPDATED, msg, self.now)
        elif keep_progressing(self.d, self.spec, self.now):  # progressDeadlineAbort
            self.aborted()

    def paused(self, reason: str, msg: str, condition_msg: str | None = None) -> None:
        st = self.st
        st.phase = Phase.PAUSED
        st.message = msg
        st.progress_at = None  # time spent paused never counts towards the deadline
        st.set_condition(Cond.PAUSED, True, reason, condition_msg or msg, self.now)

    def held(self) -> bool:
        """spec.paused or a user's pause: the active Service does not switch (Argo halts)."""
        if self.st.user_pause is None and not self.spec.paused:
            return False
        reason, msg = held_by(self.d)
        self.paused(reason, msg)
        return True

    def run_name(self, kind: str) -> str:
        k = analysis_state(self.st).restarts.get(kind, 0)
        short = "pre" if kind == PRE else "post"
        return run_name(self.d.rollout, self.h, attempt(self.d), f"{short}{k}" if k else short)

    def analysis(self, kind: str) -> AnalysisRunObs | None:
        """The current run of ``kind`` (started if needed), or None when the spec has none."""
        block = self.bgs.pre_promotion_analysis if kind == PRE else self.bgs.post_promotion_analysis
        if block is None:
            return None
        name = self.run_name(kind)
        existing = self.d.analysis_runs.get(name)
        if existing is not None and existing.terminated:
            # stopped (by a decision whose switch then failed, or by hand): its end is not a
            # verdict; a new run measures
            a = analysis_state(self.st)
            a.restarts[kind] = a.restarts.get(kind, 0) + 1
            self.d.normal(Reason.ROLLOUT_UPDATED, f"{kind} analysis {name} was stopped before "
                          "its verdict: a new run starts")
            name = self.run_name(kind)
        run = observe_run(self.d, name, block, kind, None, self.h)
        self.keep_runs.add(name)
        rec = {"name": name, "status": run.phase or "Pending"}
        if run.message:
            rec["message"] = run.message
        if kind == PRE:
            self.bg.pre_promotion_run = rec
        else:
            self.bg.post_promotion_run = rec
        return run

    def judge(self, kind: str, run: AnalysisRunObs) -> bool:
        """True when ``run`` lets the update go on; otherwise the decision is made here
        (waiting, an inconclusive pause, or an abort)."""
        if run.phase == RUN_SUCCESSFUL:
            drop_pause_condition(self.st, Reason.INCONCLUSIVE)
            return True
        where = "before" if kind == PRE else "after"
        if run.phase in RUN_ACTIVE:
            self.progressing(f"{kind} analysis {run.name} {(run.phase or 'pending').lower()} "
                             f"({where} the active Service switch)", clock=False)
            return False
        if run.phase == RUN_INCONCLUSIVE:
            hold_inconclusive(self.st, Reason.INCONCLUSIVE, self.now)
            # Argo's message, which users' scripts read; the details in the condition
            self.paused(Reason.INCONCLUSIVE, Reason.INCONCLUSIVE,
                        f"{kind} analysis {run.name} inconclusive: {run.message}; promote starts "
                        "a new analysis, abort rolls back")
            return False
        st = self.st
        if run.phase not in (RUN_FAILED, RUN_ERROR):  # a phase we do not know: never a verdict
            self.progressing(f"{kind} analysis {run.name}: unknown phase {run.phase!r}",
                             clock=False)
            return False
        if not st.abort:
            why = (f"{kind} analysis {run.name} {run.phase.lower()}"
                   + (f": {run.message}" if run.message else ""))
            back = "stays on" if kind == PRE else "goes back to"
            mark_aborted(self.d, self.now, by="analysis", reason=why,
                         event=f"rollout aborted: {why}; the active Service {back} the stable "
                         f"revision {st.stable_rs}")
        self.aborted()
        return False

    def promote_stable(self, why: str) -> None:
        """The new revision is stable: the previous one keeps its pods for scaleDownDelaySeconds
        (in-flight requests, nodes still routing to it, a quick way back)."""
        st, h = self.st, self.h
        old = st.stable_rs
        delay = self.bgs.scale_down_delay_seconds
        if old is not None and old != h and old in self.rss:
            st.scale_down_at[old] = fmt_time(self.now + timedelta(seconds=delay))
        st.stable_rs = h
        st.pause_conditions = []
        st.controller_pause = False
        st.promote_full = False
        clear_abort(st)
        self.bg.scale_up_preview_check_point = False
        self.target = self.spec.replicas
        set_healthy(st, h, self.now)
        self.d.normal(Reason.COMPLETED, f"revision {h} is stable ({why})" + (
            f"; previous revision {old} scales down in {delay}s" if old and old != h else ""))

    # -- the paths

    def healthy(self) -> None:
        """The template is the stable revision (first deploy, done, or undo to stable)."""
        st, h = self.st, self.h
        settle(st)
        self.bg.scale_up_preview_check_point = False
        if self.bg.active_selector != h and self.fully_available(h):
            self.switch_active(h)
        if self.bg.active_selector == h and self.fully_available(h):
            set_healthy(st, h, self.now)
            return
        self.progressing(f"waiting for revision {h}: {self.available(h)}/{self.spec.replicas} "
                         "pods available before the active Service selects it")

    def aborted(self) -> None:
        st, h, bg = self.st, self.h, self.bg
        stable = st.stable_rs
        assert stable is not None
        self.keep_runs.clear()
        note = ""
        if bg.active_selector != stable:
            # back to the stable revision (it kept its pods), unless it has fewer available
            # pods than the revision it would leave: the brake never makes things worse
            if self.fully_available(stable) or (
                    self.available(stable) >= self.available(bg.active_selector)):
                bg.active_selector = stable
            else:
                note = (f" (the active Service goes back to {stable} once its pods are available: "
                        f"{self.available(stable)}/{self.spec.replicas})")
                self.d.wake_in(2)
        rs = self.rss.get(h)
        delay = self.bgs.abort_scale_down_delay_seconds
        if bg.active_selector == h or delay == 0 or not self.fully_available(stable):
            # still serving, abortScaleDownDelaySeconds: 0 (kept, as in Argo), or the stable
            # cannot carry everything yet: the aborted revision keeps its pods
            st.scale_down_at.pop(h, None)
            self.target = rs.replicas if rs is not None else None
        else:
            if h not in st.scale_down_at:
                st.scale_down_at[h] = fmt_time(self.now + timedelta(seconds=delay))
            self.target = None
        set_aborted(st, self.now, note)

    def update(self, fast_rollback: bool) -> None:
        """The template is a revision other than the stable one."""
        st, h, bg, bgs, spec = self.st, self.h, self.bg, self.bgs, self.spec
        replicas = spec.replicas
        st.remove_condition(Cond.COMPLETED)
        if st.abort:
            self.aborted()
            return
        promoted = bg.active_selector == h
        # Argo's fast track: no active revision yet, a full promotion, or a rollback to a
        # revision still scaled up within its scale-down delay: no analysis, no pause
        fast = bg.active_selector is None or st.promote_full or fast_rollback
        use_preview_count = (bgs.preview_replica_count is not None and not promoted and not fast
                             and not bg.scale_up_preview_check_point)
        target = bgs.preview_replica_count if use_preview_count else replicas
        assert target is not None
        self.target = target
        if promoted:
            # the switch is done: pods lost now are the post-promotion analysis's to judge
            self.post_promotion()
            return
        rs = self.rss.get(h)
        # Argo's ReadyForPause: the ReplicaSet holds what it should, all of it available
        ready = rs is not None and rs.replicas == target and rs.available >= target
        if not ready:
            # a pre-promotion run already measuring goes on (Argo never skips a started run):
            # stopped, it would end Successful ("terminated") and read as a verdict
            started = self.run_name(PRE)
            if bgs.pre_promotion_analysis is not None and started in self.d.analysis_runs:
                self.keep_runs.add(started)
            what = "previewReplicaCount " if use_preview_count else ""
            self.progressing(f"waiting for the new revision {h}: {self.available(h)}/{target} "
                             f"{what}pods available")
            return
        if fast:
            if self.held():
                return
            why = ("full promotion" if st.promote_full else "fast rollback" if fast_rollback
                   else "no active revision before it")
            self.switch_active(h)
            self.promote_stable(why)
            return
        pre = self.analysis(PRE)
        if pre is not None and not self.judge(PRE, pre):
            return
        if needs_pause(bgs) and not self.pause_done():
            return
        if self.held():
            return
        if use_preview_count:
            # Argo's scaleUpPreviewCheckPoint: the preview grows to spec.replicas, then switches
            bg.scale_up_preview_check_point = True
            self.target = replicas
            self.progressing(f"promoted: scaling the new revision {h} to {replicas} pods before "
                             f"the active Service switches ({self.available(h)} available)")
            return
        self.switch_active(h)
        self.post_promotion()

    def pause_done(self) -> bool:
        """Argo's BlueGreenPause before the switch: until promoted, or autoPromotionSeconds after
        it began. A pause that ended leaves controllerPause set, so it is not taken again."""
        st, bgs, h = self.st, self.bgs, self.h
        pc = pause_condition(st, Reason.BLUE_GREEN_PAUSE)
        if pc is None and st.controller_pause:
            return True
        if pc is None:
            start = pause_start(self.now)
            set_pause_condition(st, Reason.BLUE_GREEN_PAUSE, start)
            st.controller_pause = True
            self.d.normal(Reason.PAUSED, f"paused before switching the active Service to {h}"
                          + (f" (auto-promotion in {bgs.auto_promotion_seconds}s)"
                             if bgs.auto_promotion_enabled else ": waiting for promote"))
        else:
            start = parse_time(pc.get("startTime")) or self.now
        if bgs.auto_promotion_enabled:
            end = start + timedelta(seconds=bgs.auto_promotion_seconds)
            if self.now >= end:
                drop_pause_condition(st, Reason.BLUE_GREEN_PAUSE)
                self.d.normal(Reason.RESUMED, f"autoPromotionSeconds ({bgs.auto_promotion_seconds}s) "
                              f"passed: switching the active Service to {h}")
                return True
            self.d.wake_in(seconds_until(end, self.now))
            self.paused(Reason.BLUE_GREEN_PAUSE, f"preview {h} ready: the active Service switches "
                        f"to it at {fmt_time(end)} (autoPromotionSeconds), or on promote")
            return False
        self.paused(Reason.BLUE_GREEN_PAUSE,
                    f"preview {h} ready: waiting for promote to switch the active Service")
        return False

    def post_promotion(self) -> None:
        """The active Service selects the new revision; it becomes stable once the
        post-promotion analysis (if any) succeeded."""
        post = None if self.st.promote_full else self.analysis(POST)
        if post is not None and not self.judge(POST, post):
            return
        self.promote_stable("full promotion" if self.st.promote_full else
                            "post-promotion analysis successful" if post is not None
                            else "blue-green update completed")


# --- the decision --------------------------------------------------------------------


def decide_blue_green(d: Decision, spec: RolloutSpec, obs: Observations, now: datetime) -> None:
    """The blue-green strategy's decision on a valid spec (``decide`` has checked it)."""
    st = d.status
    bgs = _strategy(spec)
    assert obs.template is not None
    h = template_hash(obs.template)
    rss = obs.replica_sets
    bg = _bg(st)
    prev = {"active": bg.active_selector, "preview": bg.preview_selector}
    # a blue-green rollout carries no canary state (a rollout switched from canary)
    st.canary_weight = 0
    st.canary_route_hash = None
    st.draining = False
    st.canary_service = st.stable_service = None
    st.current_step_index = st.current_step_hash = None

    had_stable = st.stable_rs is not None and st.stable_rs in rss
    recover_stable(st, rss, h)
    gone = bg.active_selector is not None and bg.active_selector not in rss
    if gone:
        bg.active_selector = None
    if bg.active_selector is None and (gone or not had_stable) and st.stable_rs in rss \
            and st.stable_rs != h:
        # status lost, or the active revision deleted: the most available revision is what
        # users were served (recover_stable); a new revision goes through the whole update
        bg.active_selector = st.stable_rs
    if bg.preview_selector is not None and bg.preview_selector not in rss and \
            bg.preview_selector != h:
        bg.preview_selector = None

    deadline = parse_time(st.scale_down_at.get(h))
    fast_rollback = (st.current_pod_hash != h and st.stable_rs is not None and h != st.stable_rs
                     and h in rss and rss[h].replicas > 0 and deadline is not None and deadline > now)
    if st.stable_rs is None:
        if st.current_pod_hash != h:
            d.normal(Reason.NEW_RS, f"first revision {h} deployed")
        st.stable_rs = st.current_pod_hash = h
        st.progress_at = fmt_time(now)
    elif st.current_pod_hash != h:
        _new_revision(d, rss, h, now)

    if st.pending_action is not None:
        _apply_pending_action(d, spec, h, now)

    u = _Update(d, spec, rss, h, now)
    if h == st.stable_rs:
        sweep_runs(d, set())
        u.healthy()
    else:
        u.update(fast_rollback)
        sweep_runs(d, u.keep_runs)
    if bgs.preview_service:
        bg.preview_selector = h  # Argo: the preview always selects the newest revision
    u.set_available_condition()

    _services(d, spec, prev)
    desired = _desired(d, spec, rss, h, u.target)
    restart_pods(d, spec, obs, rss, desired, now)
    scale_old(d, rss, desired, now, delay=bgs.scale_down_delay_seconds)
    roles = {k: v for k, v in (
        (bg.preview_selector, bgs.preview_metadata), (bg.active_selector, bgs.active_metadata))
        if k is not None}
    metadata_actions(d, rss, roles)
    emit_replica_actions(d, rss, desired, h)
    born_with_role(d, roles)
    # Argo: the new revision's pods avoid the nodes of the revision users are served by
    with_anti_affinity(d, h, st.stable_rs, bgs.anti_affinity)
    replica_counts(st, rss, h)
    active = bg.active_selector
    labels = dict(spec.selector)
    if active is not None and active in rss:
        labels[POD_TEMPLATE_HASH_LABEL] = active  # Argo: the active pods (what an HPA scales on)
        st.available_replicas = rss[active].available
        st.ready_replicas = rss[active].ready
    st.selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    prune_history(d, spec, rss, desired, {st.stable_rs, h, active, bg.preview_selector})


def _services(d: Decision, spec: RolloutSpec, prev: dict[str, str | None]) -> None:
    """Both Services at what status says, every decision (a hand edit is undone), preview
    first (Argo's order); a SwitchService Event each time a selector moves.

    They go before this decision's AnalysisRuns: a post-promotion run must never exist
    while the switch it measures failed (the next decision would stop it, and a stopped
    run ends Successful)."""
    bgs = _strategy(spec)
    bg = _bg(d.status)
    points: list[ClusterAction] = []
    for svc, role, sel in ((bgs.preview_service, "preview", bg.preview_selector),
                           (bgs.active_service, "active", bg.active_selector)):
        if not svc or not sel:
            continue
        points.append(PointService(service=svc, pod_hash=sel))
        if prev.get(role) != sel:
            d.normal(Reason.SWITCH_SERVICE, f"switched the {role} Service {svc} from "
                     f"{prev.get(role) or 'no revision'} to {sel}")
    d.actions[0:0] = points


def with_written_selectors(read: RolloutStatus, spec: RolloutSpec | None,
                           written: list[PointService]) -> RolloutStatus:
    """The status as read, with the selectors the Services were given before a later action
    of the decision failed: what the reconciler records then, so that status.blueGreen
    always names what each Service selects."""
    if spec is None or spec.blue_green is None or not written:
        return read
    st = read.copy()
    bg = _bg(st)
    for p in written:
        if p.service == spec.blue_green.active_service:
            bg.active_selector = p.pod_hash
        elif p.service == spec.blue_green.preview_service:
            bg.preview_selector = p.pod_hash
    return st


def _desired(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs], h: str,
             target: int | None) -> dict[str, int]:
    """Pod counts: the stable and active revisions keep all their pods (the way back and
    the users' pods); the new revision what this decision asked; other revisions wait for
    their scale-down deadline, at most scaleDownDelayRevisionLimit of them scaled up."""
    st = d.status
    bg = _bg(st)
    bgs = _strategy(spec)
    desired: dict[str, int] = {}
    if target is not None:
        desired[h] = target
    for keep in (st.stable_rs, bg.active_selector):
        if keep is not None and keep != h and keep in rss:
            desired[keep] = spec.replicas
            st.scale_down_at.pop(keep, None)
    limit = bgs.scale_down_delay_revision_limit
    if limit is not None:
        waiting = sorted((r for r in rss.values() if r.hash not in desired and r.hash != h
                          and r.replicas > 0), key=lambda r: (r.revision, r.hash), reverse=True)
        for r in waiting[limit:]:
            desired[r.hash] = 0
            st.scale_down_at.pop(r.hash, None)
            d.normal(Reason.SCALED_DOWN, f"scaled down ReplicaSet {r.name} to 0 "
                     f"(scaleDownDelayRevisionLimit {limit})")
    return desired


def blue_green_abort_while_invalid(d: Decision, spec: RolloutSpec, obs: Observations,
                                   now: datetime) -> None:
    """The traffic part of an abort recorded while the spec is invalid: the active Service
    back to the stable revision (as on a valid spec), the stable scaled up; scale-downs wait
    until the spec is valid again."""
    st = d.status
    bg = _bg(st)
    stable = st.stable_rs
    rss = obs.replica_sets
    assert stable is not None
    if bg.active_selector != stable and (
            available(rss, stable) >= spec.replicas
            or available(rss, stable) >= available(rss, bg.active_selector or "")):
        bg.active_selector = stable
    if bg.active_selector and spec.blue_green is not None:
        d.actions.append(PointService(service=spec.blue_green.active_service,
                                      pod_hash=bg.active_selector))
    ups = {stable: spec.replicas} if stable in rss and rss[stable].replicas < spec.replicas else {}
    emit_replica_actions(d, rss, ups, st.current_pod_hash or stable)
    del now

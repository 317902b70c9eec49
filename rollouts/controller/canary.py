"""The canary strategy: traffic moves to the new revision in steps (setWeight, pause,
analysis), then the new revision is promoted to stable; abort sends traffic back.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from rollouts.api.constants import Cond, Phase, Reason
from rollouts.api.spec import RolloutSpec, Step
from rollouts.api.status import RolloutStatus, fmt_time, parse_time
from rollouts.controller.basic_canary import (
    Pods,
    at_target,
    fenceposts,
    next_counts,
    pod_share,
    target_counts,
)
from rollouts.controller.decision import (
    AnalysisRunObs,
    CreateExperiment,
    Decision,
    Observations,
    ReplicaSetObs,
    SetTraffic,
    TerminateExperiment,
    _digest,
    template_hash,
)
from rollouts.controller.experiment_step import (
    INCONCLUSIVE_EXPERIMENT,
    experiment_name,
    experiments_to_terminate,
    step_progress,
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
from rollouts.controller.managed_routes import attach_routes
from rollouts.controller.pending import apply_common, checked_action, mark_applied, start_full_promotion
from rollouts.controller.pod_metadata import born_with_role, metadata_actions
from rollouts.controller.replicas import (
    available,
    emit_replica_actions,
    prune_history,
    recover_stable,
    replica_counts,
    replicas_for_weight,
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
    abort_for_analysis,
    analysis_state,
    attempt,
    observe_run,
    run_name,
    sweep_runs,
)


def steps_hash(spec: RolloutSpec) -> str:
    """Hash of the parsed steps: ``30`` and ``"30s"`` are the same step, so no restart."""
    canon: list[Any] = []
    for s in spec.canary_strategy.steps:
        if s.set_weight is not None:
            canon.append(["setWeight", s.set_weight])
        elif s.pause_seconds is not None:
            canon.append(["pause", None if math.isinf(s.pause_seconds) else s.pause_seconds])
        else:
            canon.append(["analysis", s.analysis])
    return _digest(canon)[:10]

def _stable_replicas(spec: RolloutSpec, canary_weight: int) -> int:
    """With dynamicStableScale the stable keeps only what its share needs, else all."""
    if spec.canary_strategy.dynamic_stable_scale:
        return replicas_for_weight(spec.replicas, 100 - canary_weight)
    return spec.replicas

def _restart_steps(st: RolloutStatus, spec: RolloutSpec, now: datetime) -> None:
    """Step 0 with fresh AnalysisRuns. Traffic on the canary does not leave at once: it
    drains back to the stable (``_drain``) before the new steps decide the weight."""
    if st.canary_weight > 0:
        st.draining = True
        st.canary_route_hash = st.canary_route_hash or st.current_pod_hash
    else:
        st.draining = False
        st.canary_route_hash = None
    st.current_step_index = 0
    st.current_step_hash = steps_hash(spec)
    fresh_attempt(st, now)

def _clear_abort(st: RolloutStatus) -> None:
    clear_abort(st)
    if st.canary_route_hash == st.stable_rs:
        st.canary_route_hash = None  # the canary Service follows the canary again
    elif st.canary_route_hash is not None and st.canary_weight > 0:
        # the abort was draining a superseded canary (``_aborted``): it keeps draining
        # (``_drain``), its share never jumps to the current revision's pods
        st.draining = True

def _check_route(st: RolloutStatus, rss: dict[str, ReplicaSetObs]) -> None:
    """A route naming a ReplicaSet that is gone carries nothing worth protecting."""
    route = st.canary_route_hash
    if route is not None and (route == st.current_pod_hash
                              or (route not in rss and not st.draining)):
        st.canary_route_hash = None  # (a drain notices a vanished route itself: see _drain)

def _new_revision(d: Decision, spec: RolloutSpec, h: str, now: datetime) -> None:
    st = d.status
    old = st.current_pod_hash
    _restart_steps(st, spec, now)
    if old and old != st.stable_rs and old != h and not st.draining:
        st.scale_down_at[old] = fmt_time(now)  # the superseded canary had no traffic
    st.current_pod_hash = h
    _clear_abort(st)
    st.user_pause = None
    st.scale_down_at.pop(h, None)
    if h == st.stable_rs:
        st.current_step_index = len(spec.canary_strategy.steps)
        d.normal(Reason.ROLLOUT_UPDATED, f"template is back to the stable revision {h}")
    else:
        st.remove_condition(Cond.COMPLETED)
        d.normal(Reason.ROLLOUT_UPDATED, f"new revision {h}: starting canary steps")

def _apply_pending_action(d: Decision, spec: RolloutSpec, now: datetime) -> None:
    st = d.status
    act = checked_action(d, spec, now)
    if act is None:
        return
    n = len(spec.canary_strategy.steps)
    idx = min(max(st.current_step_index or 0, 0), n)
    who = act.user
    bg = _background_run(d, spec, st.current_pod_hash or "")
    if apply_common(d, act, now):
        pass
    elif act.action == "promote" and act.full:
        # Argo: a full promotion also ends an abort or an inconclusive pause; every run stops
        # and the canary goes to 100 % without new analysis.
        aborted = st.abort
        _clear_abort(st)
        start_full_promotion(st, now)
        d.normal(Reason.PROMOTED_FULL, f"full promotion requested by {who}: skipping all remaining "
                 f"steps{' (the abort is lifted)' if aborted else ''}")
    elif act.action == "promote" and bg is not None and bg.phase == RUN_INCONCLUSIVE:
        # Argo: promote clears the inconclusive pause and a new background run starts; the
        # step is not skipped (a reached pause step ends with it, its pause being cleared).
        analysis_state(st).replace_run("background")
        in_pause = any(p.get("reason") == Reason.CANARY_PAUSE for p in st.pause_conditions)
        st.pause_conditions = []
        st.controller_pause = False
        st.user_pause = None
        st.progress_at = fmt_time(now)
        if in_pause:
            st.current_step_index = min(idx + 1, n)
        d.normal(Reason.PROMOTED, f"promoted by {who}: background analysis {bg.name} was inconclusive; "
                 "a new background analysis starts" + (f", step {idx} ended" if in_pause else ""))
    elif act.action == "promote":
        # Ends a pause; on any other step skips it (Argo's meaning of promote). Like Argo's
        # promote, it also lifts a pause set by a user.
        st.pause_conditions = []
        st.user_pause = None
        st.current_step_index = min(idx + 1, n)
        st.progress_at = fmt_time(now)
        step = spec.canary_strategy.steps[idx].describe() if idx < n else "promotion"
        d.normal(Reason.PROMOTED, f"promoted by {who}: step {idx} ({step}) ended")
    elif act.action == "retry":
        _clear_abort(st)
        if st.current_pod_hash:
            st.scale_down_at.pop(st.current_pod_hash, None)
        _restart_steps(st, spec, now)
        st.remove_condition(Cond.PROGRESSING)
        d.normal(Reason.RETRIED, f"retried by {who}: restarting canary steps")
    mark_applied(st, act, now, stepIndex=idx)

def _healthy(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs], h: str,
             desired: dict[str, int], now: datetime) -> None:
    st = d.status
    st.current_step_index = len(spec.canary_strategy.steps)
    st.current_step_hash = steps_hash(spec)
    _clear_abort(st)
    settle(st)
    sweep_runs(d, set())
    if _drain(d, spec, rss, desired, now, f"rolling back to the stable revision {h}"):
        return
    desired[h] = _stable_back(spec, rss, h)
    st.canary_weight = 0
    st.canary_route_hash = None
    d.actions.append(SetTraffic(h, h, 0))
    avail = available(rss, h)
    if avail >= spec.replicas and h in rss:
        set_healthy(st, h, now)
        return
    st.phase = Phase.PROGRESSING
    st.message = f"waiting for stable ReplicaSet {h}: {avail}/{spec.replicas} available"
    st.set_condition(Cond.AVAILABLE, False, Reason.NOT_AVAILABLE, st.message, now)
    keep_progressing(d, spec, now)

def _weight_back_to_stable(spec: RolloutSpec, rss: dict[str, ReplicaSetObs], stable: str,
                           weight: int, *, carrier: str) -> int:
    """The canary weight once traffic went back to the stable as far as it can carry it.

    All at once, unless the stable was scaled down for the canary (dynamicStableScale):
    then it takes traffic back only as fast as its pods come back (Argo issue 3020). The
    traffic left on ``carrier`` is never more than its available pods carry (its pods
    failing, or a controller killed after it scaled them away before writing status):
    when neither side can carry its share, their available pods share it in proportion.
    """
    replicas = spec.replicas
    c = spec.canary_strategy
    # (without a router the pods are the split: the basic canary's own counts bring it back)
    if not (c.dynamic_stable_scale and c.traffic_routed) or weight <= 0 or replicas <= 0:
        return 0
    stable_avail, carrier_avail = available(rss, stable), available(rss, carrier)
    held = min(weight, max(0, 100 - 100 * stable_avail // replicas))
    if 100 * carrier_avail // replicas >= held or stable_avail + carrier_avail == 0:
        return held
    return min(held, 100 * carrier_avail // (stable_avail + carrier_avail))

def _drain(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs],
           desired: dict[str, int], now: datetime, what: str) -> bool:
    """After a restart of the steps, traffic leaves the canary route only as fast as the
    stable can take it; the route's pods stay until it carries nothing. True while
    traffic is still on the route (the caller then holds the steps)."""
    st = d.status
    if not st.draining:
        return False
    assert st.stable_rs is not None
    stable = st.stable_rs
    route = st.canary_route_hash or st.current_pod_hash or stable
    weight = (_weight_back_to_stable(spec, rss, stable, st.canary_weight, carrier=route)
              if route in rss and route != stable else 0)
    if weight != st.canary_weight:
        d.normal(Reason.WEIGHT_UPDATED, f"canary weight {st.canary_weight} -> {weight} ({what})")
    st.canary_weight = weight
    desired[stable] = spec.replicas
    if weight == 0:
        st.draining = False
        st.canary_route_hash = None
        if route in rss and route not in (stable, st.current_pod_hash):
            st.scale_down_at[route] = fmt_time(now)  # a superseded canary leaves at once
        return False
    rs = rss[route]
    desired[route] = max(rs.replicas, replicas_for_weight(spec.replicas, weight))
    st.canary_route_hash = route if route != st.current_pod_hash else None
    st.pause_conditions = []
    st.controller_pause = False
    st.remove_condition(Cond.PAUSED)
    st.phase = Phase.PROGRESSING
    st.message = (f"{what}: {weight}% still on {route} until the stable {stable} has scaled "
                  f"back up ({available(rss, stable)}/{spec.replicas} available)")
    if keep_progressing(d, spec, now):
        return True  # progressDeadlineAbort: the caller switches to the abort path
    d.actions.append(SetTraffic(stable, route, weight))
    d.wake_in(5)
    return True

def _canary(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs], h: str, stable: str,
            desired: dict[str, int], now: datetime) -> None:
    st = d.status
    replicas = spec.replicas
    dynamic = spec.canary_strategy.dynamic_stable_scale
    st.remove_condition(Cond.COMPLETED)
    stable_avail, canary_avail = available(rss, stable), available(rss, h)
    ok = stable_avail + canary_avail >= replicas
    st.set_condition(Cond.AVAILABLE, ok, Reason.AVAILABLE if ok else Reason.NOT_AVAILABLE,
                     f"{stable_avail + canary_avail}/{replicas} pods available (stable {stable}: "
                     f"{stable_avail}, canary {h}: {canary_avail})", now)

    if st.abort:
        sweep_runs(d, set())
        _aborted(d, spec, rss, h, stable, desired, now)
        return
    if _drain(d, spec, rss, desired, now, "restarting the canary steps"):
        if st.abort:
            _aborted(d, spec, rss, h, stable, desired, now)
        sweep_runs(d, set())  # the runs of the superseded steps; new ones start after the drain
        return
    st.canary_route_hash = None

    steps = spec.canary_strategy.steps
    n = len(steps)
    idx = n if st.promote_full else min(max(st.current_step_index or 0, 0), n)
    routed = spec.canary_strategy.traffic_routed
    # with a router: the weight it carries; without: the weight the pods are sized for (the
    # traffic share is then the pods' share, ``_basic_share``)
    weight = st.canary_weight if routed else _reached_weight(steps, idx)
    # the lowest canary weight traffic is heading to: a dynamically scaled stable is sized
    # for its share at that weight (scale-downs run after the traffic change)
    heading_to = 100
    paused_msg: str | None = None
    waiting_msg: str | None = None
    inconclusive = False
    why = Reason.INCONCLUSIVE  # the pause reason of an inconclusive verdict
    in_analysis = False
    hold = st.user_pause is not None or spec.paused
    # Background analysis keeps measuring while a user holds the rollout (as in Argo); a
    # full promotion stops all analysis.
    bg = None if st.promote_full else _background_analysis(d, spec, h, idx)
    if bg is not None and bg.phase in (RUN_FAILED, RUN_ERROR):
        abort_for_analysis(d, bg, now)
        hold = True
    elif bg is not None and bg.phase == RUN_INCONCLUSIVE:
        paused_msg = (f"background analysis {bg.name} inconclusive: {bg.message}; promote starts a "
                      "new background analysis and continues, abort rolls back")
        inconclusive = True
        hold = True

    if hold and idx < n:
        _failed_while_held(d, h, idx, steps[idx], now)
    while idx < n and not hold:
        step = steps[idx]
        if step.set_weight is not None and not routed:
            w = weight = step.set_weight
            if not _basic_at(spec, rss, h, stable, w):
                c_want, s_want = target_counts(replicas, w, fenceposts(
                    spec.canary_strategy.max_surge, spec.canary_strategy.max_unavailable, replicas)[0])
                waiting_msg = (f"step {idx}/{n} setWeight {w}: scaling to {c_want} canary and "
                               f"{s_want} stable pods ({canary_avail} and {stable_avail} available)")
                break
            _step_done(d, idx, n, step, now)
            idx += 1
        elif step.set_canary_scale is not None:
            need = _canary_scale(spec, idx, weight) or 0
            desired[h] = need
            if canary_avail < need:
                waiting_msg = (f"step {idx}/{n} {step.set_canary_scale.describe()}: waiting for "
                               f"canary pods ({canary_avail}/{need} available)")
                break
            _step_done(d, idx, n, step, now)
            idx += 1
        elif step.set_weight is not None:
            w = step.set_weight
            scale = _canary_scale(spec, idx, w)
            need = replicas_for_weight(replicas, w) if scale is None else scale
            desired[h] = need if scale is not None else max(need, replicas_for_weight(replicas, weight))
            if canary_avail < need:
                waiting_msg = (f"step {idx}/{n} setWeight {w}: waiting for canary pods "
                               f"({canary_avail}/{need} available)")
                break
            if dynamic and w < weight:
                # Traffic goes back to a stable that was scaled down: scale it up first.
                heading_to = min(heading_to, w)
                stable_need = _stable_replicas(spec, w)
                if stable_avail < stable_need:
                    waiting_msg = (f"step {idx}/{n} setWeight {w}: waiting for stable pods before "
                                   f"shifting traffic back ({stable_avail}/{stable_need} available)")
                    break
            if weight != w:
                d.normal(Reason.WEIGHT_UPDATED, f"canary weight {weight} -> {w} (step {idx})")
            weight = w
            _step_done(d, idx, n, step, now)
            idx += 1
        elif step.pause_seconds is not None:
            pc = pause_condition(st, Reason.CANARY_PAUSE)
            start = parse_time(pc.get("startTime")) if pc else None
            if start is None:
                start = pause_start(now)
                set_pause_condition(st, Reason.CANARY_PAUSE, start)
                d.normal(Reason.PAUSED, f"paused at step {idx}: {step.describe()}")
            if math.isinf(step.pause_seconds):
                paused_msg = f"paused at step {idx}/{n}: waiting for promote"
                break
            end = start + timedelta(seconds=step.pause_seconds)
            if now < end:
                # a fixed message (no countdown): a resync must not rewrite the status
                paused_msg = f"paused at step {idx}/{n}: {step.describe()} until {fmt_time(end)}"
                d.wake_in(seconds_until(end, now))
                break
            drop_pause_condition(st, Reason.CANARY_PAUSE)
            _step_done(d, idx, n, step, now)
            idx += 1
        elif step.set_header_route is not None or step.set_mirror_route is not None:
            _step_done(d, idx, n, step, now)  # the route goes with the traffic change
            idx += 1
        elif step.experiment is not None:
            name = experiment_name(d.rollout, h, attempt(d), idx)
            exp = d.experiments.get(name)
            if exp is None:
                d.actions.append(CreateExperiment(name=name, step_index=idx, attempt=attempt(d),
                                                  stable_hash=stable, canary_hash=h))
            progress = step_progress(name, exp.phase if exp else None, exp.message if exp else "")
            if progress.state == "Running":
                waiting_msg = f"step {idx}/{n}: {progress.message}"
                in_analysis = True  # an experiment's time never counts towards the deadline
                break
            if progress.state == "Done":
                _step_done(d, idx, n, step, now)
                idx += 1
                continue
            if progress.state == "Inconclusive":
                paused_msg = (f"step {idx}/{n}: {progress.message}; promote skips the experiment "
                              "step, abort rolls back")
                inconclusive = True
                why = INCONCLUSIVE_EXPERIMENT
                break
            _abort_for_experiment(d, progress.message, now)
            break
        else:
            run = _step_analysis(d, h, idx, step)
            if run.phase in RUN_ACTIVE:
                waiting_msg = _analysis_msg(idx, n, run)
                in_analysis = True
                break
            if run.phase == RUN_SUCCESSFUL:
                _step_done(d, idx, n, step, now)
                idx += 1
                continue
            if run.phase == RUN_INCONCLUSIVE:
                paused_msg = (f"step {idx}/{n}: analysis {run.name} inconclusive: {run.message}; "
                              "promote skips the analysis step, abort rolls back")
                inconclusive = True
                break
            abort_for_analysis(d, run, now)
            break

    # The runs that stay: this attempt's background run and the current step's run (also
    # while a user holds the rollout). Every other run still measuring is stopped.
    keep = {bg.name} if bg is not None else set()
    if idx < n and steps[idx].analysis is not None:
        keep.add(_step_run_name(d, h, idx))
    st.current_step_index = idx
    if st.abort:  # an analysis failed
        sweep_runs(d, set())
        _aborted(d, spec, rss, h, stable, desired, now)
        return
    if routed:
        scale = _canary_scale(spec, idx, weight)
        desired.setdefault(h, replicas_for_weight(replicas, weight) if scale is None else scale)
        desired[stable] = _stable_replicas(spec, min(weight, heading_to))
    else:
        desired[h], desired[stable] = _basic_next(spec, rss, h, stable, 100 if idx >= n else weight)
        weight = _basic_share(rss, h)
    st.canary_weight = weight

    if idx >= n and not hold:
        sweep_runs(d, set())
        _promote_if_ready(d, spec, rss, h, stable, desired, now)
        return
    sweep_runs(d, keep)
    for r in (Reason.INCONCLUSIVE, INCONCLUSIVE_EXPERIMENT):
        if not inconclusive or r != why:
            drop_pause_condition(st, r)
    reason = why if inconclusive else Reason.CANARY_PAUSE
    if hold and not inconclusive:
        reason, paused_msg = held_by(d)
    if paused_msg is not None:
        st.phase = Phase.PAUSED
        if inconclusive:
            # Argo's fields, which users' scripts read: message and pause condition
            # InconclusiveAnalysisRun (InconclusiveExperiment), a controller pause; the
            # details in the condition.
            hold_inconclusive(st, why, now)
        else:
            st.message = paused_msg
            st.controller_pause = not hold
        st.set_condition(Cond.PAUSED, True, reason, paused_msg, now)
        st.progress_at = None  # time spent paused never counts towards the deadline
        d.actions.append(SetTraffic(stable, h, weight))
        return
    st.remove_condition(Cond.PAUSED)
    st.controller_pause = False
    st.phase = Phase.PROGRESSING
    st.message = waiting_msg or f"at step {idx}/{n}"
    if in_analysis:
        # Argo: time spent in an analysis step never counts towards the progress deadline
        # (the analysis has its own limits); the clock starts again when the step ends.
        st.progress_at = None
        st.set_condition(Cond.PROGRESSING, True, Reason.ROLLOUT_UPDATED, st.message, now)
    elif keep_progressing(d, spec, now):
        desired.pop(h, None)
        _aborted(d, spec, rss, h, stable, desired, now)
        return
    d.actions.append(SetTraffic(stable, h, weight))

def _step_done(d: Decision, idx: int, n: int, step: Step, now: datetime) -> None:
    d.status.progress_at = fmt_time(now)
    d.normal(Reason.STEP_COMPLETED, f"step {idx + 1}/{n} completed: {step.describe()}")

def _promote_if_ready(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs], h: str,
                      stable: str, desired: dict[str, int], now: datetime) -> None:
    st = d.status
    routed = spec.canary_strategy.traffic_routed
    if routed:
        desired[h] = spec.replicas
    avail = available(rss, h)
    st.remove_condition(Cond.PAUSED)
    st.controller_pause = False
    st.pause_conditions = []
    if (avail < spec.replicas or h not in rss
            or (not routed and not _basic_at(spec, rss, h, stable, 100))):
        st.phase = Phase.PROGRESSING
        st.message = (f"all steps done: scaling canary to {spec.replicas} before promotion "
                      f"({avail} available)")
        if keep_progressing(d, spec, now):
            desired.pop(h, None)
            _aborted(d, spec, rss, h, stable, desired, now)
            return
        d.actions.append(SetTraffic(stable, h, st.canary_weight))
        return
    if not routed:
        desired[h] = spec.replicas  # the old stable has no pods left: no scale-down delay
        d.actions.append(SetTraffic(h, h, 0))
        st.stable_rs = h
        st.canary_weight = 0
        st.promote_full = False
        st.current_step_index = len(spec.canary_strategy.steps)
        set_healthy(st, h, now)
        d.normal(Reason.COMPLETED, f"revision {h} promoted to stable: all pods replaced")
        return
    # Promotion: stable Service/subset to the new revision and all traffic to it; the
    # previous stable keeps its pods for scaleDownDelaySeconds (in-flight requests, and a
    # quick way back).
    d.actions.append(SetTraffic(h, h, 0))
    desired.pop(stable, None)
    delay = spec.canary_strategy.scale_down_delay_seconds
    st.scale_down_at[stable] = fmt_time(now + timedelta(seconds=delay))
    st.stable_rs = h
    st.canary_weight = 0
    st.promote_full = False
    st.current_step_index = len(spec.canary_strategy.steps)
    set_healthy(st, h, now)
    d.normal(Reason.COMPLETED, f"revision {h} promoted to stable; previous stable {stable} "
             f"scales down in {spec.canary_strategy.scale_down_delay_seconds}s")

def _aborted(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs], h: str, stable: str,
             desired: dict[str, int], now: datetime) -> None:
    st = d.status
    if not spec.canary_strategy.traffic_routed:
        _aborted_basic(d, spec, rss, h, stable, desired, now)
        return
    replicas = spec.replicas
    desired[stable] = replicas
    st.draining = False  # an abort drains by the same rule, below
    route = st.canary_route_hash
    # the pods carrying the canary share: the canary, or a superseded one still draining
    carrier = route if route is not None and route != stable else h
    weight = (_weight_back_to_stable(spec, rss, stable, st.canary_weight, carrier=carrier)
              if carrier in rss else 0)
    if weight != st.canary_weight:
        d.normal(Reason.WEIGHT_UPDATED, f"canary weight {st.canary_weight} -> {weight} (aborted)")
    st.canary_weight = weight
    if weight > 0:
        st.canary_route_hash = carrier if carrier != h else None
        d.actions.append(SetTraffic(stable, carrier, weight))
        desired[carrier] = max(rss[carrier].replicas, replicas_for_weight(replicas, weight))
        d.wake_in(5)
    else:
        # As in Argo: once the canary carries nothing, the canary Service (or subset)
        # selects the stable pods again rather than an aborted revision losing its pods.
        st.canary_route_hash = stable
        d.actions.append(SetTraffic(stable, stable, 0))
    rs = rss.get(h)
    delay = spec.canary_strategy.abort_scale_down_delay_seconds
    if (weight > 0 and carrier == h) or delay == 0:
        # Still carrying traffic (its scale-down delay starts once traffic has left), or
        # abortScaleDownDelaySeconds: 0, which (as in Argo) leaves the canary running.
        st.scale_down_at.pop(h, None)
        if rs is not None:
            desired[h] = max(rs.replicas, desired.get(h, 0))
    elif h not in st.scale_down_at:
        st.scale_down_at[h] = fmt_time(now + timedelta(seconds=delay))
    set_aborted(st, now, f" ({weight}% still on the canary until the stable has scaled back up)"
                if weight > 0 else "")

def _step_run_name(d: Decision, h: str, idx: int) -> str:
    return run_name(d.rollout, h, attempt(d), f"step{idx}")

def _step_analysis(d: Decision, h: str, idx: int, step: Step) -> AnalysisRunObs:
    return observe_run(d, _step_run_name(d, h, idx), step.analysis or {}, "step", idx, h)

def _background_run_name(d: Decision, h: str) -> str:
    """``bg``, then ``bg1``, ``bg2``... as promotes replace inconclusive runs."""
    k = analysis_state(d.status).restarts.get("background", 0)
    return run_name(d.rollout, h, attempt(d), f"bg{k}" if k else "bg")

def _background_run(d: Decision, spec: RolloutSpec, h: str) -> AnalysisRunObs | None:
    """The current background run as observed, if the spec has one."""
    if not isinstance(spec.canary_strategy.background_analysis, dict):
        return None
    return d.analysis_runs.get(_background_run_name(d, h))

def _background_analysis(d: Decision, spec: RolloutSpec, h: str, idx: int) -> AnalysisRunObs | None:
    bg = spec.canary_strategy.background_analysis
    if not isinstance(bg, dict):
        return None
    starting = bg.get("startingStep")
    if isinstance(starting, int) and idx < starting:
        return None
    name = _background_run_name(d, h)
    existing = d.analysis_runs.get(name)
    if existing is not None and existing.terminated and existing.phase not in (RUN_FAILED, RUN_ERROR):
        return None  # we stopped it (promotion under way): its end is not a verdict
    return observe_run(d, name, bg, "background", None, h)

def _analysis_msg(idx: int, n: int, run: AnalysisRunObs | None) -> str:
    if run is None:
        return f"step {idx}/{n}: starting analysis"
    return f"step {idx}/{n}: analysis {run.name} {run.phase.lower()}" + (
        f": {run.message}" if run.message else "")


def decide_canary(d: Decision, spec: RolloutSpec, obs: Observations, now: datetime) -> None:
    """The canary strategy's decision on a valid spec (``decide`` has checked it)."""
    st = d.status
    previous_hash = st.current_pod_hash
    assert obs.template is not None
    h = template_hash(obs.template)
    rss = obs.replica_sets
    st.selector = ",".join(f"{k}={v}" for k, v in sorted(spec.selector.items()))
    st.canary_service = spec.canary_strategy.canary_service
    st.stable_service = spec.canary_strategy.stable_service
    n = len(spec.canary_strategy.steps)
    desired: dict[str, int] = {}

    recover_stable(st, rss, h)
    if st.stable_rs is None:
        # First deploy: no previous version to protect, so the steps are skipped.
        if previous_hash != h:
            d.normal(Reason.NEW_RS, f"first revision {h} deployed without steps")
        st.stable_rs = st.current_pod_hash = h
        st.current_step_index = n
        st.current_step_hash = steps_hash(spec)
        st.canary_weight = 0
        st.progress_at = fmt_time(now)
    elif st.current_pod_hash != h:
        _new_revision(d, spec, h, now)
    elif h != st.stable_rs and st.current_step_hash != steps_hash(spec):
        d.normal(Reason.ROLLOUT_UPDATED, "steps changed: restarting the canary at step 0")
        _restart_steps(st, spec, now)

    if st.pending_action is not None:
        _apply_pending_action(d, spec, now)
    _check_route(st, rss)

    assert st.stable_rs is not None
    stable = st.stable_rs
    if h == stable:
        _healthy(d, spec, rss, h, desired, now)
    else:
        _canary(d, spec, rss, h, stable, desired, now)

    c = spec.canary_strategy
    _sweep_experiments(d, spec, h)
    roles = {st.stable_rs: c.stable_metadata}
    if h != st.stable_rs:
        roles[h] = c.canary_metadata
    if c.canary_metadata or c.stable_metadata or any(r.ephemeral for r in rss.values()):
        metadata_actions(d, rss, roles)
    restart_pods(d, spec, obs, rss, desired, now)
    scale_old(d, rss, desired, now, delay=spec.canary_strategy.scale_down_delay_seconds)
    if not c.traffic_routed:
        _keep_available_while_old_pods_leave(spec, rss, desired, {st.stable_rs, h})
    emit_replica_actions(d, rss, desired, h)
    born_with_role(d, roles)
    attach_routes(d, spec, h, available(rss, h))
    with_anti_affinity(d, h, st.stable_rs, c.anti_affinity)
    replica_counts(st, rss, h)
    prune_history(d, spec, rss, desired, {stable, h, st.stable_rs, st.canary_route_hash})


def abort_while_invalid(d: Decision, spec: RolloutSpec, obs: Observations, now: datetime) -> None:
    """The traffic part of an abort recorded while the spec is invalid: traffic back to the
    stable (as fast as a dynamically scaled stable allows), the stable scaled up; scale-downs
    wait until the spec is valid again."""
    st = d.status
    assert st.current_pod_hash is not None and st.stable_rs is not None
    desired: dict[str, int] = {}
    _aborted(d, spec, obs.replica_sets, st.current_pod_hash, st.stable_rs, desired, now)
    ups = {k: n for k, n in desired.items()
           if k in obs.replica_sets and n > obs.replica_sets[k].replicas}
    emit_replica_actions(d, obs.replica_sets, ups, st.current_pod_hash)


# --- the canary without a traffic router (rollouts.controller.basic_canary) -------------


def _others(rss: dict[str, ReplicaSetObs], h: str, stable: str) -> list[Pods]:
    return [Pods(r.replicas, r.current, r.available) for k, r in rss.items() if k not in (h, stable)]


def _pods(rss: dict[str, ReplicaSetObs], k: str) -> Pods | None:
    r = rss.get(k)
    return Pods(r.replicas, r.current, r.available) if r is not None else None


def _basic_next(spec: RolloutSpec, rss: dict[str, ReplicaSetObs], h: str, stable: str,
                weight: int) -> tuple[int, int]:
    c = spec.canary_strategy
    return next_counts(replicas=spec.replicas, weight=weight, max_surge=c.max_surge,
                       max_unavailable=c.max_unavailable, canary=_pods(rss, h),
                       stable=_pods(rss, stable), others=_others(rss, h, stable))


def _basic_at(spec: RolloutSpec, rss: dict[str, ReplicaSetObs], h: str, stable: str,
              weight: int) -> bool:
    c = spec.canary_strategy
    return at_target(replicas=spec.replicas, weight=weight, max_surge=c.max_surge,
                     max_unavailable=c.max_unavailable, canary=_pods(rss, h),
                     stable=_pods(rss, stable), others=_others(rss, h, stable))


def _basic_share(rss: dict[str, ReplicaSetObs], h: str) -> int:
    """The canary's traffic share now: its share of every available pod behind the Service."""
    return pod_share(available(rss, h), sum(r.available for r in rss.values()))


def _reached_weight(steps: tuple[Step, ...], idx: int) -> int:
    """The weight of the last setWeight step before ``idx`` (0 before the first)."""
    return next((s.set_weight for s in reversed(steps[:idx]) if s.set_weight is not None), 0)


def _canary_scale(spec: RolloutSpec, idx: int, weight: int) -> int | None:
    """The canary pod count a setCanaryScale at or before step ``idx`` asks for (Argo: until a
    matchTrafficWeight, and only while steps remain); None: sized by the traffic weight."""
    c = spec.canary_strategy
    if not c.traffic_routed or idx >= len(c.steps):
        return None
    for step in reversed(c.steps[:idx + 1]):
        sc = step.set_canary_scale
        if sc is None:
            continue
        if sc.match_traffic_weight:
            return None if step.index < idx else replicas_for_weight(spec.replicas, weight)
        if sc.replicas is not None:
            return sc.replicas
        return replicas_for_weight(spec.replicas, sc.weight or 0)
    return None


def _stable_back(spec: RolloutSpec, rss: dict[str, ReplicaSetObs], h: str) -> int:
    """The stable's size when the template is (back) on it. Without a router, older
    ReplicaSets still serving users leave only as fast as maxUnavailable allows, so the stable
    grows only within replicas + maxSurge meanwhile (Argo's basic canary with newRS = stable)."""
    rs = rss.get(h)
    c = spec.canary_strategy
    if c.traffic_routed or rs is None or rs.replicas >= spec.replicas:
        return spec.replicas
    surge, _ = fenceposts(c.max_surge, c.max_unavailable, spec.replicas)
    room = spec.replicas + surge - sum(r.replicas for r in rss.values())
    return min(spec.replicas, rs.replicas + max(room, 0))


def _aborted_basic(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs], h: str,
                   stable: str, desired: dict[str, int], now: datetime) -> None:
    """Abort without a router: the stable grows back and the canary shrinks within maxSurge
    and maxUnavailable (as in Argo, abortScaleDownDelaySeconds needs a router)."""
    st = d.status
    st.draining = False
    desired[h], desired[stable] = _basic_next(spec, rss, h, stable, 0)
    weight = _basic_share(rss, h)
    if weight != st.canary_weight:
        d.normal(Reason.WEIGHT_UPDATED, f"canary weight {st.canary_weight} -> {weight} (aborted)")
    st.canary_weight = weight
    if weight > 0 or available(rss, h) > 0:
        st.canary_route_hash = None
        d.actions.append(SetTraffic(stable, h, weight))
        d.wake_in(5)
    else:
        st.canary_route_hash = stable  # as with a router: the canary Service selects stable
        d.actions.append(SetTraffic(stable, stable, 0))
    st.scale_down_at.pop(h, None)
    set_aborted(st, now)


# --- experiment steps (rollouts.controller.experiment_step) ------------------------------


def _abort_for_experiment(d: Decision, message: str, now: datetime) -> None:
    if d.status.abort:
        return
    mark_aborted(d, now, by="experiment", reason=message,
                 event=f"rollout aborted: {message}; traffic back to stable")


def _failed_while_held(d: Decision, h: str, idx: int, step: Step, now: datetime) -> None:
    """A user's pause holds the steps, not the verdicts: the current step's run or Experiment
    failing aborts at once (Argo reconciles them whatever the pause)."""
    if step.analysis is not None:
        run = d.analysis_runs.get(_step_run_name(d, h, idx))
        if run is not None and run.phase in (RUN_FAILED, RUN_ERROR) and not run.terminated:
            abort_for_analysis(d, run, now)
    elif step.experiment is not None:
        name = experiment_name(d.rollout, h, attempt(d), idx)
        exp = d.experiments.get(name)
        if exp is not None:
            progress = step_progress(name, exp.phase, exp.message)
            if progress.state == "Failed":
                _abort_for_experiment(d, progress.message, now)


def _sweep_experiments(d: Decision, spec: RolloutSpec, h: str) -> None:
    """Only the current experiment step's Experiment keeps running (Argo): one of a step
    promoted past, a superseded revision or attempt, an abort or a promotion is stopped."""
    st = d.status
    steps = spec.canary_strategy.steps
    idx = st.current_step_index if st.current_step_index is not None else len(steps)
    keep = None
    if not st.abort and h != st.stable_rs and idx < len(steps) and steps[idx].experiment is not None:
        keep = experiment_name(d.rollout, h, attempt(d), idx)
    for name in experiments_to_terminate(keep, list(d.experiments.values())):
        d.actions.append(TerminateExperiment(name))


def _keep_available_while_old_pods_leave(spec: RolloutSpec, rss: dict[str, ReplicaSetObs],
                                         desired: dict[str, int], current: set[str | None]) -> None:
    """Without a router, older ReplicaSets (a superseded canary) serve users until they are
    gone, so they shrink only while ``replicas - maxUnavailable`` pods stay available, their
    unavailable pods first (Argo scales old ReplicaSets down the same way)."""
    c = spec.canary_strategy
    _, unavailable = fenceposts(c.max_surge, c.max_unavailable, spec.replicas)
    room = sum(r.available for r in rss.values()) - (spec.replicas - unavailable)
    for r in sorted(rss.values(), key=lambda r: (r.revision, r.hash)):
        want = desired.get(r.hash)
        if r.hash in current or want is None or want >= r.replicas:
            continue
        not_ready = max(0, r.replicas - r.available)
        keep = max(want, r.replicas - not_ready - max(room, 0))
        room -= max(0, r.replicas - keep - not_ready)
        desired[r.hash] = keep

"""ReplicaSet bookkeeping shared by the strategies: who is stable, scaling old revisions down
at their stored deadline, the safe order of replica actions, history pruning, restartAt.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from rollouts.api.constants import Reason
from rollouts.api.spec import AntiAffinity, RolloutSpec
from rollouts.api.status import RolloutStatus, fmt_time, parse_time
from rollouts.controller.decision import (
    ClusterAction,
    CreateReplicaSet,
    Decision,
    DeletePod,
    DeleteReplicaSet,
    Observations,
    ReplicaSetObs,
    ScaleReplicaSet,
    TerminateAnalysisRun,
)


def replicas_for_weight(replicas: int, weight: int) -> int:
    """Pods that can carry ``weight`` % of the traffic of ``replicas`` pods (rounded up)."""
    return -(-max(replicas, 0) * max(weight, 0) // 100)

def seconds_until(deadline: datetime, now: datetime) -> float:
    return (deadline - now).total_seconds()

def available(rss: dict[str, ReplicaSetObs], h: str) -> int:
    r = rss.get(h)
    return r.available if r else 0

def recover_stable(st: RolloutStatus, rss: dict[str, ReplicaSetObs], h: str) -> None:
    """If status was lost (or names a deleted ReplicaSet), adopt what runs on the cluster.

    The ReplicaSet with the most available pods is what serves users now, so it becomes
    the stable one (on a tie, the one that is not the current template, then the newest
    revision): traffic never moves to a revision that cannot carry it. With no
    ReplicaSet at all there is nothing to protect and the template deploys directly.
    """
    if st.stable_rs is not None and st.stable_rs in rss:
        return
    if not rss:
        st.stable_rs = None
        return
    best = max(rss.values(), key=lambda r: (r.available, r.hash != h, r.revision))
    st.stable_rs = best.hash
    if st.current_pod_hash is None or st.current_pod_hash not in rss:
        st.current_pod_hash = best.hash

def scale_old(d: Decision, rss: dict[str, ReplicaSetObs], desired: dict[str, int],
              now: datetime, *, delay: int) -> None:
    """Old ReplicaSets (and an aborted canary) scale to 0 at their stored deadline (set
    ``delay`` seconds from now when none is stored)."""
    st = d.status
    for hsh, rs in rss.items():
        if hsh in desired:
            continue
        if rs.replicas == 0:
            st.scale_down_at.pop(hsh, None)
            continue
        deadline = parse_time(st.scale_down_at.get(hsh))
        if deadline is None:
            deadline = now + timedelta(seconds=delay)
            st.scale_down_at[hsh] = fmt_time(deadline)
        if now >= deadline:
            desired[hsh] = 0
            d.normal(Reason.SCALED_DOWN, f"scaled down ReplicaSet {rs.name} to 0")
        else:
            desired[hsh] = rs.replicas
            d.wake_in(seconds_until(deadline, now))
    for hsh in list(st.scale_down_at):
        if hsh not in rss or (hsh in (st.stable_rs, st.current_pod_hash) and not st.abort):
            st.scale_down_at.pop(hsh)

def emit_replica_actions(d: Decision, rss: dict[str, ReplicaSetObs], desired: dict[str, int],
                          h: str) -> None:
    creates: list[ClusterAction] = []
    ups: list[ClusterAction] = []
    downs: list[ClusterAction] = []
    for hsh, count in desired.items():
        rs = rss.get(hsh)
        if rs is None:
            if hsh == h:
                rev = max((r.revision for r in rss.values()), default=0) + 1
                creates.append(CreateReplicaSet(hsh, count, rev))
        elif count > rs.replicas:
            ups.append(ScaleReplicaSet(hsh, count))
        elif count < rs.replicas:
            downs.append(ScaleReplicaSet(hsh, count))
    # Pods come up before traffic moves (the steps only shift traffic to pods they saw
    # available) and go away only after traffic has left them. Runs are stopped after the
    # traffic change (Argo reconciles analysis after traffic): a run that cannot be
    # stopped must not hold back an abort.
    stops = [a for a in d.actions if isinstance(a, TerminateAnalysisRun)]
    rest = [a for a in d.actions if not isinstance(a, TerminateAnalysisRun)]
    d.actions[:] = [*creates, *ups, *rest, *downs, *stops]

def with_anti_affinity(d: Decision, h: str, avoid: str | None, aa: AntiAffinity | None) -> None:
    """The new revision's ReplicaSet, if this decision creates it, keeps its pods off the
    nodes of revision ``avoid`` (Argo's antiAffinity, set when the ReplicaSet is created)."""
    if aa is None or avoid is None or avoid == h:
        return
    d.actions[:] = [replace(a, anti_affinity=aa, avoid_hash=avoid)
                    if isinstance(a, CreateReplicaSet) and a.hash == h else a for a in d.actions]


def replica_counts(st: RolloutStatus, rss: dict[str, ReplicaSetObs], h: str) -> None:
    st.replicas = sum(r.replicas for r in rss.values())
    st.ready_replicas = sum(r.ready for r in rss.values())
    st.available_replicas = sum(r.available for r in rss.values())
    st.updated_replicas = rss[h].replicas if h in rss else 0

def prune_history(d: Decision, spec: RolloutSpec, rss: dict[str, ReplicaSetObs],
                   desired: dict[str, int], keep: set[str | None]) -> None:
    idle = sorted((r for r in rss.values() if r.hash not in keep and r.replicas == 0
                   and desired.get(r.hash, 0) == 0), key=lambda r: (r.revision, r.hash))
    excess = len(idle) - spec.revision_history_limit
    for r in idle[:max(excess, 0)]:
        d.actions.append(DeleteReplicaSet(r.hash))

def restart_pending(spec: RolloutSpec, status: RolloutStatus, now: datetime) -> bool:
    """Whether spec.restartAt asks for pods to be restarted now (the reconciler then
    gathers the pods)."""
    ra = parse_time(spec.restart_at)
    done = parse_time(status.restarted_at)
    return ra is not None and ra <= now and (done is None or done < ra)

def restart_pods(d: Decision, spec: RolloutSpec, obs: Observations, rss: dict[str, ReplicaSetObs],
                  desired: dict[str, int], now: datetime) -> None:
    """Argo's restartAt: replace every pod created before it, one at a time, only while
    every pod is available (so capacity never drops by more than one pod)."""
    st = d.status
    ra = parse_time(spec.restart_at)
    if ra is None or st.abort:
        return
    if ra > now:
        d.wake_in(seconds_until(ra, now))
        return
    if not restart_pending(spec, st, now):
        return
    old = sorted((p for p in obs.pods if p.created < ra and not p.deleting), key=lambda p: p.created)
    if not old:
        st.restarted_at = spec.restart_at
        d.normal("RolloutRestarted", f"all pods restarted (restartAt {spec.restart_at})")
        return
    steady = all(rss[h].available >= rss[h].replicas and desired.get(h, rss[h].replicas) == rss[h].replicas
                 for h in rss if rss[h].replicas > 0)
    if steady and not any(p.deleting for p in obs.pods):
        d.actions.append(DeletePod(old[0].name))
        d.normal("RestartingPod",
                 f"restarting pod {old[0].name} ({len(old)} left, restartAt {spec.restart_at})")
    d.wake_in(1)

"""Kubernetes-native authentication and authorization of HTTP callers.

A bearer token is authenticated with a TokenReview and each request authorized with a
SubjectAccessReview, so whoever may ``promote`` a rollout in RBAC may promote it over
HTTP, and nobody else. Decisions are cached briefly (keyed by a hash of the token, never
the token itself) so a chat-ops bot polling a rollout does not double the API load.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from rollouts.api.constants import GROUP, ROLLOUT_PLURAL
from rollouts.kube.client import JSON, Kube

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
SELF_SUBJECT_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class UserInfo:
    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict, compare=False, hash=False)

    @staticmethod
    def from_dict(d: Any) -> UserInfo:
        d = d if isinstance(d, dict) else {}
        extra = d.get("extra") if isinstance(d.get("extra"), dict) else {}
        return UserInfo(username=str(d.get("username") or ""), uid=str(d.get("uid") or ""),
                        groups=tuple(str(g) for g in d.get("groups") or []),
                        extra={str(k): [str(x) for x in v] for k, v in extra.items()
                               if isinstance(v, list)})


class TTLCache(Generic[K, V]):
    """A small LRU with a time to live; the clock is injectable for tests."""

    def __init__(self, ttl: float, size: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.size, self.clock = ttl, size, clock
        self._d: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def lookup(self, key: K) -> tuple[bool, V | None]:
        """(found, value): a cached None is a hit too."""
        hit = self._d.get(key)
        if hit is None:
            return False, None
        if hit[0] < self.clock():
            del self._d[key]
            return False, None
        return True, hit[1]

    def put(self, key: K, value: V) -> None:
        self._d[key] = (self.clock() + self.ttl, value)
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Authorizer:
    """TokenReview + SubjectAccessReview with the controller's own credentials.

    ``audiences``: tokens minted for one of these (``kubectl create token --audience``) are
    accepted as well as tokens for the API server's own audience. A rejected token is
    remembered for ``negative_ttl`` in a cache of its own, concurrent requests with the same
    token share one TokenReview, and at most ``max_reviews`` TokenReviews run at once: a
    flood of bad tokens cannot become a flood of TokenReviews, nor push the good tokens out.
    """

    def __init__(self, kube: Kube, ttl: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, *,
                 audiences: tuple[str, ...] = (), negative_ttl: float = 5.0,
                 negative_size: int = 1024, max_reviews: int = 8) -> None:
        self.kube = kube
        self.audiences = tuple(a for a in audiences if a)
        self._users: TTLCache[str, UserInfo] = TTLCache(ttl, clock=clock)
        self._rejected: TTLCache[str, bool] = TTLCache(negative_ttl, size=negative_size, clock=clock)
        self._decisions: TTLCache[tuple[str, ...], bool] = TTLCache(ttl, clock=clock)
        self._inflight: dict[str, asyncio.Future[UserInfo | None]] = {}
        self._reviews = asyncio.Semaphore(max_reviews)

    async def authenticate(self, token: str) -> UserInfo | None:
        key = token_key(token)
        found, user = self._users.lookup(key)
        if found:
            return user
        if self._rejected.lookup(key)[0]:
            return None
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._review(key, token))
            self._inflight[key] = pending
            pending.add_done_callback(lambda f: self._settled(key, f))
        # shielded: a caller that hangs up does not cancel the review the others wait for
        return await asyncio.shield(pending)

    def _settled(self, key: str, fut: asyncio.Future[UserInfo | None]) -> None:
        self._inflight.pop(key, None)
        if not fut.cancelled():
            fut.exception()  # retrieved here too, so no waiter left is no warning

    async def _review(self, key: str, token: str) -> UserInfo | None:
        async with self._reviews:
            user = None
            if self.audiences:
                user = await self._token_review(token, self.audiences)
            if user is None:
                user = await self._token_review(token, ())
        if user is None:
            self._rejected.put(key, True)
        else:
            self._users.put(key, user)
        return user

    async def _token_review(self, token: str, audiences: tuple[str, ...]) -> UserInfo | None:
        spec: JSON = {"token": token}
        if audiences:
            spec["audiences"] = list(audiences)
        review: JSON = await self.kube.create(TOKEN_REVIEWS, {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec})
        st = review.get("status") or {}
        if st.get("authenticated") is not True:
            return None
        granted = [str(a) for a in st.get("audiences") or []]
        # an audience-aware authenticator names the audience it matched; an empty list
        # means "valid for the API server's audience", which we accept anyway
        if audiences and granted and not set(granted) & set(audiences):
            return None
        user = UserInfo.from_dict(st.get("user"))
        return user if user.username else None

    async def allowed(self, token: str, user: UserInfo, verb: str, namespace: str,
                      name: str = "") -> bool:
        """May ``user`` do ``verb`` on rollouts (in ``namespace``, on ``name``)?"""
        attrs: JSON = {"verb": verb, "group": GROUP, "resource": ROLLOUT_PLURAL,
                       "namespace": namespace}
        if name:
            attrs["name"] = name
        return await self._access(token, user, (verb, namespace, name),
                                  {"resourceAttributes": attrs})

    async def allowed_path(self, token: str, user: UserInfo, path: str, verb: str = "get") -> bool:
        """May ``user`` do ``verb`` on the non-resource URL ``path`` (e.g. get /metrics)?
        The check controller-runtime's secure metrics and kube-rbac-proxy make."""
        return await self._access(token, user, ("path", verb, path),
                                  {"nonResourceAttributes": {"path": path, "verb": verb}})

    async def _access(self, token: str, user: UserInfo, what: tuple[str, ...], attrs: JSON) -> bool:
        key = (token_key(token), *what)
        found, decision = self._decisions.lookup(key)
        if found and decision is not None:
            return decision
        spec: JSON = {"user": user.username, "groups": list(user.groups), **attrs}
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = user.extra
        review: JSON = await self.kube.create(SUBJECT_ACCESS_REVIEWS, {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec})
        ok = (review.get("status") or {}).get("allowed") is True
        self._decisions.put(key, ok)
        return ok


async def whoami(kube: Kube) -> str | None:
    """The username the API server sees for these credentials (SelfSubjectReview)."""
    review: JSON = await kube.create(SELF_SUBJECT_REVIEWS, {
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    name = ((review.get("status") or {}).get("userInfo") or {}).get("username")
    return str(name) if name else None

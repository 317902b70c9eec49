"""Kubernetes-native authentication and authorization of HTTP callers.

A bearer token is authenticated with a TokenReview and each request authorized with a
SubjectAccessReview, so whoever may ``promote`` a rollout in RBAC may promote it over
HTTP, and nobody else. Decisions are cached briefly (keyed by a hash of the token, never
the token itself) so a chat-ops bot polling a rollout does not double the API load.
"""

from __future__ import annotations

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
    """TokenReview + SubjectAccessReview with the controller's own credentials."""

    def __init__(self, kube: Kube, ttl: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kube = kube
        # None caches "not authenticated" too, so a flood of bad tokens is cheap
        self._users: TTLCache[str, UserInfo | None] = TTLCache(ttl, clock=clock)
        self._decisions: TTLCache[tuple[str, str, str, str], bool] = TTLCache(ttl, clock=clock)

    async def authenticate(self, token: str) -> UserInfo | None:
        key = token_key(token)
        found, cached = self._users.lookup(key)
        if found:
            return cached
        review: JSON = await self.kube.create(TOKEN_REVIEWS, {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token}})
        st = review.get("status") or {}
        user = UserInfo.from_dict(st.get("user")) if st.get("authenticated") is True else None
        if user is not None and not user.username:
            user = None
        self._users.put(key, user)
        return user

    async def allowed(self, token: str, user: UserInfo, verb: str, namespace: str,
                      name: str = "") -> bool:
        key = (token_key(token), verb, namespace, name)
        found, decision = self._decisions.lookup(key)
        if found and decision is not None:
            return decision
        attrs: JSON = {"verb": verb, "group": GROUP, "resource": ROLLOUT_PLURAL,
                       "namespace": namespace}
        if name:
            attrs["name"] = name
        spec: JSON = {"user": user.username, "groups": list(user.groups),
                      "resourceAttributes": attrs}
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

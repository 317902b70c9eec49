"""Loads the notification ConfigMap and the Secrets its receivers name (the controller's
own namespace; RBAC: get on configmaps and secrets there).

A receiver whose Secret or key is missing (or holds no usable value) is left out of
``Loaded.secrets`` with an error that is logged once; sending to it is then counted as a
failure (reason ``no_url``/``no_secret``) instead of raising anywhere."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from dataclasses import dataclass, field

from rollouts.kube.client import JSON, SECRETS, Kube, KubeError, Resource
from rollouts.kube.informer import Informer
from rollouts.notify.config import NotifyConfig, parse_config

log = logging.getLogger(__name__)
CONFIGMAPS = Resource("", "v1", "configmaps")


@dataclass(frozen=True)
class Loaded:
    config: NotifyConfig = field(default_factory=NotifyConfig)
    urls: dict[str, str] = field(default_factory=dict)  # receiver name -> URL from its Secret
    errors: tuple[str, ...] = ()
    # receiver name -> field -> value, for receivers whose every Secret value was found
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)


class ConfigSource:
    """``watch()`` keeps the ConfigMap and the namespace's Secrets in informers, so a
    reload reads memory instead of the API server (an idle controller sends nothing);
    without it each load reads them directly."""

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube, self.namespace, self.name = kube, namespace, name
        self._last_errors: tuple[str, ...] | None = None
        self._informers: dict[str, Informer] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def watch(self, timeout: float = 30.0) -> None:
        """Start the informers; falls back to direct reads when they cannot list (RBAC)."""
        cms = Informer(self.kube, CONFIGMAPS, self.namespace,
                       field_selector=f"metadata.name={self.name}")
        secrets = Informer(self.kube, SECRETS, self.namespace)
        for kind, inf in (("configmaps", cms), ("secrets", secrets)):
            task = asyncio.create_task(inf.run())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await inf.first_list_done.wait()
            if inf.synced.is_set():
                self._informers[kind] = inf
                self._tasks.append(task)
            else:
                log.warning("notifications config: cannot watch %s in %s (%s): reading them "
                            "on each reload", kind, self.namespace, inf.first_list_error)
                task.cancel()

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _get(self, res: Resource, name: str) -> JSON | None:
        inf = self._informers.get(res.plural)
        if inf is not None:
            return inf.get(f"{self.namespace}/{name}")
        return await self.kube.get_or_none(res.path(self.namespace, name))

    async def load(self) -> Loaded:
        """The current configuration; problems are logged once each and never raised."""
        try:
            cm = await self._get(CONFIGMAPS, self.name)
        except KubeError as e:
            loaded = Loaded(errors=(f"ConfigMap {self.namespace}/{self.name}: {e}",))
        else:
            loaded = await self._resolve(parse_config((cm or {}).get("data")))
        if loaded.errors != self._last_errors:
            for err in loaded.errors:
                log.warning("notifications config: %s", err)
            self._last_errors = loaded.errors
        return loaded

    async def _resolve(self, cfg: NotifyConfig) -> Loaded:
        errors = list(cfg.errors)
        found: dict[str, dict[str, str]] = {}
        secrets: dict[str, dict[str, str] | None] = {}
        for r in cfg.receivers.values():
            values: dict[str, str] = {}
            for fieldname, ref in r.refs().items():
                if ref.name not in secrets:
                    try:
                        s = await self._get(SECRETS, ref.name)
                        secrets[ref.name] = (s or {}).get("data") or {} if s is not None else None
                    except KubeError as e:
                        errors.append(f"receiver.{r.name}: Secret {ref.name}: {e}")
                        secrets[ref.name] = {}
                        break
                data = secrets[ref.name]
                if data is None:
                    errors.append(f"receiver.{r.name}: Secret {self.namespace}/{ref.name} not found")
                    break
                if ref.key not in data:
                    errors.append(f"receiver.{r.name}: Secret {ref.name} has no key {ref.key}")
                    break
                try:
                    value = base64.b64decode(data[ref.key], validate=True).decode().strip()
                except (binascii.Error, UnicodeDecodeError):
                    value = ""
                if fieldname == "url" and not value.startswith(("http://", "https://")):
                    errors.append(f"receiver.{r.name}: Secret {ref.name} key {ref.key} holds no http(s) URL")
                    break
                if not value:
                    errors.append(f"receiver.{r.name}: Secret {ref.name} key {ref.key} is empty")
                    break
                values[fieldname] = value
            else:
                found[r.name] = values
        urls = {name: v["url"] for name, v in found.items() if "url" in v}
        return Loaded(cfg, urls, tuple(errors), found)

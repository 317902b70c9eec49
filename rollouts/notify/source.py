"""Loads the notification ConfigMap and the Secrets its receivers name (the controller's
own namespace; RBAC: get on configmaps and secrets there).

A receiver whose Secret or key is missing (or holds no usable value) is left out of
``Loaded.secrets`` with an error that is logged once; sending to it is then counted as a
failure (reason ``no_url``/``no_secret``) instead of raising anywhere."""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass, field

from rollouts.kube.client import SECRETS, Kube, KubeError, Resource
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
    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube, self.namespace, self.name = kube, namespace, name
        self._last_errors: tuple[str, ...] | None = None

    async def load(self) -> Loaded:
        """The current configuration; problems are logged once each and never raised."""
        try:
            cm = await self.kube.get_or_none(CONFIGMAPS.path(self.namespace, self.name))
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
                        s = await self.kube.get_or_none(SECRETS.path(self.namespace, ref.name))
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

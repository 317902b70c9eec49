"""AWS credentials from the controller's environment, as the AWS SDK's default chain
reads them for a pod: static keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN), else a web identity (EKS IRSA: AWS_ROLE_ARN and
AWS_WEB_IDENTITY_TOKEN_FILE) exchanged at STS (AssumeRoleWithWebIdentity, an unsigned
call) for temporary credentials, kept until five minutes before they expire."""

from __future__ import annotations

import asyncio
import os
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

from rollouts.metrics.providers.base import ProviderError, http_call, server_message
from rollouts.metrics.providers.sigv4 import Credentials

_cache: dict[tuple[str, str], tuple[Credentials, float]] = {}


def region() -> str:
    r = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not r:
        raise ProviderError("cloudWatch: no region: set AWS_REGION in the controller's environment")
    return r


async def credentials(timeout: float) -> Credentials:
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        return Credentials(key, secret, os.environ.get("AWS_SESSION_TOKEN") or None)
    role, token_file = os.environ.get("AWS_ROLE_ARN"), os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE")
    if not (role and token_file):
        raise ProviderError("cloudWatch: no AWS credentials: set AWS_ACCESS_KEY_ID and "
                            "AWS_SECRET_ACCESS_KEY, or AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE "
                            "(EKS IRSA), in the controller's environment")
    cached = _cache.get((role, token_file))
    if cached and cached[1] - 300 > time.time():
        return cached[0]
    try:
        token = (await asyncio.to_thread(Path(token_file).read_text)).strip()
    except OSError as e:
        raise ProviderError(f"cloudWatch: web identity token {token_file}: {e.strerror}") from e
    endpoint = (os.environ.get("AWS_ENDPOINT_URL_STS") or os.environ.get("AWS_ENDPOINT_URL")
                or f"https://sts.{region()}.amazonaws.com")
    creds, expires = await _assume(endpoint, role, token, timeout)
    _cache[(role, token_file)] = (creds, expires)
    return creds


async def _assume(endpoint: str, role: str, token: str, timeout: float) -> tuple[Credentials, float]:
    """Temporary credentials and when they expire (unix time)."""
    body = urlencode({"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15",
                      "RoleArn": role, "WebIdentityToken": token,
                      "RoleSessionName": os.environ.get("AWS_ROLE_SESSION_NAME")
                      or "rollouts-controller"})
    r = await http_call("STS", "POST", endpoint.rstrip("/") + "/", timeout=timeout,
                        headers={"Content-Type": "application/x-www-form-urlencoded"},
                        content=body)
    try:
        root = ET.fromstring(r.text)
    except ET.ParseError as e:
        raise ProviderError(f"STS did not return XML: {server_message(r.text)}") from e
    found = {el.tag.rsplit("}", 1)[-1]: (el.text or "") for el in root.iter()}
    if not all(found.get(k) for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")):
        raise ProviderError(f"STS: no credentials in the answer: {server_message(r.text)}")
    creds = Credentials(found["AccessKeyId"], found["SecretAccessKey"], found["SessionToken"])
    try:
        expires = datetime.fromisoformat(found.get("Expiration", "").replace("Z", "+00:00")).timestamp()
    except ValueError:
        expires = time.time() + 900  # STS' shortest session
    return creds, expires

"""AWS Signature Version 4 for one request (the documented algorithm: canonical request,
string to sign, HMAC-SHA256 key chain). Only what the CloudWatch provider needs."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlsplit


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _canonical_query(query: str) -> str:
    pairs = []
    for part in filter(None, query.split("&")):
        k, _, v = part.partition("=")
        pairs.append((quote(k, safe="-_.~"), quote(v, safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def sign(method: str, url: str, headers: dict[str, str], body: bytes, *, creds: Credentials,
         region: str, service: str, when: datetime) -> dict[str, str]:
    """``headers`` plus host, x-amz-date, x-amz-security-token and Authorization."""
    parts = urlsplit(url)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    out = {**headers, "host": parts.netloc, "x-amz-date": amz_date}
    if creds.session_token:
        out["x-amz-security-token"] = creds.session_token
    canon = {k.lower(): " ".join(v.strip().split()) for k, v in out.items()}
    signed = ";".join(sorted(canon))
    request = "\n".join([
        method.upper(), quote(parts.path or "/", safe="/-_.~"), _canonical_query(parts.query),
        "".join(f"{k}:{canon[k]}\n" for k in sorted(canon)), signed,
        hashlib.sha256(body).hexdigest()])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(request.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{creds.secret_key}".encode(), day), region), service),
                "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
                            f"SignedHeaders={signed}, Signature={signature}")
    return out

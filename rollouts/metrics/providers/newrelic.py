"""Argo's ``newRelic`` provider: an NRQL query through NerdGraph (``POST /graphql`` with
the ``API-Key`` header), as Argo sends it: ``actor.account(id).nrql(query, timeout)``.

The Secret (``profile``, default ``newrelic``, in the controller's namespace) holds
``personal-api-key`` and ``account-id``; ``region`` (us or eu) picks the endpoint and
``base-url-nerdgraph`` overrides it. The value is the single result row (a map: the
conditions read ``result.count``), or the list of rows; no rows is an Error ("no data").
"""

from __future__ import annotations

from typing import Any

from rollouts.metrics.providers.base import (
    Context,
    ProviderError,
    Reading,
    http_call,
    json_of,
    need_str,
    number,
    required_keys,
)

WHAT = "New Relic"
ENDPOINTS = {"us": "https://api.newrelic.com/graphql", "eu": "https://api.eu.newrelic.com/graphql",
             "staging": "https://staging-api.newrelic.com/graphql"}
NRQL = """query ($query: Nrql!, $accountId: Int!, $timeout: Seconds!) {
  actor { account(id: $accountId) { nrql(query: $query, timeout: $timeout) { results } } }
}"""
DEFAULT_TIMEOUT_S = 5  # Argo's NRQL timeout


def validate(spec: dict[str, Any]) -> list[str]:
    problems = []
    if not isinstance(spec.get("query"), str) or not spec["query"].strip():
        problems.append("newRelic.query is required")
    t = spec.get("timeout")
    if t is not None and not (isinstance(t, str) and "{{" in t) and (
            isinstance(t, bool) or not isinstance(t, int) or t < 0):
        problems.append(f"newRelic.timeout must be a number of seconds >= 0, got {t!r}")
    if "profile" in spec and not isinstance(spec["profile"], str):
        problems.append("newRelic.profile must be a Secret name")
    return problems


async def results(spec: dict[str, Any], query: str, ctx: Context) -> list[Any]:
    profile = str(spec.get("profile") or "newrelic")
    data = await ctx.secret(profile, what="newRelic")
    key, account = required_keys(data, ("personal-api-key", "account-id"), secret=profile,
                                 what="newRelic")
    try:
        account_id = int(account)
    except ValueError as e:
        raise ProviderError(f"newRelic: Secret {profile} account-id {account!r} is not a number") from e
    region = (data.get("region") or "us").strip().lower()
    url = data.get("base-url-nerdgraph") or ENDPOINTS.get(region)
    if url is None:
        raise ProviderError(f"newRelic: Secret {profile} region {region!r} is not one of "
                            f"{', '.join(ENDPOINTS)}")
    timeout = spec.get("timeout", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
        raise ProviderError(f"newRelic.timeout must be a number of seconds >= 0, got {timeout!r}")
    r = await http_call(WHAT, "POST", url.strip(), timeout=float(timeout) + 10,
                        headers={"API-Key": key, "Accept": "application/json"},
                        json_body={"query": NRQL, "variables": {
                            "query": query, "accountId": account_id, "timeout": timeout}})
    doc = json_of(r, WHAT)
    if not isinstance(doc, dict):
        raise ProviderError(f"New Relic: unexpected response {str(doc)[:200]}")
    if doc.get("errors"):
        msgs = [e.get("message", str(e)) if isinstance(e, dict) else str(e) for e in doc["errors"]]
        raise ProviderError(f"New Relic rejected the query: {'; '.join(msgs)[:300]}")
    try:
        rows = doc["data"]["actor"]["account"]["nrql"]["results"]
    except (KeyError, TypeError) as e:
        raise ProviderError(f"New Relic: no nrql results in the response {str(doc)[:200]}") from e
    if not isinstance(rows, list):
        raise ProviderError(f"New Relic: results is not a list: {str(rows)[:200]}")
    return rows


async def measure(spec: dict[str, Any], ctx: Context) -> Reading:
    query = need_str(spec, "query", "newRelic")
    rows = await results(spec, query, ctx)
    if not rows or rows == [{}]:
        raise ProviderError(f"newRelic: the NRQL query returned no results: {query[:200]!r}")
    return Reading(value=rows[0] if len(rows) == 1 else rows,
                   metadata={"ResolvedNewRelicQuery": query})


async def counter(spec: dict[str, Any], query: str, ctx: Context) -> float | None:
    """A judge counter: the query's one number (``SELECT count(*) FROM ...``), summed over
    rows (FACET); None when there is no row or the value is null."""
    rows = await results(spec, query, ctx)
    total, seen = 0.0, False
    for row in rows:
        nums = {k: v for k, v in (row or {}).items() if k not in ("facet", "timestamp")
                and not isinstance(v, (str, list, dict)) } if isinstance(row, dict) else {}
        if len(nums) != 1:
            raise ProviderError(f"newRelic: a judge query must return one number per row, got {row!r}")
        (v,) = nums.values()
        if v is not None:
            total, seen = total + number(v, "New Relic value"), True
    return total if seen else None

"""In-test servers for the SaaS metric providers, written from each vendor's public API
reference: the same paths, authentication headers, query parameters, JSON (or XML)
shapes, error bodies and rate limiting (429 with the vendor's headers). Each holds the
data a test puts in it and records the requests it got, so tests can check both sides.

Nothing here knows about our provider code: a real account would answer the same way.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from aiohttp import web


@dataclass
class Limits:
    """The next ``count`` requests get a 429 (the vendor's rate-limit answer)."""
    count: int = 0
    retry_after: int = 1

    def take(self) -> bool:
        if self.count > 0:
            self.count -= 1
            return True
        return False


# --- Datadog: /api/v1/query and /api/v2/query/scalar ---------------------------------------

@dataclass
class Datadog:
    api_key: str = "dd-api"
    app_key: str = "dd-app"
    series: dict[str, list[float | None]] = field(default_factory=dict)  # metric query -> points
    groups: dict[str, dict[str, float]] = field(default_factory=dict)  # "q by {tag}" -> tag -> v
    limits: Limits = field(default_factory=Limits)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v1/query", self.v1)
        app.router.add_post("/api/v2/query/scalar", self.v2)
        return app

    def _gate(self, req: web.Request) -> web.Response | None:
        self.requests.append({"path": req.path, "query": dict(req.query),
                              "headers": dict(req.headers)})
        if self.limits.take():  # Datadog's rate-limit headers (seconds until the reset)
            return web.json_response(
                {"errors": ["Rate limit of traffic exceeded"]}, status=429,
                headers={"X-RateLimit-Limit": "100", "X-RateLimit-Period": "10",
                         "X-RateLimit-Remaining": "0",
                         "X-RateLimit-Reset": str(self.limits.retry_after)})
        if req.headers.get("DD-API-KEY") != self.api_key or \
                req.headers.get("DD-APPLICATION-KEY") != self.app_key:
            return web.json_response({"errors": ["Forbidden"]}, status=403)
        return None

    async def v1(self, req: web.Request) -> web.Response:
        if (denied := self._gate(req)) is not None:
            return denied
        q, frm, to = req.query.get("query"), req.query.get("from"), req.query.get("to")
        if not q or not (frm or "").isdigit() or not (to or "").isdigit():
            return web.json_response({"errors": ["Invalid query parameters: query, from and to "
                                                 "(seconds since the epoch) are required"]},
                                     status=400)
        if q.count("(") != q.count(")") or q.count("{") != q.count("}"):
            return web.json_response({"errors": [f"Error parsing query: \n unable to parse {q}"]},
                                     status=400)
        f, t = int(frm), int(to)
        pts = self.series.get(q)
        series = []
        if pts:
            step = max(1, (t - f) // max(len(pts), 1))
            pointlist = [[float((f + (i + 1) * step) * 1000), v] for i, v in enumerate(pts)]
            series = [{"metric": q, "display_name": q, "pointlist": pointlist, "scope": "*",
                       "expression": q, "unit": None, "aggr": None, "length": len(pointlist),
                       "start": pointlist[0][0], "end": pointlist[-1][0], "interval": step,
                       "tag_set": [], "attributes": {}, "query_index": 0}]
        return web.json_response({"status": "ok", "res_type": "time_series", "resp_version": 1,
                                  "query": q, "from_date": f * 1000, "to_date": t * 1000,
                                  "series": series, "group_by": [], "message": "", "values": []})

    async def v2(self, req: web.Request) -> web.Response:
        if (denied := self._gate(req)) is not None:
            return denied
        try:
            body = await req.json()
            attrs = body["data"]["attributes"]
            assert body["data"]["type"] == "scalar_request"
            frm, to = int(attrs["from"]), int(attrs["to"])
            queries = attrs["queries"]
            assert frm < to and all(q["data_source"] == "metrics" for q in queries)
        except (ValueError, KeyError, TypeError, AssertionError):
            return web.json_response({"errors": ["Invalid request body: expected data.type "
                                                 "scalar_request with attributes from, to (ms), "
                                                 "queries"]}, status=400)
        self.requests[-1]["body"] = body
        values: dict[str, float | None] = {}
        grouped: dict[str, float] | None = None
        for q in queries:
            if q["query"] in self.groups:
                grouped = self.groups[q["query"]]
                continue
            pts = [p for p in self.series.get(q["query"], []) if p is not None]
            agg = q.get("aggregator", "avg")
            values[q["name"]] = (None if not pts else pts[-1] if agg == "last" else
                                 sum(pts) if agg == "sum" else max(pts) if agg == "max" else
                                 min(pts) if agg == "min" else sum(pts) / len(pts))
        if grouped is not None:
            cols = [{"name": "query", "type": "number", "values": list(grouped.values()),
                     "meta": {"unit": None}},
                    {"name": "group", "type": "group", "values": [[g] for g in grouped]}]
            return web.json_response({"data": {"type": "scalar_response",
                                               "attributes": {"columns": cols}}})
        formulas = attrs.get("formulas") or []
        if formulas:
            m = re.fullmatch(r"\s*(\w+)\s*([-+*/])\s*(\w+)\s*", formulas[0]["formula"])
            if not m or m[1] not in values or m[3] not in values:
                return web.json_response({"errors": [f"Invalid formula: {formulas[0]['formula']}"]},
                                         status=400)
            a, b = values[m[1]], values[m[3]]
            out = None if a is None or b is None or (m[2] == "/" and b == 0) else (
                a + b if m[2] == "+" else a - b if m[2] == "-" else a * b if m[2] == "*" else a / b)
            cols = [{"name": formulas[0]["formula"], "type": "number", "values": [out]}]
        else:
            cols = [{"name": name, "type": "number", "values": [v] if v is not None else []}
                    for name, v in values.items()]
        return web.json_response({"data": {"type": "scalar_response",
                                           "attributes": {"columns": cols}}})


# --- New Relic: NerdGraph POST /graphql -----------------------------------------------------

@dataclass
class NewRelic:
    api_key: str = "NRAK-test"
    account_id: int = 1234567
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # NRQL -> rows
    limits: Limits = field(default_factory=Limits)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/graphql", self.graphql)
        return app

    async def graphql(self, req: web.Request) -> web.Response:
        if self.limits.take():
            return web.json_response({"errors": [{"message": "Too many requests"}]}, status=429,
                                     headers={"Retry-After": str(self.limits.retry_after)})
        if req.headers.get("API-Key") != self.api_key:
            return web.json_response({"errors": [{"message": "Invalid API key"}]}, status=401)
        try:
            body = await req.json()
            query, variables = body["query"], body.get("variables") or {}
        except (ValueError, KeyError, TypeError):
            return web.json_response({"errors": [{"message": "Bad request: expected a JSON body "
                                                             "with query and variables"}]},
                                     status=400)
        self.requests.append({"headers": dict(req.headers), "body": body})
        if "nrql(" not in query or "$accountId" not in query:
            return web.json_response({"errors": [{"message": "Unsupported query in this server"}]})
        nrql, account = variables.get("query"), variables.get("accountId")
        if not isinstance(account, int) or not isinstance(variables.get("timeout"), int):
            return web.json_response({"errors": [{
                "message": "Variable $accountId of type Int! / $timeout of type Seconds! "
                           "was provided invalid value"}]})
        if account != self.account_id:
            return web.json_response({"data": {"actor": {"account": None}}, "errors": [{
                "message": "Account not found or not authorized", "path": ["actor", "account"]}]})
        if not isinstance(nrql, str) or not nrql.upper().startswith("SELECT"):
            return web.json_response({"data": {"actor": {"account": {"nrql": None}}}, "errors": [{
                "message": f"NRQL Syntax Error: Error at line 1 position 1, unexpected '{nrql}'",
                "path": ["actor", "account", "nrql"]}]})
        rows = self.results.get(nrql, [])
        return web.json_response({"data": {"actor": {"account": {"nrql": {"results": rows}}}}})


# --- Wavefront: GET /api/v2/chart/api -------------------------------------------------------

@dataclass
class Wavefront:
    token: str = "wf-token"
    series: dict[str, list[list[float]]] = field(default_factory=dict)  # query -> [points]
    limits: Limits = field(default_factory=Limits)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v2/chart/api", self.chart)
        return app

    async def chart(self, req: web.Request) -> web.Response:
        self.requests.append({"query": dict(req.query), "headers": dict(req.headers)})
        if self.limits.take():
            return web.Response(status=429, text="Too Many Requests",
                                headers={"Retry-After": str(self.limits.retry_after)})
        if req.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"status": {"result": "ERROR", "message": "401 Unauthorized",
                                                 "code": 401}}, status=401)
        q, s = req.query.get("q"), req.query.get("s")
        if not q or not (s or "").isdigit():
            return web.json_response({"status": {"result": "ERROR", "code": 400,
                                                 "message": "q and s are required"}}, status=400)
        if q.count("(") != q.count(")"):
            return web.json_response({"status": {"result": "ERROR", "code": 400,
                                                 "message": f"Syntax error in query: {q}"}},
                                     status=400)
        now = int(s) / 1000
        ts = [{"label": f"{q}#{i}", "host": f"host-{i}", "tags": {},
               "data": [[now + p[0], p[1]] for p in pts]}
              for i, pts in enumerate(self.series.get(q, []))]
        doc: dict[str, Any] = {"name": q, "query": q, "granularity": 1, "timeseries": ts,
                               "stats": {"keys": 1, "points": sum(len(t["data"]) for t in ts)}}
        if not ts:
            doc["warnings"] = "No metrics matching: " + q
        return web.json_response(doc)


# --- CloudWatch: GetMetricData (Query protocol, SigV4) -------------------------------------

CW_NS = "http://monitoring.amazonaws.com/doc/2010-08-01/"


def _sig_key(secret: str, day: str, region: str, service: str) -> bytes:
    k = f"AWS4{secret}".encode()
    for part in (day, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


@dataclass
class CloudWatch:
    access_key: str = "AKIDEXAMPLE"
    secret_key: str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    region: str = "eu-west-1"
    # metric name -> values (newest first); expressions name "SUM(<metric>)"
    values: dict[str, list[float]] = field(default_factory=dict)
    page_size: int = 100
    limits: Limits = field(default_factory=Limits)
    requests: list[dict[str, str]] = field(default_factory=list)
    # STS on the same server: web identity token -> role it may assume
    web_identities: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (secret, token)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/", self.handle)
        return app

    def _error(self, status: int, code: str, message: str, kind: str = "Sender") -> web.Response:
        return web.Response(status=status, content_type="text/xml", text=(
            f'<ErrorResponse xmlns="{CW_NS}"><Error><Type>{kind}</Type><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"))

    def _verify(self, req: web.Request, body: bytes) -> str | None:
        """SigV4 as AWS checks it; returns the error message, None when the signature holds."""
        auth = req.headers.get("Authorization", "")
        m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                         r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})", auth)
        if not m:
            return "Authorization header requires 'Credential', 'SignedHeaders', 'Signature'"
        key, day, region, service, signed, sig = m.groups()
        secret = self.secret_key
        if key in self.sessions:  # temporary credentials: the session token must come along
            secret, token = self.sessions[key]
            if req.headers.get("X-Amz-Security-Token") != token or \
                    "x-amz-security-token" not in signed.split(";"):
                return "The security token included in the request is invalid."
        elif key != self.access_key:
            return "The security token included in the request is invalid."
        if region != self.region or service != "monitoring":
            return "Credential should be scoped to a valid region and service 'monitoring'"
        amz = req.headers.get("X-Amz-Date", "")
        try:
            signed_at = calendar.timegm(time.strptime(amz, "%Y%m%dT%H%M%SZ"))
        except ValueError:
            signed_at = 0
        if not amz.startswith(day) or abs(time.time() - signed_at) > 300:
            return "Signature expired or X-Amz-Date out of range"
        names = signed.split(";")
        canon_headers = "".join(f"{n}:{' '.join(req.headers.get(n, '').split())}\n" for n in names)
        canonical = "\n".join(["POST", "/", "", canon_headers, signed, hashlib.sha256(body).hexdigest()])
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz, f"{day}/{region}/{service}/aws4_request",
                             hashlib.sha256(canonical.encode()).hexdigest()])
        want = hmac.new(_sig_key(secret, day, region, service), to_sign.encode(),
                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig):
            return ("The request signature we calculated does not match the signature you "
                    "provided. Check your AWS Secret Access Key and signing method.")
        return None

    def _sts(self, form: dict[str, str]) -> web.Response:
        """STS AssumeRoleWithWebIdentity (unsigned: the token is the credential)."""
        if form.get("Version") != "2011-06-15" or not form.get("RoleSessionName"):
            return self._error(400, "MissingParameter", "Version and RoleSessionName are required")
        role = self.web_identities.get(form.get("WebIdentityToken", ""))
        if role is None:
            return self._error(400, "InvalidIdentityToken", "Couldn't retrieve verification key "
                               "from your identity provider")
        if role != form.get("RoleArn"):
            return self._error(403, "AccessDenied", "Not authorized to perform "
                               "sts:AssumeRoleWithWebIdentity")
        key, secret, token = (f"ASIA{uuid.uuid4().hex[:16].upper()}", uuid.uuid4().hex,
                              uuid.uuid4().hex * 2)
        self.sessions[key] = (secret, token)
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        return web.Response(content_type="text/xml", text=(
            '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<AssumeRoleWithWebIdentityResult><SubjectFromWebIdentityToken>system:serviceaccount:"
            "rollouts-system:rollouts-controller</SubjectFromWebIdentityToken>"
            f"<AssumedRoleUser><Arn>{escape(role)}/{form['RoleSessionName']}</Arn>"
            "<AssumedRoleId>AROA:rollouts</AssumedRoleId></AssumedRoleUser>"
            f"<Credentials><SessionToken>{token}</SessionToken><SecretAccessKey>{secret}"
            f"</SecretAccessKey><Expiration>{expires}</Expiration><AccessKeyId>{key}</AccessKeyId>"
            "</Credentials><Provider>oidc.eks.amazonaws.com</Provider>"
            "</AssumeRoleWithWebIdentityResult><ResponseMetadata>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            "</AssumeRoleWithWebIdentityResponse>"))

    async def handle(self, req: web.Request) -> web.Response:
        body = await req.read()
        form = dict(parse_qsl(body.decode()))
        self.requests.append(form)
        if form.get("Action") == "AssumeRoleWithWebIdentity":
            return self._sts(form)
        if self.limits.take():
            return self._error(400, "Throttling", "Rate exceeded")
        why = self._verify(req, body)
        if why is not None:
            code = "SignatureDoesNotMatch" if "signature" in why.lower() else "InvalidClientTokenId"
            return self._error(403, code, why)
        if form.get("Action") != "GetMetricData" or form.get("Version") != "2010-08-01":
            return self._error(400, "InvalidAction", f"Could not find operation {form.get('Action')}")
        for k in ("StartTime", "EndTime", "MetricDataQueries.member.1.Id"):
            if k not in form:
                return self._error(400, "MissingParameter", f"The parameter {k} is required.")
        results = []
        i = 1
        while f"MetricDataQueries.member.{i}.Id" in form:
            p = f"MetricDataQueries.member.{i}."
            name = form.get(p + "MetricStat.Metric.MetricName")
            expr = form.get(p + "Expression")
            if name is None and expr is None:
                return self._error(400, "InvalidParameterCombination",
                                   "Exactly one of Expression and MetricStat must be set")
            if name is not None and (p + "MetricStat.Period") not in form:
                return self._error(400, "MissingParameter",
                                   f"The parameter {p}MetricStat.Period is required.")
            if expr is not None:
                em = re.fullmatch(r"SUM\((\w+)\)", expr)
                if not em:
                    return self._error(400, "ValidationError", f"Invalid metrics math expression: {expr}")
                name = em[1]
            vals = self.values.get(str(name), [])
            if form.get(p + "ReturnData", "true") == "true":
                results.append((form[p + "Id"], form.get(p + "Label", str(name)), vals))
            i += 1
        # Pages: at most page_size values per answer, the rest after NextToken.
        start = int(form.get("NextToken", "0") or 0)
        flat = [(rid, label, j, v) for rid, label, vals in results for j, v in enumerate(vals)]
        page, nxt = flat[start:start + self.page_size], start + self.page_size
        members = []
        for rid, label, _ in results:
            mine = [(j, v) for r2, _, j, v in page if r2 == rid]
            ts = "".join(f"<member>2024-01-01T00:{j:02d}:00Z</member>" for j, _ in mine)
            vs = "".join(f"<member>{v}</member>" for _, v in mine)
            status = "PartialData" if nxt < len(flat) else "Complete"
            members.append(f"<member><Id>{rid}</Id><Label>{escape(label)}</Label>"
                           f"<Timestamps>{ts}</Timestamps><Values>{vs}</Values>"
                           f"<StatusCode>{status}</StatusCode></member>")
        token = f"<NextToken>{nxt}</NextToken>" if nxt < len(flat) else ""
        return web.Response(content_type="text/xml", text=(
            f'<GetMetricDataResponse xmlns="{CW_NS}"><GetMetricDataResult>'
            f"<MetricDataResults>{''.join(members)}</MetricDataResults>{token}<Messages/>"
            f"</GetMetricDataResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
            f"</ResponseMetadata></GetMetricDataResponse>"))


# --- Kayenta: standalone canary analysis ----------------------------------------------------

@dataclass
class Kayenta:
    configs: list[dict[str, Any]] = field(default_factory=list)  # [{id, name, applications}]
    score: float = 95.0
    polls_until_complete: int = 1
    executions: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/canaryConfig", self.list_configs)
        app.router.add_post("/canary/{config_id}", self.start)
        app.router.add_get("/canary/{execution_id}", self.status)
        return app

    async def list_configs(self, req: web.Request) -> web.Response:
        self.requests.append({"path": req.path, "query": dict(req.query)})
        app = req.query.get("application")
        return web.json_response([{"id": c["id"], "name": c["name"], "updatedTimestamp": 0,
                                   "updatedTimestampIso": "2024-01-01T00:00:00Z",
                                   "applications": c.get("applications", [app])}
                                  for c in self.configs if app in c.get("applications", [app])])

    async def start(self, req: web.Request) -> web.Response:
        cid = req.match_info["config_id"]
        try:
            body = await req.json()
        except ValueError:
            body = None
        self.requests.append({"path": req.path, "query": dict(req.query), "body": body})
        if not any(c["id"] == cid for c in self.configs):
            return web.json_response({"timestamp": int(time.time() * 1000), "status": 404,
                                      "error": "Not Found",
                                      "message": f"No canary config with id '{cid}'"}, status=404)
        missing = [k for k in ("application", "metricsAccountName", "storageAccountName")
                   if not req.query.get(k)]
        if missing or not isinstance(body, dict) or not body.get("scopes") \
                or "thresholds" not in body:
            return web.json_response({"timestamp": int(time.time() * 1000), "status": 400,
                                      "error": "Bad Request",
                                      "message": f"missing {missing or 'scopes/thresholds'}"},
                                     status=400)
        eid = uuid.uuid4().hex
        self.executions[eid] = {"polls": 0, "thresholds": body["thresholds"]}
        return web.json_response({"canaryExecutionId": eid})

    async def status(self, req: web.Request) -> web.Response:
        eid = req.match_info["execution_id"]
        ex = self.executions.get(eid)
        if ex is None:
            return web.json_response({"status": 404, "error": "Not Found",
                                      "message": f"No canary execution '{eid}'"}, status=404)
        ex["polls"] += 1
        if ex["polls"] < self.polls_until_complete:
            return web.json_response({"complete": False, "status": "running",
                                      "pipelineId": eid})
        th = ex["thresholds"]
        cls = ("Pass" if self.score >= th["pass"] else
               "Marginal" if self.score >= th["marginal"] else "Fail")
        return web.json_response({
            "complete": True, "status": "succeeded", "pipelineId": eid,
            "result": {"judgeResult": {"judgeName": "NetflixACAJudge-v1.0",
                                       "score": {"score": self.score, "classification": cls,
                                                 "classificationReason": ""},
                                       "results": [], "groupScores": []}}})

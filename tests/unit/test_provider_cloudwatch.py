"""The cloudWatch provider: SigV4 checked against AWS's published examples, and
GetMetricData against an in-test server of the Query protocol that verifies the
signature, pages with NextToken and answers errors in AWS's XML."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from rollouts.metrics.providers import Context, ProviderError, measure, validate
from rollouts.metrics.providers.cloudwatch import counter, form
from rollouts.metrics.providers.sigv4 import Credentials, sign
from tests.providers_fakes.kit import serve
from tests.providers_fakes.saas import CloudWatch

AWS_EXAMPLE = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
WHEN = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)


def test_sigv4_matches_aws_published_signatures() -> None:
    # AWS's signature test suite "get-vanilla" and the IAM ListUsers example.
    h = sign("GET", "https://example.amazonaws.com/", {}, b"", creds=AWS_EXAMPLE,
             region="us-east-1", service="service", when=WHEN)
    assert h["Authorization"].endswith(
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    h = sign("GET", "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
             {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}, b"",
             creds=AWS_EXAMPLE, region="us-east-1", service="iam", when=WHEN)
    assert h["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")


SPEC = {"interval": "10m", "metricDataQueries": [
    {"id": "rate", "expression": "errors / requests", "label": "error rate"},
    {"id": "errors", "returnData": False, "metricStat": {
        "metric": {"namespace": "AWS/ApplicationELB", "metricName": "HTTPCode_Target_5XX_Count",
                   "dimensions": [{"name": "LoadBalancer", "value": "app/shop/1"}]},
        "period": 300, "stat": "Sum", "unit": "Count"}}]}


def test_form_is_getmetricdata_query_protocol() -> None:
    f = form(SPEC, WHEN, WHEN, None)
    assert f["Action"] == "GetMetricData" and f["Version"] == "2010-08-01"
    assert f["StartTime"] == "2015-08-30T12:36:00Z"
    assert f["MetricDataQueries.member.1.Expression"] == "errors / requests"
    assert f["MetricDataQueries.member.2.ReturnData"] == "false"
    assert f["MetricDataQueries.member.2.MetricStat.Metric.Dimensions.member.1.Value"] == "app/shop/1"
    assert f["MetricDataQueries.member.2.MetricStat.Period"] == "300"
    assert f["MetricDataQueries.member.2.MetricStat.Unit"] == "Count"


@pytest.fixture
async def cw(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CloudWatch]:
    fake = CloudWatch(values={"shop_errors": [0.25, 0.5, 0.75], "shop_requests": [100.0, 90.0]},
                      page_size=2)
    async with serve(fake.app()) as url:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", fake.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", fake.secret_key)
        monkeypatch.setenv("AWS_REGION", fake.region)
        monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", url)
        yield fake


def spec(metric: str = "shop_errors") -> dict[str, object]:
    return {"metricDataQueries": [{"id": "m1", "metricStat": {
        "metric": {"namespace": "Shop", "metricName": metric}, "period": 60, "stat": "Sum"}}]}


async def test_signed_request_pages_and_argo_value_shape(cw: CloudWatch) -> None:
    r = await measure("cloudWatch", spec(), Context(now=1_700_000_000))
    (res,) = r.value
    assert res["Id"] == "m1" and res["Values"] == [0.25, 0.5, 0.75]  # two pages joined
    assert res["StatusCode"] == "Complete" and len(cw.requests) == 2
    assert cw.requests[1]["NextToken"] == "2"
    assert cw.requests[0]["StartTime"] == "2023-11-14T22:08:20Z"  # now - 5m (Argo's default)


async def test_errors_from_aws(cw: CloudWatch, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProviderError, match="no values"):
        await measure("cloudWatch", spec("nothing"), Context())
    with pytest.raises(ProviderError, match="ValidationError: Invalid metrics math"):
        await counter({}, "AVG(x", Context())
    cw.limits.count = 1
    with pytest.raises(ProviderError, match=r"CloudWatch answered HTTP 400: Throttling: Rate exceeded"):
        await measure("cloudWatch", spec(), Context())
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(ProviderError, match=r"rejected the credentials \(HTTP 403\): "
                                            r"SignatureDoesNotMatch: The request signature we"):
        await measure("cloudWatch", spec(), Context())
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    with pytest.raises(ProviderError, match="no AWS credentials"):
        await measure("cloudWatch", spec(), Context())


async def test_judge_counter_is_a_metric_math_expression(cw: CloudWatch) -> None:
    assert await counter({}, "SUM(shop_requests)", Context()) == 100.0
    assert await counter({}, "SUM(nothing)", Context()) is None
    sent = dict(parse_qsl("&".join(f"{k}={v}" for k, v in cw.requests[-2].items())))
    assert sent["MetricDataQueries.member.1.Expression"] == "SUM(shop_requests)"


def test_lint_fields() -> None:
    assert validate("cloudWatch", {}) == ["cloudWatch.metricDataQueries (a non-empty list) is required"]
    assert validate("cloudWatch", {"metricDataQueries": [{"id": "a", "metricStat": {"metric": {}}}]}) == [
        "cloudWatch.metricDataQueries[0].metricStat.metric.metricName is required",
        "cloudWatch.metricDataQueries[0].metricStat.stat is required",
        "cloudWatch.metricDataQueries[0].metricStat.period is required"]
    assert validate("cloudWatch", {"metricDataQueries": [{"id": "a"}]}) == [
        "cloudWatch.metricDataQueries[0]: set exactly one of expression and metricStat"]


async def test_eks_web_identity_is_exchanged_at_sts(
        cw: CloudWatch, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """IRSA: no static keys, a projected token and a role; STS gives temporary credentials
    (kept until near their expiry), and requests carry their session token."""
    from rollouts.metrics.providers import aws_credentials

    aws_credentials._cache.clear()
    token = tmp_path / "token"
    token.write_text("eyJhbGciOi.irsa.token\n")
    cw.web_identities["eyJhbGciOi.irsa.token"] = "arn:aws:iam::123456789012:role/rollouts"
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/rollouts")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", os.environ["AWS_ENDPOINT_URL_CLOUDWATCH"])
    r = await measure("cloudWatch", spec(), Context())
    assert r.value[0]["Values"] == [0.25, 0.5, 0.75]
    await measure("cloudWatch", spec(), Context())
    assert [q["Action"] for q in cw.requests].count("AssumeRoleWithWebIdentity") == 1  # cached
    aws_credentials._cache.clear()
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/other")
    with pytest.raises(ProviderError, match=r"STS rejected the credentials \(HTTP 403\): AccessDenied"):
        await measure("cloudWatch", spec(), Context())
    aws_credentials._cache.clear()
    token.write_text("forged")
    with pytest.raises(ProviderError, match="STS answered HTTP 400: InvalidIdentityToken"):
        await measure("cloudWatch", spec(), Context())

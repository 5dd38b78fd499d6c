"""A provider stopped by its daily cap (``<VENDOR>_DAILY_CAP``) is counted as ``ProviderQuotaExhausted``,
once per capped call, exactly as a vendor's own "quota used up" answer is: that is the metric the
template's quota alarm watches.

The cap is the real ``DailyUsage`` counter on a stubbed DynamoDB client (the condition that fails once
the cap is reached is DynamoDB's ConditionalCheckFailedException).
"""

from __future__ import annotations

import io
from typing import ClassVar

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from PIL import Image

from image_analysis.errors import QuotaExhaustedError
from image_analysis.imaging import decode
from image_analysis.models import Label
from image_analysis.orchestration import Orchestrator
from image_analysis.providers.base import AnalysisRequest, Deadline, Provider, ProviderOutput
from image_analysis.routing import parse_routing
from image_analysis.settings import Settings
from image_analysis.usage import DailyUsage


class Vendor(Provider):
    name: ClassVar[str] = "vendor"
    capabilities: ClassVar[frozenset] = frozenset({"labels"})

    def __init__(self, name: str, error: Exception | None = None) -> None:
        self.name = name  # type: ignore[misc]
        self.enabled = frozenset({"labels"})
        self.error = error
        self.calls = 0

    @classmethod
    def create(cls, deps):  # pragma: no cover - built directly here
        raise NotImplementedError

    def analyze(self, request: AnalysisRequest) -> ProviderOutput:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return ProviderOutput(labels=[Label(name=f"{self.name}-label", confidence=0.9, provider=self.name)])


def request() -> AnalysisRequest:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 20, 30)).save(out, format="PNG")
    return AnalysisRequest(image=decode(out.getvalue(), 10**8), object_id="id", deadline=Deadline(60))


@pytest.fixture
def dynamodb():
    client = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def allow(stub: Stubber, times: int) -> None:
    for _ in range(times):
        stub.add_response("update_item", {})


def refuse(stub: Stubber, times: int) -> None:
    for _ in range(times):
        stub.add_client_error("update_item", service_error_code="ConditionalCheckFailedException", http_status_code=400)


def run(providers: list[Vendor], dynamodb: Stubber, routing: str = "", **env: str):
    metrics: list[tuple[str, float, str]] = []
    settings = Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", "ROUTING": routing, **env})
    orchestrator = Orchestrator(
        {p.name: p for p in providers},
        settings,
        routes=parse_routing(routing, [p.name for p in providers]) if routing else {},
        usage=DailyUsage("usage", dynamodb.client, clock=lambda: 1_767_225_600.0),
        metric=lambda name, value, unit: metrics.append((name, value, unit)),
    )
    return orchestrator.run(request()), metrics


def quota_metrics(metrics: list[tuple[str, float, str]]) -> list[tuple[str, float, str]]:
    return [m for m in metrics if "quota" in m[0].lower()]


def test_each_capped_call_counts_provider_quota_exhausted_once(dynamodb):
    imagga = Vendor("imagga")
    allow(dynamodb, 2)
    refuse(dynamodb, 3)
    counted = []
    for _ in range(5):
        plan, metrics = run([imagga], dynamodb, IMAGGA_DAILY_CAP="2")
        (result,) = plan.runs
        counted.append(sum(v for n, v, _ in metrics if n == "ProviderQuotaExhausted"))
        assert (result.status, result.error.code if result.error else None) == (
            ("succeeded", None) if len(counted) <= 2 else ("skipped", "quota_exhausted")
        )
    assert counted == [0, 0, 1, 1, 1]
    assert imagga.calls == 2  # the capped calls never reached the vendor


def test_a_cap_and_a_vendors_quota_answer_emit_the_same_metrics(dynamodb):
    refuse(dynamodb, 1)
    _, capped = run([Vendor("imagga")], dynamodb, IMAGGA_DAILY_CAP="10")
    out_of_credit = Vendor("imagga", error=QuotaExhaustedError("imagga", "monthly limit reached (HTTP 403)"))
    _, answered = run([out_of_credit], dynamodb)  # no cap: DynamoDB is not asked
    assert quota_metrics(capped) == quota_metrics(answered)
    assert quota_metrics(capped) == [
        ("ProviderError_imagga_quota_exhausted", 1, "Count"),
        ("ProviderQuotaExhausted", 1, "Count"),
    ]


def test_a_capped_provider_falls_back_and_is_counted_once_per_image(dynamodb):
    imagga, rekognition = Vendor("imagga"), Vendor("rekognition")
    refuse(dynamodb, 1)  # only imagga has a cap; rekognition is never counted against one
    plan, metrics = run([imagga, rekognition], dynamodb, "labels=imagga,rekognition", IMAGGA_DAILY_CAP="100")
    assert plan.answered_by == {"labels": "rekognition"}
    assert [n for n, _, _ in metrics].count("ProviderQuotaExhausted") == 1
    assert (imagga.calls, rekognition.calls) == (0, 1)


def test_a_provider_under_its_cap_counts_no_quota_metric(dynamodb):
    allow(dynamodb, 1)
    plan, metrics = run([Vendor("imagga")], dynamodb, IMAGGA_DAILY_CAP="1")
    assert plan.runs[0].status == "succeeded"
    assert quota_metrics(metrics) == []

"""What the review tests share: flagged uploads through the handler, the command line with its exit code,
API Gateway HTTP API (payload 2.0) events for the review function, and the decisions topic's observer."""

from __future__ import annotations

import io
import json
import logging
from typing import Any
from urllib.parse import quote_plus, urlencode

import boto3

from image_analysis_cli.main import run
from local.driver import LambdaContext, load_handler
from local.stack import read_alerts
from tests.integration.test_pipeline_end_to_end import s3_event, sqs_event

MODERATOR = "arn:aws:sts::123456789012:user/moto"  # what the emulator's STS says the caller is
ALICE = "arn:aws:iam::123456789012:user/alice"
BOB = "arn:aws:iam::123456789012:user/bob"
LOGGER = logging.getLogger("review-tests")


def ai_png(seed: int = 0) -> bytes:
    """A PNG an image generator wrote (the builtin provider flags it ai_generated); the seed makes other bytes."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", f"a castle on a hill\nSteps: 30, Sampler: DPM++ 2M, CFG scale: 7, Seed: {seed}")
    out = io.BytesIO()
    Image.new("RGB", (200, 150), (30 + seed % 200, 90, 200)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def plain_png(seed: int = 0) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (120, 90), (200, 40 + seed % 200, 10)).save(out, format="PNG")
    return out.getvalue()


class Uploads:
    """Uploads analyzed at once by a freshly loaded handler (which reads the environment as it is now)."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.s3 = boto3.client("s3")
        self._sequence = 0

    def put(self, key: str, body: bytes, tags: str | None = None) -> dict[str, Any]:
        extra = {"Tagging": tags} if tags else {}
        response = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, **extra)
        self._sequence += 1
        event = s3_event(
            self.bucket,
            quote_plus(key, safe="/"),
            response["ETag"].strip('"'),
            len(body),
            f"0055AED6DCD9{self._sequence:08X}",
            response.get("VersionId"),
        )
        answer = load_handler()(sqs_event(event), LambdaContext())
        assert answer == {"batchItemFailures": []}, answer
        return {"etag": response["ETag"].strip('"'), "version_id": response.get("VersionId"), "event": event}

    def redeliver(self, event: dict[str, Any], reprocess: str | None = None) -> None:
        body = {**event, "imageAnalysis": {"reprocess": {"id": reprocess, "reason": "again"}}} if reprocess else event
        assert load_handler()(sqs_event(body), LambdaContext()) == {"batchItemFailures": []}

    def tags(self, key: str, version_id: str | None = None) -> dict[str, str]:
        target = {"Bucket": self.bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
        return {t["Key"]: t["Value"] for t in self.s3.get_object_tagging(**target)["TagSet"]}


def cli(stack: Any, capsys: Any, *args: str) -> tuple[int, str, str]:
    """The command line through its entry point: the exit code, standard output and standard error."""
    capsys.readouterr()
    code = run(["--stack-name", stack.name, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def http_event(
    method: str,
    route: str,
    path: str,
    *,
    user: str | None = ALICE,
    query: dict[str, str] | None = None,
    body: Any = None,
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API request as the IAM authorizer hands it to the function (payload 2.0)."""
    context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "reviewapi",
        "domainName": "reviewapi.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "reviewapi",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "t"},
        "requestId": "request-1",
        "routeKey": f"{method} {route}",
        "stage": "$default",
        "time": "07/Dec/2026:10:00:00 +0000",
        "timeEpoch": 1796637600000,
    }
    if user:
        context["authorizer"] = {
            "iam": {
                "accessKey": "ASIAEXAMPLE",
                "accountId": "123456789012",
                "callerId": "AIDAEXAMPLE",
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": user,
                "userId": "AIDAEXAMPLE",
            }
        }
    return {
        "version": "2.0",
        "routeKey": f"{method} {route}",
        "rawPath": path,
        "rawQueryString": urlencode(query or {}),
        "headers": {"content-type": "application/json", "host": "reviewapi.execute-api.us-east-1.amazonaws.com"},
        **({"queryStringParameters": query} if query else {}),
        **({"pathParameters": path_parameters} if path_parameters else {}),
        "requestContext": context,
        **({"body": json.dumps(body) if not isinstance(body, str) else body} if body is not None else {}),
        "isBase64Encoded": False,
    }


def call(handler: Any, event: dict[str, Any]) -> tuple[int, Any]:
    response = handler(event, LambdaContext("ReviewFunction", timeout_seconds=30))
    return response["statusCode"], json.loads(response.get("body") or "null")


def decide(handler: Any, review_id: str, user: str = ALICE, **body: Any) -> tuple[int, Any]:
    path = f"/reviews/{review_id}/decision"
    event = http_event("POST", "/reviews/{id}/decision", path, user=user, body=body, path_parameters={"id": review_id})
    return call(handler, event)


def published(review: Any) -> list[dict[str, Any]]:
    """The image.reviewed messages the decisions topic delivered since the last call (raw delivery)."""
    sqs = boto3.client("sqs")
    bodies = []
    while True:
        messages = sqs.receive_message(QueueUrl=review.observer_queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=review.observer_queue_url, ReceiptHandle=message["ReceiptHandle"])


def forget_alerts(stack: Any) -> None:
    read_alerts(stack.observer_queue_url)

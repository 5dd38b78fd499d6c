"""Amazon Rekognition as the sandbox plays it: the AWS JSON 1.1 protocol, rules from the API reference.

Rekognition is not an HTTP vendor with a base URL: boto3 posts to ``/`` with ``X-Amz-Target:
RekognitionService.<Operation>`` and a SigV4 signature. The sandbox is reached the way the SDK reaches
any AWS endpoint: the local emulator's endpoint routes that target here (``local.endpoint``), or
``AWS_ENDPOINT_URL_REKOGNITION`` names it. Answers are the saved ones in tests/fixtures/rekognition/
(shaped by the API's response members; the moderation answer uses the v7 taxonomy, three levels),
filtered as the reference says the service filters them.

Checked, each from the Amazon Rekognition API Reference:
- ``Image``: "You pass the input image either as base64-encoded image bytes or as a reference to an
  image in an Amazon S3 bucket", exactly one of them; ``InvalidParameterException`` otherwise.
- Bytes: "Amazon Rekognition Image ... supports the JPEG and PNG image formats"
  (``InvalidImageFormatException``); at most 5 MB as bytes and 15 MB from S3 ("Guidelines and
  quotas": ``ImageTooLargeException``).
- ``S3Object``: read through the local emulator; a missing object is ``InvalidS3ObjectException``
  ("Amazon Rekognition is unable to access the S3 object specified in the request").
- ``MinConfidence`` 0..100 (DetectLabels default 55, DetectModerationLabels default 50: "If you don't
  specify MinConfidence, the operation returns labels with confidence values greater than or equal to
  50 percent"); ``MaxLabels`` at least 0: "the service returns the specified number of highest
  confidence labels".
- Errors: ``{"__type": "<Exception>", "Message": "..."}``, the AWS JSON protocol's error body.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from typing import Any, ClassVar

from local.sandbox.base import Route, SandboxRequest, SandboxResponse, SandboxVendor

TARGET_PREFIX = "RekognitionService"
BYTES_LIMIT = 5 * 1024 * 1024
S3_LIMIT = 15 * 1024 * 1024

# HTTP status (faults included) -> the exception Rekognition names for it.
ERROR_TYPES = {
    400: "InvalidParameterException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    429: "ThrottlingException",
    500: "InternalServerError",
    503: "ServiceUnavailableException",
}
ERROR_MESSAGES = {
    "InvalidParameterException": "Input parameter violated a constraint. Validate your parameter before calling the "
    "API operation again.",
    "InvalidImageFormatException": "The provided image format is not supported.",
    "ImageTooLargeException": "The input image size exceeds the allowed limit.",
    "InvalidS3ObjectException": "Amazon Rekognition is unable to access the S3 object specified in the request.",
    "ThrottlingException": "Amazon Rekognition is temporarily unable to process the request. Try your call again.",
    "InternalServerError": "Amazon Rekognition experienced a service issue. Try your call again.",
    "ServiceUnavailableException": "The service is temporarily unavailable.",
    "UnrecognizedClientException": "The security token included in the request is invalid.",
    "AccessDeniedException": "You are not authorized to perform the action.",
}

# Operation -> (route name for ``set_response``, list member filtered, default MinConfidence).
OPERATIONS = {
    "DetectLabels": ("labels", "Labels", 55.0),
    "DetectModerationLabels": ("moderation", "ModerationLabels", 50.0),
    "DetectText": ("text", "TextDetections", None),
}


class RekognitionSandbox(SandboxVendor):
    name: ClassVar[str] = "rekognition"
    credential_fields: ClassVar[tuple[str, ...]] = ()
    default_credentials: ClassVar[dict[str, str]] = {}
    default_responses: ClassVar[dict[str, str]] = {
        "labels": "detect_labels.json",
        "moderation": "detect_moderation_labels_level3.json",
        "text": "detect_text.json",
    }
    # Reached through the endpoint's X-Amz-Target routing, not a <VENDOR>_BASE_URL.
    aws_target_prefix: ClassVar[str] = TARGET_PREFIX

    def routes(self) -> list[Route]:
        return [Route.of("rekognition", "POST", r"/", self._operation)]

    def error(self, status: int, text: str) -> SandboxResponse:
        return self.aws_error(ERROR_TYPES.get(status, "InternalServerError"), status, text)

    def error_text(self, status: int) -> str:
        return ERROR_MESSAGES.get(ERROR_TYPES.get(status, "InternalServerError"), f"HTTP {status}")

    @staticmethod
    def aws_error(kind: str, status: int = 400, message: str | None = None) -> SandboxResponse:
        body = {"__type": kind, "Message": message or ERROR_MESSAGES.get(kind, kind)}
        return SandboxResponse(status, json.dumps(body).encode(), {"Content-Type": "application/x-amz-json-1.1"})

    def authenticate(self, request: SandboxRequest) -> SandboxResponse | None:
        # Every AWS request is signed; an unsigned one never reaches the operation.
        if not (request.header("authorization") or "").startswith("AWS4-HMAC-SHA256 Credential="):
            return self.aws_error("UnrecognizedClientException", 403)
        return None

    # -- the operations --------------------------------------------------------------------------------

    def _operation(self, request: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
        prefix, _, operation = (request.header("x-amz-target") or "").partition(".")
        if prefix != TARGET_PREFIX or operation not in OPERATIONS:
            return self.aws_error("UnknownOperationException", 400, f"unknown operation {operation or '(none)'}")
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return self.aws_error("SerializationException", 400, "the request body is not JSON")
        refused = self._check_image(body.get("Image")) or self._check_numbers(body)
        if refused is not None:
            return refused
        route, member, default_confidence = OPERATIONS[operation]
        answer = json.loads((self.fixtures_dir / self.responses[route]).read_text())
        if default_confidence is not None:
            floor = float(body.get("MinConfidence", default_confidence))
            answer[member] = [item for item in answer[member] if item.get("Confidence", 100.0) >= floor]
        if operation == "DetectLabels" and "MaxLabels" in body:
            answer[member] = sorted(answer[member], key=lambda item: -item["Confidence"])[: int(body["MaxLabels"])]
        return SandboxResponse(200, json.dumps(answer).encode(), {"Content-Type": "application/x-amz-json-1.1"})

    def _check_numbers(self, body: dict[str, Any]) -> SandboxResponse | None:
        confidence = body.get("MinConfidence")
        if confidence is not None and not (isinstance(confidence, int | float) and 0 <= confidence <= 100):
            return self.aws_error("InvalidParameterException")
        labels = body.get("MaxLabels")
        if labels is not None and not (isinstance(labels, int) and labels >= 0):
            return self.aws_error("InvalidParameterException")
        return None

    def _check_image(self, image: Any) -> SandboxResponse | None:
        if not isinstance(image, dict) or ("Bytes" in image) == ("S3Object" in image):
            return self.aws_error("InvalidParameterException")
        if "Bytes" in image:
            try:
                data = base64.b64decode(image["Bytes"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                return self.aws_error("InvalidParameterException")
            if len(data) > BYTES_LIMIT:
                return self.aws_error("ImageTooLargeException")
            return None if _jpeg_or_png(data) else self.aws_error("InvalidImageFormatException")
        return self._check_s3_object(image["S3Object"])

    def _check_s3_object(self, location: Any) -> SandboxResponse | None:
        if not isinstance(location, dict) or not location.get("Bucket") or not location.get("Name"):
            return self.aws_error("InvalidParameterException")
        if not os.environ.get("AWS_ENDPOINT_URL"):
            return None  # no local emulator to read it from: taken as readable
        import boto3

        extra = {"VersionId": location["Version"]} if location.get("Version") else {}
        try:
            head = boto3.client("s3").get_object(
                Bucket=location["Bucket"], Key=location["Name"], Range="bytes=0-15", **extra
            )
        except Exception:
            return self.aws_error("InvalidS3ObjectException")
        size = int(str(head.get("ContentRange", "/0")).rsplit("/", 1)[-1] or 0)
        if size > S3_LIMIT:
            return self.aws_error("ImageTooLargeException")
        return None if _jpeg_or_png(head["Body"].read()) else self.aws_error("InvalidImageFormatException")


def _jpeg_or_png(data: bytes) -> bool:
    return data.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"))

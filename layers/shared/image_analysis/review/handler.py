"""The review function's entry logic: one function, three event sources.

- API Gateway HTTP API (payload 2.0): the routes of ``api`` (IAM), and the moderators' console
  (``console``: its page, and the same routes under ``/console/api`` behind a JWT sign-in);
- SQS (the effects queue, subscribed to the decisions topic): ``effects`` applies each decision to its
  object; a failed message is handed back (``batchItemFailures``) and retried, then dead-lettered;
- EventBridge Scheduler's tick (``{"sweep": true}`` or a scheduled event): publishes decisions whose
  message a crash left unpublished (``Decisions.sweep``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from image_analysis.review.api import ReviewServices, build_api
from image_analysis.review.audit import AuditLog
from image_analysis.review.config import ReviewConfig
from image_analysis.review.decisions import Decisions
from image_analysis.review.effects import ReviewEffects, ReviewHooks, decision_of
from image_analysis.review.publisher import DecisionPublisher
from image_analysis.review.queue import ReviewQueue


@dataclass
class ReviewRuntime:
    config: ReviewConfig
    services: ReviewServices
    effects: ReviewEffects
    api: Any
    console: Any = None  # console.ConsoleConfig
    # CloudWatch, for the console's vendor spend; made on the first stats request (most calls never need it).
    clients: dict[str, Any] = field(default_factory=dict)

    def cloudwatch(self) -> Any:
        if "cloudwatch" not in self.clients:
            self.clients["cloudwatch"] = _client("cloudwatch")
        return self.clients["cloudwatch"]


def build_review_runtime(
    config: ReviewConfig | None = None,
    *,
    clients: dict[str, Any] | None = None,
    hooks: ReviewHooks | None = None,
    logger: Any = None,
    metric: Any = None,
    static_dir: Path | None = None,
) -> ReviewRuntime:
    """``static_dir``: the console's page and assets (the function's ``console`` folder)."""
    from image_analysis.review.console import ConsoleConfig

    config = config or ReviewConfig.from_env()
    missing = [
        name
        for name, value in (
            ("RESULTS_TABLE", config.results_table),
            ("REVIEW_QUEUE_TABLE", config.queue_table),
            ("AUDIT_TABLE", config.audit_table),
            ("DECISIONS_TOPIC_ARN", config.decisions_topic_arn),
        )
        if not value
    ]
    if missing:
        raise ValueError(f"missing configuration: {', '.join(missing)}")
    clients = clients or review_clients()
    queue = ReviewQueue(config.queue_table, clients["dynamodb"])
    decisions = Decisions(
        results_table=config.results_table,
        queue=queue,
        audit=AuditLog(config.audit_table, clients["dynamodb"]),
        publisher=DecisionPublisher(config.decisions_topic_arn, clients["sns"]),
        dynamodb_client=clients["dynamodb"],
        logger=logger,
    )
    effects = ReviewEffects(
        config=config,
        results_table=config.results_table,
        dynamodb_client=clients["dynamodb"],
        s3_client=clients["s3"],
        queue=queue,
        hooks=hooks,
        logger=logger,
        metric=metric,
    )
    services = ReviewServices(decisions, queue, clients["s3"], os.environ.get("ARTIFACTS_BUCKET", "").strip())
    console = ConsoleConfig.from_env(static_dir=static_dir, s3=clients["s3"])
    extra = {"cloudwatch": clients["cloudwatch"]} if "cloudwatch" in clients else {}
    return ReviewRuntime(config, services, effects, build_api(), console, extra)


def review_clients() -> dict[str, Any]:
    """boto3 clients with explicit timeouts (the analysis runtime's are not imported: it loads the
    providers). S3 signs with SigV4, which presigned URLs of SSE-KMS objects need."""
    return {
        "s3": _client("s3", signature_version="s3v4"),
        "dynamodb": _client("dynamodb"),
        "sns": _client("sns"),
    }


def _client(service: str, **options: Any) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard", "max_attempts": 4}, **options)
    return boto3.session.Session().client(service, config=config)


def handle(event: dict[str, Any], context: Any, runtime: ReviewRuntime, logger: Any) -> dict[str, Any]:
    if isinstance(event.get("requestContext"), dict) and "http" in event["requestContext"]:
        runtime.api.append_context(services=runtime.services, console=runtime.console, cloudwatch=runtime.cloudwatch)
        try:
            return runtime.api.resolve(event, context)
        finally:
            runtime.api.clear_context()
    if isinstance(event.get("Records"), list):
        return _effects(event["Records"], runtime, logger)
    if event.get("sweep") or event.get("detail-type") == "Scheduled Event":
        published = runtime.services.decisions.sweep()
        if published:
            logger.warning("published decisions a crash had left unpublished", extra={"published": published})
        return {"published": published}
    raise ValueError("not an HTTP API request, an SQS batch or a sweep")


def _effects(records: list[dict[str, Any]], runtime: ReviewRuntime, logger: Any) -> dict[str, Any]:
    failures = []
    for record in records:
        message = decision_of(record.get("body", ""))
        if message is None:
            logger.error("not an image.reviewed message; acknowledged", extra={"message_id": record.get("messageId")})
            continue
        try:
            done = runtime.effects.apply(message)
            logger.info("decision applied", extra={"decision_id": message.get("decision_id"), "done": done})
        except Exception:
            logger.exception(
                "could not apply the decision; will retry", extra={"decision_id": message.get("decision_id")}
            )
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def body_of(response: dict[str, Any]) -> Any:
    """An HTTP API response's JSON body (for tools and tests)."""
    return json.loads(response.get("body") or "null")

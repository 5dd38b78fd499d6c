"""ReviewFunction: a thin handler. The review HTTP API, decisions' effects and the outbox sweep live in
the shared layer (image_analysis.review)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from image_analysis.review.handler import ReviewRuntime, build_review_runtime, handle

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "image-analysis"
logger = Logger(service="image-analysis-review")
metrics = Metrics(namespace="ImageAnalysis", service=SERVICE)
# The moderators' console: its page and assets ship with the function (docs/console.md).
CONSOLE_DIR = Path(__file__).resolve().parent / "console"
_runtime: ReviewRuntime | None = None


def _get_runtime() -> ReviewRuntime:
    # Built on the first event, not at import: configuration errors then surface in that event's log.
    global _runtime
    if _runtime is None:

        def metric(name: str, value: float, unit: str) -> None:
            metrics.add_metric(name=name, unit=unit, value=value)

        _runtime = build_review_runtime(hooks=_bank_hooks(), logger=logger, metric=metric, static_dir=CONSOLE_DIR)
    return _runtime


def _bank_hooks() -> Any:
    """Rejections feed the hash bank ``rejected`` (and an approval after appeal takes the hash out)."""
    table, bucket = os.environ.get("BANKS_TABLE", ""), os.environ.get("BANKS_BUCKET", "")
    if not table:
        return None
    import boto3

    from image_analysis.banks.review_hooks import BankHooks
    from image_analysis.banks.store import BankStore

    return BankHooks(BankStore(table, boto3.client("dynamodb"), boto3.client("s3"), bucket), logger)


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, context, _get_runtime(), logger)

"""AnalyzeFunction: a thin handler. Parsing, analysis and storage live in the shared layer."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from image_analysis.handler import handle
from image_analysis.runtime import Runtime, build_runtime

# The template sets POWERTOOLS_SERVICE_NAME to the stack name: the metrics' service dimension, which this
# stack's alarms and dashboard filter on, so that two stacks in one account and region stay apart.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "image-analysis"

# Log lines keep the project's name as their service: each stack's logs are already a log group of its own.
logger = Logger(service="image-analysis")
# The layer's modules log under "image_analysis"; give them the same JSON lines and correlation keys.
logging.getLogger("image_analysis")
copy_config_to_registered_loggers(source_logger=logger, include={"image_analysis"})
metrics = Metrics(namespace="ImageAnalysis", service=SERVICE)
_runtime: Runtime | None = None

# The records and vendor calls of a batch are threads that mostly wait for the network. A thread whose
# answer has arrived waits for the interpreter lock until the running one lets go: every 5 ms by default,
# and a call waits so several times. At 1 ms answers are picked up sooner; the extra switches cost little.
sys.setswitchinterval(0.001)


def _get_runtime() -> Runtime:
    # Built on the first event, not at import: configuration errors then surface in that event's log.
    global _runtime
    if _runtime is None:
        _runtime = build_runtime(logger=logger, metrics=metrics)
    return _runtime


def _traced(function: Any) -> Any:
    """X-Ray tracing only when switched on: importing the tracer costs cold-start time."""
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "true").lower() == "false":
        from aws_lambda_powertools import Tracer

        return Tracer(service=SERVICE).capture_lambda_handler(function)
    return function


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
@_traced
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, context, _get_runtime(), logger)

"""Play the Lambda SQS poller against the emulator: receive batches, invoke, delete what succeeded.

This is what the Lambda service does for an SQS event source with ``ReportBatchItemFailures``, for
each queue given (the stack's analysis and backfill queues each have a trigger, so a batch never mixes them):
messages named in ``batchItemFailures`` stay on the queue and come back after the visibility
timeout; after ``maxReceiveCount`` deliveries the queue's redrive policy moves them to the
dead-letter queue. Locally a failed message is made visible again at once (``retry_delay_seconds``)
instead of after the template's 720 s, so a demo or a test does not wait.

An invocation that raises hands its whole batch back, as Lambda does, and the exception is raised
again from ``poll_once`` (``InvocationFailed``): a caller decides whether to stop (the demo, a test)
or to go on as the Lambda service would (the live local stack). ``on_invocation`` sees every
invocation: the messages, what the handler answered or raised, and when.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
Handler = Callable[[dict[str, Any], Any], Any]


class LambdaContext:
    """The attributes of the Lambda context object that the handler and Powertools read."""

    def __init__(self, function_name: str = "AnalyzeFunction", timeout_seconds: float = 120, memory_mb: int = 1024):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_handler(function_dir: Path = ROOT / "functions/analyze", layer_dir: Path | None = None) -> Handler:
    """Import ``app.lambda_handler`` the way Lambda does: the function's folder plus the layer on the path."""
    return load_function_module(function_dir, layer_dir).lambda_handler


def load_function_module(function_dir: Path = ROOT / "functions/analyze", layer_dir: Path | None = None) -> Any:
    """A fresh import of the function's ``app`` module: a new container, as far as the code can tell."""
    layer_dir = layer_dir or ROOT / "layers/shared"
    for folder in (str(layer_dir), str(function_dir)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location("analyze_app", function_dir / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def configure_function_env(function_env: dict[str, str]) -> None:
    """The environment the template gives the function; a vendor key a user exported stays as it is."""
    os.environ.update(function_env)


def invoke(handler: Handler, event: dict[str, Any], context: Any, metrics_sink: list[dict[str, Any]] | None = None):
    """Call the handler as Lambda would; the EMF metric lines it prints are kept instead of shown.

    (Powertools prints metrics with ``print``; the logger writes to the stream it was created with, so
    log lines are not affected.)
    """
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            return handler(event, context)
    finally:
        if metrics_sink is not None:
            for line in buffer.getvalue().splitlines():
                if line.startswith("{") and '"_aws"' in line:
                    metrics_sink.append(json.loads(line))


@dataclass
class DrainReport:
    invocations: int = 0
    messages: int = 0
    failed_messages: int = 0


class InvocationFailed(RuntimeError):
    """The handler raised: its whole batch went back to the queue. ``__cause__`` is what it raised."""

    def __init__(self, queue_url: str, messages: int, error: BaseException) -> None:
        super().__init__(
            f"the function raised {type(error).__name__}: {error} "
            f"(its batch of {messages} message(s) went back to {queue_url.rsplit('/', 1)[-1]})"
        )
        self.error = error


@dataclass
class Invocation:
    """One invocation as the poller saw it."""

    queue_url: str
    messages: list[dict[str, Any]]
    started_at: float  # time.time() when the handler was called
    seconds: float = 0.0
    failed_ids: set[str] = field(default_factory=set)
    error: BaseException | None = None
    # The queue's redrive policy: a failed message received this many times goes to the dead-letter queue.
    max_receive_count: int | None = None

    def receive_count(self, message: dict[str, Any]) -> int:
        return int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))


def _lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", "0"),
            "SenderId": attributes.get("SenderId", ""),
            "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", "0"),
        },
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": os.environ.get("AWS_REGION", "us-east-1"),
    }


class QueueDriver:
    def __init__(
        self,
        handler: Handler,
        queue_url: str | Sequence[str],
        batch_size: int = 5,
        timeout_seconds: float = 120,
        retry_delay_seconds: int = 0,
        on_invocation: Callable[[Invocation], None] | None = None,
    ) -> None:
        """``queue_url``: one queue, or several (e.g. ``LocalStack.queue_urls``), each read as its own trigger."""
        self.handler = handler
        self.queue_urls = [queue_url] if isinstance(queue_url, str) else list(queue_url)
        self.queue_url = self.queue_urls[0]
        self.batch_size = batch_size
        self.timeout_seconds = timeout_seconds
        self.retry_delay_seconds = retry_delay_seconds
        self.on_invocation = on_invocation
        self._sqs = boto3.client("sqs")
        self.metrics: list[dict[str, Any]] = []
        self._queue_arns: dict[str, str] = {}
        self._max_receive_counts: dict[str, int | None] = {}
        for url in self.queue_urls:
            attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "RedrivePolicy"])[
                "Attributes"
            ]
            self._queue_arns[url] = attributes["QueueArn"]
            redrive = json.loads(attributes.get("RedrivePolicy") or "{}")
            self._max_receive_counts[url] = int(redrive["maxReceiveCount"]) if "maxReceiveCount" in redrive else None
        self.max_receive_count = self._max_receive_counts[self.queue_url]
        self._last_invocations = 0

    def poll_once(self, wait_seconds: int = 0) -> tuple[int, int]:
        """One receive from each queue, and one invocation per queue that had messages; returns
        (messages, failed messages) over all of them.

        Raises ``InvocationFailed`` when the handler raised (its batch is back on the queue)."""
        received = failed = invocations = 0
        for url in self.queue_urls:
            messages, failures = self._poll(url, wait_seconds)
            received, failed, invocations = received + messages, failed + failures, invocations + bool(messages)
        self._last_invocations = invocations
        return received, failed

    def _poll(self, queue_url: str, wait_seconds: int) -> tuple[int, int]:
        response = self._sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0, 0
        event = {"Records": [_lambda_record(m, self._queue_arns[queue_url]) for m in messages]}
        invocation = Invocation(queue_url, messages, time.time(), max_receive_count=self._max_receive_counts[queue_url])
        start = time.monotonic()
        try:
            context = LambdaContext(timeout_seconds=self.timeout_seconds)
            result = invoke(self.handler, event, context, self.metrics) or {}
            invocation.failed_ids = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        except Exception as exc:
            # A crashed invocation: Lambda retries the whole batch.
            invocation.failed_ids = {m["MessageId"] for m in messages}
            invocation.error = exc
        invocation.seconds = time.monotonic() - start
        for message in messages:
            if message["MessageId"] in invocation.failed_ids:
                self._sqs.change_message_visibility(
                    QueueUrl=queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self.retry_delay_seconds,
                )
            else:
                self._sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if self.on_invocation is not None:
            self.on_invocation(invocation)
        if invocation.error is not None:
            raise InvocationFailed(queue_url, len(messages), invocation.error) from invocation.error
        return len(messages), len(invocation.failed_ids)

    def metric_totals(self) -> dict[str, float]:
        """Sum of every EMF metric the invocations emitted, by name."""
        totals: dict[str, float] = {}
        for document in self.metrics:
            for definition in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                values = document[definition["Name"]]
                values = values if isinstance(values, list) else [values]
                totals[definition["Name"]] = totals.get(definition["Name"], 0.0) + sum(values)
        return totals

    def drain(self, max_invocations: int = 10_000, idle_polls: int = 2) -> DrainReport:
        """Invoke until every queue stays empty for ``idle_polls`` rounds of receives."""
        report = DrainReport()
        idle = 0
        while report.invocations < max_invocations and idle < idle_polls:
            received, failed = self.poll_once()
            if not received:
                idle += 1
                time.sleep(0.05)
                continue
            idle = 0
            report.invocations += self._last_invocations
            report.messages += received
            report.failed_messages += failed
        return report

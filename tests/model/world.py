"""The world the real handler runs in, for the model: AWS (in memory or the emulator), the queues, S3's events.

MemoryBackend / EmulatorBackend   where S3, DynamoDB and SNS live; each example gets fresh buckets
model_runtime(...)                the handler's Runtime from real components, wired as
                                  ``runtime.build_runtime`` wires them, on the model's clock and clients
Queues                            SQS as the Lambda trigger sees it: receive counts, MaxReceiveCount,
                                  the dead-letter queue and its redrive; direct (asynchronous)
                                  invocations with Lambda's two retries and on-failure destination
s3_notification_body(...)         an event exactly as S3 sends it, with its sequencer
"""

from __future__ import annotations

import itertools
import json
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from image_analysis.alert_ledger import AlertLedger
from image_analysis.alerts import AlertPublisher
from image_analysis.imaging import FrameLimits
from image_analysis.merge import Thresholds
from image_analysis.objects import ObjectReader
from image_analysis.orchestration import Orchestrator
from image_analysis.pipeline import Pipeline
from image_analysis.providers.builtin import BuiltinProvider
from image_analysis.runtime import Runtime
from image_analysis.settings import Settings
from image_analysis.store import ResultStore
from tests.model.contents import RedScanProvider
from tests.model.fakes import Clock, FakeS3, FakeSNS
from tests.model.instrument import Instrumented, Switchboard

# The template's function timeout and the least MaxReceiveCount it allows; Lambda's retries of a direct
# (asynchronous) invocation (EventInvokeConfig.MaximumRetryAttempts).
TIMEOUT_SECONDS = 120
MAX_RECEIVE_COUNT = 3
DIRECT_ATTEMPTS = 1 + 2
# The model's clock starts here (the fixture events' day); S3 stamps objects with it.
EPOCH = datetime(2026, 11, 22, 10, 0, tzinfo=UTC).timestamp()
FIRST_SEQUENCER = 0x0055AED6DCD9000000


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def listed_time(moment: float) -> str:
    """An object's LastModified as a listing gives it: whole seconds (the backfill message's event time)."""
    from image_analysis_cli.enqueue import last_modified

    return last_modified(datetime.fromtimestamp(int(moment), UTC)) or ""


class ModelLogger:
    """What the handler logs, kept: an exception logged while the model runs is shown with a counterexample."""

    def __init__(self) -> None:
        self.exceptions: list[str] = []

    def exception(self, message: str, *args: Any, **kwargs: Any) -> None:
        self.exceptions.append(f"{message}\n{traceback.format_exc()}")

    def error(self, *args: Any, **kwargs: Any) -> None:
        pass

    info = warning = debug = error

    def thread_safe_append_keys(self, **kwargs: Any) -> None:
        pass

    def thread_safe_clear_keys(self) -> None:
        pass


class Metrics:
    """The EMF metrics the pipeline counts (QuarantineTagFailed, AlertPublishFailed, ...), summed."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def add_metric(self, name: str, unit: str, value: float) -> None:
        self.totals[name] = self.totals.get(name, 0) + value


@dataclass
class Config:
    quarantine_tags: bool
    on_delete: str
    # DELIVERY_GATE=closed: ``image-analysis:verdict=clean`` on the versions that may be served. The gated
    # bucket is versioned (the template turns versioning on with the gate), so uploads go there only.
    delivery_gate: bool = False


# -- where AWS lives --------------------------------------------------------------------------------------
class Backend:
    """S3, DynamoDB and SNS for one example. ``s3``/``dynamodb`` are the model's own clients (never faulted);
    the pipeline gets instrumented ones from ``model_runtime``."""

    clock: Clock
    board: Switchboard
    s3: Any
    dynamodb: Any
    sns: Any
    results_table: str
    ledger_table: str
    topic_arn: str
    orchestrator: Orchestrator
    plain_bucket: str
    versioned_bucket: str

    def published(self) -> list[dict[str, Any]]:
        """Every alert published during the example, as sent (kept by the switchboard's observer)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def shared_orchestrator(board_holder: dict[str, Any]) -> Orchestrator:
    """builtin plus the red-scanning moderation stand-in; one per session (its thread pools are reused)."""
    settings = model_settings(Config(False, "delete"), "results", "topic", "ledger")
    scanner = RedScanProvider()
    board_holder["scanner"] = scanner
    return Orchestrator({"builtin": BuiltinProvider(), "redscan": scanner}, settings)


def model_settings(config: Config, results_table: str, topic_arn: str, ledger_table: str) -> Settings:
    return Settings.from_env(
        {
            "RESULTS_TABLE": results_table,
            "ALERTS_TOPIC_ARN": topic_arn,
            "ALERT_LEDGER_TABLE": ledger_table,
            "PROVIDERS": "builtin",
            "ON_DELETE": config.on_delete,
            "QUARANTINE_TAGS": "true" if config.quarantine_tags else "false",
            "DELIVERY_GATE": "closed" if config.delivery_gate else "open",
            # One record at a time: interleavings come from the model (paused and cut invocations), so that
            # every run is reproducible.
            "RECORD_CONCURRENCY": "1",
        }
    )


def model_runtime(backend: Backend, config: Config, s3: Any, dynamodb: Any, sns: Any, metrics: Metrics) -> Runtime:
    """The Runtime ``runtime.build_runtime`` makes, with the model's clock and clients (instrumented)."""
    settings = model_settings(config, backend.results_table, backend.topic_arn, backend.ledger_table)
    orchestrator = backend.orchestrator
    pipeline = Pipeline(
        reader=ObjectReader(s3, settings.max_object_bytes),
        store=ResultStore(settings.results_table, dynamodb, settings.result_ttl_days, clock=backend.clock.time),
        publisher=AlertPublisher(settings.alerts_topic_arn, sns),
        orchestrator=orchestrator,
        on_delete=settings.on_delete,
        quarantine_tags=settings.quarantine_tags,
        thresholds=Thresholds.from_settings(settings, orchestrator.providers.values()),
        max_pixels=settings.max_pixels,
        frame_limits=FrameLimits(settings.frame_samples, settings.frame_scan_limit),
        raw_budget_bytes=settings.raw_item_budget_bytes,
        ledger=AlertLedger(settings.alert_ledger_table, dynamodb, clock=backend.clock.time),
        clock=backend.clock.time,
        sleep=backend.clock.sleep,
        metrics=metrics,
        delivery_gate=config.delivery_gate,
    )
    return Runtime(settings=settings, pipeline=pipeline)


class MemoryBackend(Backend):
    """Fakes for S3 and SNS, moto's in-process DynamoDB (shared by the examples of a run)."""

    _buckets = itertools.count(1)

    def __init__(self, dynamodb: Any, orchestrator: Orchestrator, scanner: RedScanProvider) -> None:
        self.clock = Clock(EPOCH)
        self.board = Switchboard()
        scanner.board = self.board
        self.orchestrator = orchestrator
        self.s3 = FakeS3(self.clock)
        self.sns = FakeSNS()
        self.dynamodb = dynamodb
        self.results_table, self.ledger_table = "ResultsTable", "AlertLedgerTable"
        self.topic_arn = "arn:aws:sns:us-east-1:123456789012:alerts"
        number = next(self._buckets)
        # Fresh names each example: the tables are shared, and their keys start with the bucket.
        self.plain_bucket, self.versioned_bucket = f"plain-{number}", f"versioned-{number}"
        self.s3.create_bucket(Bucket=self.plain_bucket)
        self.s3.create_bucket(Bucket=self.versioned_bucket, versioned=True)

    def published(self) -> list[dict[str, Any]]:
        return self.sns.published


class EmulatorBackend(Backend):
    """The template deployed in the emulator: moto's S3 and SNS over HTTP, the official DynamoDB Local.

    The buckets are the example's own (no notifications: the model sends S3's events itself, with their
    sequencers); the tables and the topic are the stack's. What the function published is read from its
    client's calls (the stack's observer queue is other tests' too)."""

    _buckets = itertools.count(1)

    def __init__(self, stack: Any, orchestrator: Orchestrator, scanner: RedScanProvider) -> None:
        from image_analysis.runtime import aws_clients

        self.clock = Clock(EPOCH)
        self.board = Switchboard()
        scanner.board = self.board
        self.orchestrator = orchestrator
        clients = aws_clients()
        self.s3, self.dynamodb, self.sns = clients["s3"], clients["dynamodb"], clients["sns"]
        self.results_table = stack.outputs["ResultsTableName"]
        self.ledger_table = stack.outputs["AlertLedgerTableName"]
        self.topic_arn = stack.outputs["AlertsTopicArn"]
        run = uuid.uuid4().hex[:8]
        number = next(self._buckets)
        self.plain_bucket, self.versioned_bucket = f"model-{run}-{number}-plain", f"model-{run}-{number}-versioned"
        self.s3.create_bucket(Bucket=self.plain_bucket)
        self.s3.create_bucket(Bucket=self.versioned_bucket)
        self.s3.put_bucket_versioning(Bucket=self.versioned_bucket, VersioningConfiguration={"Status": "Enabled"})
        self._published: list[dict[str, Any]] = []
        self.board.observers.append(self._observe)

    def _observe(self, op: str, kwargs: dict[str, Any], result: Any) -> None:
        if op == "sns.publish":
            self._published.append(kwargs)

    def published(self) -> list[dict[str, Any]]:
        return self._published


def instrumented_clients(backend: Backend) -> tuple[Any, Any, Any]:
    tables = {backend.results_table: "results", backend.ledger_table: "ledger"}
    return (
        Instrumented(backend.s3, "s3", backend.board),
        Instrumented(backend.dynamodb, "dynamodb", backend.board, tables),
        Instrumented(backend.sns, "sns", backend.board),
    )


# -- S3's events ----------------------------------------------------------------------------------------
def s3_notification_body(
    event_name: str,
    bucket: str,
    key: str,
    sequencer: str,
    moment: float,
    etag: str | None = None,
    size: int | None = None,
    version_id: str | None = None,
) -> str:
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/")}
    if size is not None:
        obj["size"] = size
    if etag is not None:
        obj["eTag"] = etag
    if version_id is not None:
        obj["versionId"] = version_id
    obj["sequencer"] = sequencer
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": iso(moment),
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "uploads",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
    }
    return json.dumps({"Records": [record]})


# -- the queues ----------------------------------------------------------------------------------------
@dataclass
class Message:
    number: int
    body: str
    # "live" (the analysis queue) or "backfill" (backfill, reprocess, reconcile); a trigger reads one.
    queue: str
    # "sqs", or "direct": an asynchronous invocation with the S3 event itself (Lambda retries it twice).
    kind: str = "sqs"
    receives: int = 0
    # What it carries: an S3 event (its id in the model), or a listed object (backfill and friends).
    event: Any = None
    listed: Any = None
    reprocess: bool = False

    @property
    def message_id(self) -> str:
        return f"message-{self.number}"


@dataclass
class Queues:
    pending: list[Message] = field(default_factory=list)
    in_flight: list[Message] = field(default_factory=list)
    dead: list[Message] = field(default_factory=list)
    _numbers: Any = field(default_factory=lambda: itertools.count(1))

    def send(self, body: str, queue: str = "live", kind: str = "sqs", **what: Any) -> Message:
        message = Message(next(self._numbers), body, queue, kind, **what)
        self.pending.append(message)
        return message

    def take(self, messages: list[Message]) -> None:
        for message in messages:
            self.pending.remove(message)
            message.receives += 1
            self.in_flight.append(message)

    def acknowledge(self, message: Message) -> None:
        self.in_flight.remove(message)

    def hand_back(self, message: Message) -> bool:
        """A failed delivery: back to the queue, or to the dead-letter queue once its deliveries are used
        up; True when it went to the dead-letter queue."""
        self.in_flight.remove(message)
        limit = DIRECT_ATTEMPTS if message.kind == "direct" else MAX_RECEIVE_COUNT
        if message.receives < limit:
            self.pending.append(message)
            return False
        if message.kind == "direct":
            # Lambda's on-failure destination keeps the invocation's event in a record of its own.
            message.body = json.dumps(destination_record(json.loads(message.body), message.receives))
            message.kind = "sqs"
            message.queue = "live"
        self.dead.append(message)
        return True

    def redrive(self) -> list[Message]:
        """SQS's redrive: each message back to its source queue as a new message (receive count from 0)."""
        moved, self.dead = self.dead, []
        for message in moved:
            message.receives = 0
            self.pending.append(message)
        return moved


def destination_record(event: dict[str, Any], attempts: int) -> dict[str, Any]:
    """What Lambda sends to an on-failure destination after the last retry of an asynchronous invocation."""
    return {
        "version": "1.0",
        "timestamp": "2026-11-22T10:00:00.000Z",
        "requestContext": {
            "requestId": str(uuid.uuid5(uuid.NAMESPACE_URL, json.dumps(event, sort_keys=True))),
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:AnalyzeFunction:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "some object(s) must be retried", "errorType": "RecordsFailed"},
    }


def sqs_event(messages: list[Message]) -> dict[str, Any]:
    queue_arn = {"live": "arn:aws:sqs:us-east-1:123456789012:analyze", "backfill": "arn:aws:sqs:us-east-1:1:backfill"}
    return {
        "Records": [
            {
                "messageId": m.message_id,
                "receiptHandle": f"receipt-{m.number}-{m.receives}",
                "body": m.body,
                "attributes": {"ApproximateReceiveCount": str(m.receives), "SentTimestamp": "0"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn[m.queue],
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }

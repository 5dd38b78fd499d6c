"""Fault injection end to end: many uploads, a flaky vendor, duplicated and reordered events.

The stack is created from template.yaml in the emulator; Imagga is the local sandbox injecting 429s
(half of them with ``Retry-After``, half without), 500/503s, answers slower than the timeout, dropped
connections and malformed bodies at the configured rate. Events are sent to the queue the way S3 sends
them (with sequencers), plus duplicates of some (half of those right beside the original, so both
copies arrive in one batch and run at the same time; the rest at the end of the queue) and, for
overwritten keys, the newer event before the older.
The driver plays the SQS trigger until the queue is empty; the queue's redrive policy moves what
failed every delivery to the dead-letter queue.

The accounting at the end is the promise: every upload is a result (``succeeded``/``partial``/
``skipped`` for an overwritten version) or a ``failed`` item whose message is in the dead-letter
queue; no object version was written as a final result twice; no alert was sent twice.

``python -m local.faultrun --uploads 3000`` is ``make soak``; the test suite runs a bounded one.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import boto3

from local.driver import QueueDriver, configure_function_env, load_function_module
from local.emulator import local_aws
from local.sandbox import Fault, FaultPlan, Faults, VendorSandbox
from local.stack import deploy, read_alerts

FINAL = ("succeeded", "partial", "skipped", "rejected")


@dataclass
class FaultRunReport:
    uploads: int
    object_versions: int
    events_sent: int
    duplicate_events: int
    # Copies of one event that arrived in the same batch, i.e. were processed at the same time.
    same_batch_duplicates: int
    reordered_pairs: int
    vendor_requests: int
    faults_injected: dict[str, int]
    outcomes: dict[str, int]
    dead_letter_messages: int
    failed_without_dead_letter: list[str]
    # A duplicate's message may use up its deliveries while another copy of the event succeeded:
    # harmless (a redrive is acknowledged as a duplicate) and counted apart.
    dead_letter_superseded: int
    dead_letter_without_item: list[str]
    missing_results: list[str]
    duplicate_results: int
    alerts: int
    flagged_results: int
    duplicate_alerts: int
    invocations: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.missing_results
            and not self.failed_without_dead_letter
            and not self.dead_letter_without_item
            and self.duplicate_results == 0
            and self.duplicate_alerts == 0
            and self.alerts == self.flagged_results
        )

    def table(self) -> str:
        rows = [
            ("uploads (keys)", self.uploads),
            ("object versions (incl. overwrites)", self.object_versions),
            ("events sent (incl. duplicates)", self.events_sent),
            ("duplicate events", self.duplicate_events),
            ("  of which in the same batch as their original", self.same_batch_duplicates),
            ("overwrites delivered newest first", self.reordered_pairs),
            ("vendor requests", self.vendor_requests),
            ("faults injected", sum(self.faults_injected.values())),
            *((f"  {kind}", count) for kind, count in sorted(self.faults_injected.items())),
            *((f"outcome {status}", count) for status, count in sorted(self.outcomes.items())),
            ("messages in the dead-letter queue", self.dead_letter_messages),
            ("failed items without a dead-letter message", len(self.failed_without_dead_letter)),
            ("dead-letter messages whose upload has a result anyway", self.dead_letter_superseded),
            ("dead-letter messages without any item", len(self.dead_letter_without_item)),
            ("uploads without any result", len(self.missing_results)),
            ("duplicate results", self.duplicate_results),
            ("flagged results", self.flagged_results),
            ("alerts received", self.alerts),
            ("duplicate alerts", self.duplicate_alerts),
            ("invocations", self.invocations),
            ("seconds", f"{self.seconds:.1f}"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def _png(index: int, flagged: bool) -> bytes:
    from PIL import Image, PngImagePlugin

    rng = random.Random(index)
    image = Image.new("RGB", (96, 64), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    info = PngImagePlugin.PngInfo()
    if flagged:
        info.add_text("parameters", f"image {index}\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: {index}")
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def _s3_body(bucket: str, key: str, etag: str, size: int, sequencer: int) -> str:
    from urllib.parse import quote_plus

    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-11-22T10:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag, "sequencer": f"{sequencer:018X}"},
        },
    }
    return json.dumps({"Records": [record]})


class MixedRetryAfter(Faults):
    """The plan's faults, with a share of its 429s carrying ``Retry-After`` (the plan sets it on all or
    none); counts them, since the sandbox's log records only the kind."""

    def __init__(self, plan: FaultPlan, share: float, retry_after: str, seed: int) -> None:
        super().__init__(plan)
        self._share = share
        self._retry_after = retry_after
        self._coin = random.Random(seed + 1)
        self.with_retry_after = 0

    def next(self, path: str) -> Fault:
        fault = super().next(path)
        if fault.kind == "rate_limit" and not fault.retry_after:
            with self._lock:
                if self._coin.random() < self._share:
                    self.with_retry_after += 1
                    return Fault("rate_limit", retry_after=self._retry_after)
        return fault


def default_plan(rate: float, seed: int) -> FaultPlan:
    """``rate`` of all vendor requests get a fault, spread over every kind the sandbox injects."""
    share = {"rate_limit": 0.3, "server_error": 0.15, "unavailable": 0.2, "slow": 0.1, "drop": 0.1, "malformed": 0.15}
    return FaultPlan(retry_after=None, slow_seconds=1.5, seed=seed, **{k: rate * v for k, v in share.items()})


def run(
    uploads: int = 500,
    fault_rate: float = 0.3,
    duplicate_rate: float = 0.1,
    overwrite_rate: float = 0.05,
    flagged_every: int = 7,
    seed: int = 20261122,
    max_receive_count: int = 3,
) -> FaultRunReport:
    saved_environment = dict(os.environ)
    try:
        return _run(uploads, fault_rate, duplicate_rate, overwrite_rate, flagged_every, seed, max_receive_count)
    finally:
        # The run reconfigures the process as the function's container; leave it as it was.
        os.environ.clear()
        os.environ.update(saved_environment)


def _run(
    uploads: int,
    fault_rate: float,
    duplicate_rate: float,
    overwrite_rate: float,
    flagged_every: int,
    seed: int,
    max_receive_count: int,
) -> FaultRunReport:
    rng = random.Random(seed)
    started = time.monotonic()
    plan = default_plan(fault_rate, seed)
    sandbox = VendorSandbox("imagga", answers="saved")  # flags by design: the uploads that carry AI metadata
    # Imagga documents no Retry-After, but a gateway in front of it may send one: both kinds of 429.
    faults = MixedRetryAfter(plan, share=0.5, retry_after="1", seed=seed)
    sandbox.faults = faults
    with local_aws(), sandbox as vendor_url:
        stack = deploy(
            stack_name="image-analysis-fault-run",
            parameters={"Providers": "builtin,imagga", "MaxReceiveCount": str(max_receive_count)},
        )
        configure_function_env(stack.function_env)
        os.environ.update(
            {
                "IMAGGA_BASE_URL": vendor_url,
                "IMAGGA_API_KEY": "sandbox-key",
                "IMAGGA_API_SECRET": "sandbox-secret",
                "HTTP_TIMEOUT_SECONDS": "0.5",
                "HTTP_MAX_ATTEMPTS": "2",
                "RETRY_BASE_DELAY_SECONDS": "0.02",
                "POWERTOOLS_LOG_LEVEL": "ERROR",
            }
        )
        s3, sqs = boto3.client("s3"), boto3.client("sqs")
        # This run sends the events itself, as S3 does, with sequencers; the emulator's own come without.
        s3.put_bucket_notification_configuration(Bucket=stack.bucket, NotificationConfiguration={})
        bodies: list[str] = []
        versions = 0
        sequencer = 0x0055AED6DCD9000000
        overwritten = 0
        keys = [f"fault-run/{i:05d} image {'+ai' if i % flagged_every == 0 else ''}.png" for i in range(uploads)]
        for index, key in enumerate(keys):
            body = _png(index, flagged=index % flagged_every == 0)
            etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
            sequencer += 1
            versions += 1
            events = [_s3_body(stack.bucket, key, etag, len(body), sequencer)]
            if rng.random() < overwrite_rate:
                newer = _png(index + 1_000_000, flagged=index % flagged_every == 0)
                newer_etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=newer)["ETag"].strip('"')
                sequencer += 1
                versions += 1
                overwritten += 1
                # S3 may deliver out of order: the newer event first, then the older one.
                events.insert(0, _s3_body(stack.bucket, key, newer_etag, len(newer), sequencer))
            bodies.extend(events)
        # Duplicates: half right beside their original (one batch, processed concurrently), half at the end.
        queued: list[str] = []
        late: list[str] = []
        for body in bodies:
            queued.append(body)
            if rng.random() < duplicate_rate:
                (queued if rng.random() < 0.5 else late).append(body)
        duplicates = len(queued) - len(bodies) + len(late)
        bodies = queued + late
        for start in range(0, len(bodies), 10):
            chunk = bodies[start : start + 10]
            sqs.send_message_batch(
                QueueUrl=stack.queue_url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)]
            )

        function = load_function_module()
        writes: collections.Counter[tuple[str, str]] = collections.Counter()
        # The container's runtime, built now as the first invocation would, so every write is counted.
        store = function._get_runtime().pipeline.store
        original_put = store.put_result

        def counting_put(result: Any, sequence: str, *args: Any, **kwargs: Any) -> bool:
            written = original_put(result, sequence, *args, **kwargs)
            if written:
                writes[(f"{result.bucket}/{result.key}", result.etag or "")] += 1
            return written

        store.put_result = counting_put
        same_batch = 0

        def handler(event: dict[str, Any], context: Any) -> Any:
            nonlocal same_batch
            copies = collections.Counter(record["body"] for record in event.get("Records", []))
            same_batch += sum(count - 1 for count in copies.values())
            return function.lambda_handler(event, context)

        driver = QueueDriver(handler, stack.queue_url, batch_size=5, timeout_seconds=120)
        report = driver.drain(idle_polls=3)

        items = _scan(stack.table)
        dead_letters = _drain_queue(stack.dlq_url)
        alerts = read_alerts(stack.observer_queue_url)

    by_key = {item["key"]: item for item in items}
    dead_keys = set()
    for body in dead_letters:
        for record in json.loads(body)["Records"]:
            from urllib.parse import unquote_plus

            dead_keys.add(unquote_plus(record["s3"]["object"]["key"]))
    outcomes = collections.Counter(item["status"] for item in items)
    failed_keys = {key for key, item in by_key.items() if item["status"] == "failed"}
    alert_ids = collections.Counter(alert["Message"]["alert_id"] for alert in alerts)
    injected = collections.Counter(e.fault for e in sandbox.exchanges if e.fault != "ok")
    if faults.with_retry_after:
        injected["rate_limit"] -= faults.with_retry_after
        injected["rate_limit_retry_after"] = faults.with_retry_after
    return FaultRunReport(
        uploads=uploads,
        object_versions=versions,
        events_sent=len(bodies),
        duplicate_events=duplicates,
        same_batch_duplicates=same_batch,
        reordered_pairs=overwritten,
        vendor_requests=len(sandbox.exchanges),
        faults_injected=dict(injected),
        outcomes=dict(outcomes),
        dead_letter_messages=len(dead_letters),
        failed_without_dead_letter=sorted(failed_keys - dead_keys),
        dead_letter_superseded=sum(1 for k in dead_keys if by_key.get(k, {}).get("status") in FINAL),
        dead_letter_without_item=sorted(k for k in dead_keys if k not in by_key),
        missing_results=sorted(set(keys) - set(by_key)),
        duplicate_results=sum(count - 1 for count in writes.values() if count > 1),
        alerts=len(alerts),
        flagged_results=sum(1 for item in items if item.get("flags")),
        duplicate_alerts=sum(count - 1 for count in alert_ids.values()),
        invocations=report.invocations,
        seconds=time.monotonic() - started,
    )


def _scan(table_name: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb").Table(table_name)
    items, kwargs = [], {}
    while True:
        page = table.scan(ConsistentRead=True, **kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _drain_queue(url: str) -> list[str]:
    sqs = boto3.client("sqs")
    bodies = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=500)
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = run(uploads=args.uploads, fault_rate=args.fault_rate, seed=args.seed)
    print(json.dumps(asdict(report), indent=2) if args.json else report.table())
    print("PASS: every upload accounted for exactly once" if report.ok else "FAIL")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

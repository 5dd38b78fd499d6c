"""``make invoke EVENT=events/s3-put.json``: the no-Docker counterpart of ``sam local invoke``.

Runs the handler once, in this process, against the embedded emulator with the stack created from
template.yaml. The event's bucket is replaced by the stack's uploads bucket; objects the event names
are put there from ``samples/`` when missing, and the event's ETag and size are set to the stored
object's, as S3 would have sent them. Prints the handler's response, the item written and any alert.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import boto3

from local.demo import SAMPLE_KEYS, SAMPLES, stack_parameters
from local.driver import LambdaContext, configure_function_env, invoke, load_handler
from local.emulator import local_aws
from local.stack import deploy, empty_queue, read_alerts


def _object_entries(event: Any, bucket: str) -> list[tuple[dict[str, Any], dict[str, Any], bool]]:
    """(bucket dict, object dict, key is URL-encoded) for every created object the event names; every
    other S3 record (a delete) is pointed at ``bucket`` in place."""
    entries = []

    def visit(payload: Any) -> None:
        if isinstance(payload, list):
            for record in payload:
                visit(record)
        elif isinstance(payload, dict):
            if payload.get("eventSource") == "aws:sqs":
                body = json.loads(payload["body"])
                visit(body)
                payload["_body"] = body  # re-serialized after patching
            elif "Records" in payload:
                visit(payload["Records"])
            elif payload.get("source") == "aws.s3" and "detail" in payload:
                entries.append((payload["detail"]["bucket"], payload["detail"]["object"], False))
                payload["resources"] = []
            elif "s3" in payload and str(payload.get("eventName", "")).startswith("ObjectCreated"):
                entries.append((payload["s3"]["bucket"], payload["s3"]["object"], True))
            elif "s3" in payload:  # a delete or another event: only point it at the stack's bucket
                payload["s3"]["bucket"]["name"] = bucket

    visit(event)
    return entries


def _reserialize(payload: Any) -> None:
    if isinstance(payload, dict):
        if "_body" in payload:
            payload["body"] = json.dumps(payload.pop("_body"))
        for value in payload.values():
            _reserialize(value)
    elif isinstance(payload, list):
        for value in payload:
            _reserialize(value)


def prepare_event(event: Any, bucket: str) -> list[str]:
    """Point the event at ``bucket`` and make sure each object exists; returns the decoded keys."""
    s3 = boto3.client("s3")
    keys = []
    for bucket_entry, obj, encoded in _object_entries(event, bucket):
        key = unquote_plus(obj["key"]) if encoded else obj["key"]
        bucket_entry["name"] = bucket
        if "arn" in bucket_entry:
            bucket_entry["arn"] = f"arn:aws:s3:::{bucket}"
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
        except s3.exceptions.ClientError:
            sample = SAMPLE_KEYS.get(key) or _sample_by_name(key)
            if sample is None:
                raise SystemExit(f"no sample for {key!r}: use a key from local/demo.py SAMPLE_KEYS") from None
            s3.upload_file(str(SAMPLES / sample), bucket, key)
            head = s3.head_object(Bucket=bucket, Key=key)
        etag_field = "eTag" if encoded else "etag"
        obj[etag_field] = head["ETag"].strip('"')
        obj["size"] = head["ContentLength"]
        obj["key"] = quote_plus(key, safe="/") if encoded else key
        keys.append(key)
    _reserialize(event)
    return keys


def _sample_by_name(key: str) -> str | None:
    """A key whose file name matches a sample's (``cat on the sofa.png`` -> the cat picture)."""
    name = key.rsplit("/", 1)[-1]
    for sample_key, sample in SAMPLE_KEYS.items():
        if sample_key.rsplit("/", 1)[-1] == name:
            return sample
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the handler once on an event file, without Docker.")
    parser.add_argument("event", type=Path, help="an event file, e.g. events/s3-put.json")
    args = parser.parse_args(argv)
    event = json.loads(args.event.read_text())
    with local_aws():
        stack = deploy(parameters=stack_parameters())
        configure_function_env(stack.function_env)
        keys = prepare_event(event, stack.bucket)
        # The stack's bucket notification would queue its own copy of each upload; this run is the event file's.
        empty_queue(stack.queue_url)
        handler = load_handler()
        try:
            response = invoke(handler, event, LambdaContext(), metrics_sink=[])
        except Exception as exc:  # a direct invocation raises on failure, as Lambda would report it
            response = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
        print("Handler response:")
        print(json.dumps(response, indent=2, ensure_ascii=False))
        table = boto3.resource("dynamodb").Table(stack.table)
        from image_analysis.store import from_item

        for key in keys:
            item = table.get_item(Key={"pk": f"{stack.bucket}/{key}", "sk": "null"}, ConsistentRead=True).get("Item")
            print(f"\nItem for {key!r}:")
            print(json.dumps(from_item(item) if item else None, indent=2, ensure_ascii=False))
        alerts = read_alerts(stack.observer_queue_url)
        print(f"\nAlerts published: {len(alerts)}")
        for alert in alerts:
            print(json.dumps({k: alert[k] for k in ("Subject", "Message", "MessageAttributes")}, indent=2))
    return 1 if "errorType" in response else 0


if __name__ == "__main__":
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    sys.exit(main())

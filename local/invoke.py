"""``make invoke EVENT=events/s3-put.json``: the handler once on an event file, the no-Docker ``sam local invoke``.

With a local stack running (``make local-stack``), it runs against that stack: any S3, SQS or
EventBridge event (``sam local generate-event`` ones included) for any object that exists there. The
event's bucket becomes the stack's uploads bucket when the emulator has no bucket of that name, and
each object's ETag and size become the stored object's, as S3 would have sent them (each change is
said). Without one it creates a throwaway stack from template.yaml and puts the objects the event
names there from ``samples/`` when their keys are the demo's.

It prints the handler's response, then each object's stored result, saying whether this run analyzed
it or found it already analyzed, and the alerts this run published. A bad event file, or an object the
stack does not hold, is one line naming the file (exit code 2).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import boto3

from local import running
from local.configuration import MISSING_KEY_HINT, SANDBOX_HINT, ConfigurationError, check, sandbox_on, stack_parameters
from local.demo import provide_sample
from local.driver import LambdaContext, configure_function_env, invoke, load_handler
from local.emulator import LOCAL_CREDENTIALS, local_aws
from local.event_file import EventFileError, Target, load, prepare
from local.event_file import check as check_event
from local.permissions import PermissionGuard, RolePolicy, register
from local.sandboxes import start_sandboxes


@contextmanager
def _alerts_observer(topic_arn: str) -> Iterator[str]:
    """A queue of this run's own on the alerts topic, gone afterwards (a live stack's readers keep theirs)."""
    sqs, sns = boto3.client("sqs"), boto3.client("sns")
    url = sqs.create_queue(QueueName=f"invoke-alerts-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscription = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)["SubscriptionArn"]
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            sns.unsubscribe(SubscriptionArn=subscription)
        with contextlib.suppress(Exception):
            sqs.delete_queue(QueueUrl=url)


def _read_alerts(url: str) -> list[dict[str, Any]]:
    from local.stack import read_alerts

    return read_alerts(url)


def _item(table: str, target: Target) -> dict[str, Any] | None:
    from image_analysis.store import from_item

    sk = target.version_id or "null"
    item = (
        boto3.resource("dynamodb")
        .Table(table)
        .get_item(Key={"pk": f"{target.bucket}/{target.key}", "sk": sk}, ConsistentRead=True)
    )
    return from_item(item["Item"]) if "Item" in item else None


def _what_happened(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    if after is None:
        return "no stored result" + (" (it was removed by this run)" if before else "")
    if before is None or before.get("analyzed_at") != after.get("analyzed_at"):
        return f"this run analyzed it: {after.get('status')}"
    return f"already analyzed at {after.get('analyzed_at')}: this run left the result as it was ({after.get('status')})"


def run(path: Path, event: Any, bucket: str, table: str, topic_arn: str, endpoint: str, provide: Any) -> int:
    """Prepare, invoke, report. The emulator and the function's environment are already set."""
    targets = prepare(path, event, bucket, endpoint, provide=provide, note=lambda line: print(line, flush=True))
    before = {id(t): _item(table, t) for t in targets}
    handler = load_handler()
    with _alerts_observer(topic_arn) as alerts_url:
        try:
            response = invoke(handler, event, LambdaContext(), metrics_sink=[])
        except Exception as exc:  # a direct invocation raises on failure, as Lambda would report it
            response = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
        time.sleep(0.2)  # SNS delivers to the queue as the emulator gets to it
        alerts = _read_alerts(alerts_url)
    print("Handler response:")
    print(json.dumps(response, indent=2, ensure_ascii=False))
    if not targets:
        print("\nThe event names no object: the handler acknowledged it.")
    for target in targets:
        after = _item(table, target)
        print(f"\nResult for s3://{target.bucket}/{target.key}: {_what_happened(before[id(target)], after)}")
        print(json.dumps(after, indent=2, ensure_ascii=False))
    print(f"\nAlerts published by this run: {len(alerts)}")
    for alert in alerts:
        print(json.dumps({k: alert[k] for k in ("Subject", "Message", "MessageAttributes")}, indent=2))
    return 1 if "errorType" in response else 0


def _against_running(stack: running.RunningStack, path: Path, event: Any) -> int:
    print(f"Using the local stack {stack.name} on {stack.endpoint} (make local-stack)", flush=True)
    os.environ.update(LOCAL_CREDENTIALS)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
    os.environ["AWS_ENDPOINT_URL"] = stack.endpoint
    configure_function_env(stack.function_env)
    if stack.role_policy:
        register(RolePolicy.from_json(stack.role_policy))
    return run(path, event, stack.bucket, stack.table, stack.topic_arn, stack.endpoint, provide=None)


def _throwaway(path: Path, event: Any) -> int:
    print("No local stack is running (make local-stack): creating a throwaway one from template.yaml ...", flush=True)
    try:
        providers = check(require_keys=False)
    except ConfigurationError as exc:
        print(f"make invoke: {exc}", file=sys.stderr)
        return 2
    with local_aws() as endpoint, ExitStack() as resources:
        from local.stack import deploy, empty_queue

        sandbox = sandbox_on()
        sandbox_env = start_sandboxes(resources, providers) if sandbox else {}
        stack = deploy(parameters=stack_parameters())
        hint = {} if sandbox else {MISSING_KEY_HINT: SANDBOX_HINT}
        configure_function_env({**stack.function_env, **sandbox_env, **hint})
        code = run(path, event, stack.bucket, stack.table, stack.topic_arn, endpoint, provide=provide_sample)
        # The bucket's own notifications of the samples put there: not this run's business.
        empty_queue(stack.queue_url)
        return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("event", type=Path, help="an event file, e.g. events/s3-put.json")
    args = parser.parse_args(argv)
    PermissionGuard(
        enforce=True, on_denied=lambda call: print(f"denied: {call.describe()}", file=sys.stderr, flush=True)
    ).install()
    try:
        event = load(args.event)
        check_event(args.event, event)
        stack = running.find()
        return _against_running(stack, args.event, event) if stack else _throwaway(args.event, event)
    except EventFileError as exc:
        print(f"make invoke: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    sys.exit(main())

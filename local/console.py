"""``make console``: the moderators' console against a live local stack seeded with the demo's uploads.

The stack is created from template.yaml with ``ReviewMode=flagged`` (and the quarantine), the demo's
uploads (and its second render) are analyzed, so several reviews are pending, and the review function
runs in this process behind ``local.console_adapter`` (the console's API Gateway, signed in as the
local user). Like ``make local-stack``, the stack stays live: uploads made with any client are
analyzed as they land and join the queue, and decisions are applied to their objects by the review
function from its effects queue. It prints ``Console: http://127.0.0.1:PORT/`` once the queue is ready.

Without settings of the user's, the vendors are the local sandboxes (``SANDBOX=1``,
``PROVIDERS=builtin,imagga,aiornot``, example prices per call): offline, no keys, and answers from
several providers to compare.
The analysis function's EMF metric lines go to the emulator's CloudWatch, as CloudWatch Logs turns them
into metrics in AWS, so the stats page's vendor spend reads what it would read there.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any, TextIO

import boto3

from local.configuration import MISSING_KEY_HINT, SANDBOX_HINT, ConfigurationError, check, sandbox_on, stack_parameters
from local.console_adapter import LOCAL_USER, ConsoleAdapter
from local.driver import InvocationFailed, QueueDriver, configure_function_env, load_handler
from local.emulator import PortInUse, local_aws
from local.lifecycle import stop_on_signals_and_parent_death
from local.outcomes import ObjectLines
from local.permissions import PermissionGuard
from local.sandboxes import start_sandboxes
from local.stack import deploy

DEFAULT_PORT = 8080
# Example prices (the vendors' own depend on the plan), so that the stats page has a spend to draw.
DEMO_VENDORS = {
    "SANDBOX": "1",
    "PROVIDERS": "builtin,imagga,aiornot",
    "IMAGGA_PRICE_PER_CALL": "0.0015",
    "AIORNOT_PRICE_PER_CALL": "0.004",
}
# The review settings of the demo: flagged uploads wait for a person, quarantined until then.
CONSOLE_PARAMETERS = {"ReviewMode": "flagged", "QuarantineTags": "true"}


def metric_data(document: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """An EMF document as CloudWatch Logs reads it: (namespace, PutMetricData entries)."""
    aws = document["_aws"]
    stamp = datetime.fromtimestamp(aws["Timestamp"] / 1000, UTC)
    entries = []
    namespace = ""
    for directive in aws["CloudWatchMetrics"]:
        namespace = directive["Namespace"]
        dimension_sets = directive.get("Dimensions") or [[]]
        for metric in directive["Metrics"]:
            values = document[metric["Name"]]
            values = values if isinstance(values, list) else [values]
            for dimensions in dimension_sets:
                entries.append(
                    {
                        "MetricName": metric["Name"],
                        "Dimensions": [{"Name": d, "Value": str(document[d])} for d in dimensions],
                        "Timestamp": stamp,
                        "Values": [float(v) for v in values],
                        "Unit": metric.get("Unit", "None"),
                    }
                )
    return namespace, entries


class MetricsToCloudWatch:
    """What CloudWatch Logs does with the function's EMF lines: metrics in CloudWatch (here, the emulator's)."""

    def __init__(self, drivers: list[QueueDriver]) -> None:
        self.drivers = drivers
        self.cloudwatch = boto3.client("cloudwatch")

    def flush(self) -> int:
        sent = 0
        for driver in self.drivers:
            documents, driver.metrics[:] = list(driver.metrics), []
            for document in documents:
                namespace, entries = metric_data(document)
                for start in range(0, len(entries), 20):
                    self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=entries[start : start + 20])
                    sent += len(entries[start : start + 20])
        return sent


def seed(bucket: str) -> list[str]:
    """The demo's uploads, and its second render (two AI-made images to decide on even without vendors)."""
    from local.demo import REJECTED_KEY, _second_render, upload_samples

    keys = upload_samples(bucket)
    boto3.client("s3").put_object(Bucket=bucket, Key=REJECTED_KEY, Body=_second_render())
    return [*keys, REJECTED_KEY]


def _use_demo_vendors() -> bool:
    """The sandboxes, unless the user chose vendors or the sandbox setting."""
    if any(os.environ.get(name, "").strip() for name in ("PROVIDERS", "ROUTING", "SANDBOX")):
        return False
    os.environ.update(DEMO_VENDORS)
    return True


def run(console_port: int, endpoint_port: int, out: TextIO, ready: threading.Event | None = None) -> int:
    if _use_demo_vendors():
        settings = ", ".join(f"{k}={v}" for k, v in DEMO_VENDORS.items())
        print(f"Vendors: the local sandboxes, at example prices ({settings}; set PROVIDERS to choose)", file=out)
    try:
        providers = check(require_keys=False)
    except ConfigurationError as exc:
        print(f"make console: {exc}", file=sys.stderr)
        return 2
    PermissionGuard(
        enforce=True,
        on_denied=lambda call: print(f"{time.strftime('%H:%M:%S')}  {'denied':<10} {call.describe()}", file=out),
    ).install()
    with ExitStack() as resources:
        try:
            endpoint = resources.enter_context(local_aws(port=endpoint_port or None))
        except PortInUse as exc:
            print(f"make console: {exc}: choose another with ENDPOINT_PORT=", file=sys.stderr)
            return 2
        os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)  # one endpoint for every client, as make local-stack
        print(f"Starting the local stack on {endpoint} (emulator, DynamoDB Local) ...", file=out, flush=True)
        sandbox_env = start_sandboxes(resources, providers, out) if sandbox_on() else {}
        parameters = {**CONSOLE_PARAMETERS, **stack_parameters()}
        if not os.environ.get("POWERTOOLS_LOG_LEVEL"):
            parameters["LogLevel"] = "WARNING"
        stack = deploy(parameters=parameters)
        function_env = {**stack.function_env, **sandbox_env}
        if not sandbox_on():
            function_env[MISSING_KEY_HINT] = SANDBOX_HINT
        configure_function_env(function_env)
        analyze = load_handler()

        from local.review_stack import attach_review, configure_review_env, load_review_handler

        review = attach_review(stack.outputs, stack.name)
        # The console signs in locally (the adapter's user); the function reads its page's sign-in from here.
        review.function_env.update({"CONSOLE_SIGN_IN": "local", "CONSOLE_AUTH_DOMAIN": "", "CONSOLE_CLIENT_ID": ""})
        configure_review_env(review)
        os.environ["POWERTOOLS_LOG_LEVEL"] = parameters.get("LogLevel", os.environ.get("POWERTOOLS_LOG_LEVEL", ""))
        review_handler = load_review_handler()

        lines = ObjectLines(stack.table, stack.bucket, out)
        queues = QueueDriver(analyze, stack.queue_urls, batch_size=5, retry_delay_seconds=2, on_invocation=lines)
        effects = QueueDriver(review_handler, review.effects_queue_url, batch_size=10, retry_delay_seconds=2)
        metrics = MetricsToCloudWatch([queues])

        keys = seed(stack.bucket)
        print(f"Uploaded the demo's {len(keys)} objects; analyzing them ...", file=out, flush=True)
        try:
            queues.drain()
        except InvocationFailed as exc:
            print(f"make console: {exc}", file=sys.stderr)
            return 1
        metrics.flush()

        adapter = ConsoleAdapter(
            review_handler,
            port=console_port,
            on_request=lambda line: print(f"{time.strftime('%H:%M:%S')}  {'console':<10} {line}", file=out, flush=True),
        )
        adapter.start()
        resources.callback(adapter.stop)
        pending = boto3.client("dynamodb").query(
            TableName=review.queue_table,
            IndexName="ByStatus",
            KeyConditionExpression="#s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "pending"}},
            Select="COUNT",
        )["Count"]
        print(f"\n{pending} reviews pending; signed in as {LOCAL_USER} (the local stand-in for Cognito).", file=out)
        print(f"Stack {stack.name} on {endpoint}: bucket {stack.bucket}", file=out)
        print("Uploads and deletions made with any client are analyzed as they land. Ctrl-C stops it.", file=out)
        print(f"Console: {adapter.url}", file=out, flush=True)
        if ready is not None:
            ready.set()
        keep_going(queues, effects, metrics, out)
    return 0


def keep_going(queues: QueueDriver, effects: QueueDriver, metrics: MetricsToCloudWatch, out: TextIO) -> None:
    """The Lambda triggers of both functions, polled in turn until interrupted."""
    while True:
        received = 0
        for driver in (queues, effects):
            with contextlib.suppress(InvocationFailed):  # reported; the batch is retried, as Lambda does
                received += driver.poll_once(wait_seconds=0)[0]
        if metrics.flush() or received:
            continue
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="the console's port (0: any free port)")
    parser.add_argument("--endpoint-port", type=int, default=0, help="the stack's endpoint port (0: any free port)")
    args = parser.parse_args(argv)
    stop_on_signals_and_parent_death()
    try:
        return run(args.port, args.endpoint_port, sys.stdout)
    except KeyboardInterrupt:
        print("\nStopped: the console, the endpoint, DynamoDB Local and the sandboxes are down.", flush=True)
        return 0
    except OSError as exc:
        if exc.errno == 98:  # EADDRINUSE: the console's port
            print(f"make console: port {args.port} is in use: choose another with CONSOLE_PORT=", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main())

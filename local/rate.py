"""Measure the local path's rate: ``image-analysis backfill`` into the queue, then the pipeline draining it.

``python -m local.rate --objects 300``: prints objects per second for each step (emulator-bound: moto's
SQS gets slower as a queue grows, so these are floors for the local path, not AWS figures). The driver
plays one Lambda container taking batches of ``--batch-size`` (the template's ``BatchSize`` default, 10),
so its rate is what one container of the queue trigger does with the builtin provider alone; the
trigger runs up to ``MaximumConcurrency`` of them.
"""

from __future__ import annotations

import argparse
import io
import os
import time
import uuid

import boto3
from click.testing import CliRunner
from PIL import Image

from image_analysis_cli.main import cli
from local.driver import QueueDriver, configure_function_env, load_handler
from local.emulator import local_aws
from local.stack import deploy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=10, help="messages per invocation (BatchSize)")
    args = parser.parse_args(argv)
    with local_aws():
        stack = deploy(stack_name="image-analysis-rate")
        configure_function_env(stack.function_env)
        os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
        s3 = boto3.client("s3")
        bucket = f"prefilled-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        for i in range(args.objects):
            out = io.BytesIO()
            Image.new("RGB", (640, 480), (i % 256, 80, 160)).save(out, format="JPEG")
            s3.put_object(Bucket=bucket, Key=f"photos/{i:06d}.jpg", Body=out.getvalue())
        os.environ["IMAGE_ANALYSIS_STATE_DIR"] = f"/tmp/{bucket}"
        started = time.perf_counter()
        result = CliRunner().invoke(cli, ["--stack-name", stack.name, "backfill", f"s3://{bucket}/photos/"])
        enqueue_seconds = time.perf_counter() - started
        assert result.exit_code == 0, result.output
        started = time.perf_counter()
        report = QueueDriver(load_handler(), stack.queue_urls, batch_size=args.batch_size).drain(idle_polls=1)
        drain_seconds = time.perf_counter() - started
    print(f"objects: {args.objects}")
    print(f"backfill enqueue: {enqueue_seconds:.1f} s ({args.objects / enqueue_seconds:.0f} objects/s)")
    print(
        f"pipeline (builtin, one local driver = one container, batches of {args.batch_size}): {drain_seconds:.1f} s "
        f"({report.messages / drain_seconds:.1f} objects/s, {report.invocations} invocations)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

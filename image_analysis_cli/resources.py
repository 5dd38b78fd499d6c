"""Where the stack's resources are: from the CloudFormation stack's outputs, or given explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError


class CliError(Exception):
    """A problem the user can fix; printed as one clear line, exit code 2."""


class ObjectGone(CliError):
    """The object (or the version) named does not exist (any more)."""


@dataclass
class StackResources:
    results_table: str
    queue_url: str
    bucket: str | None = None
    # The hash banks' table and snapshot bucket (stack outputs BanksTableName, BanksBucketName).
    banks_table: str | None = None
    banks_bucket: str | None = None

    @classmethod
    def resolve(cls, stack_name: str | None, table: str | None, queue_url: str | None) -> StackResources:
        outputs: dict[str, str] = {}
        if stack_name and not (table and queue_url):
            try:
                stack = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
            except ClientError as exc:
                raise CliError(
                    f"stack {stack_name!r} not found ({exc.response['Error']['Message']}); "
                    "pass --stack-name, or --table and --queue-url"
                ) from None
            except BotoCoreError as exc:
                raise CliError(f"cannot reach AWS: {exc}") from None
            outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        table = table or outputs.get("ResultsTableName")
        # The backfill queue: its trigger has a concurrency of its own, so live uploads never wait behind
        # what this command sends. A stack from before that queue existed has only the analysis queue.
        queue_url = queue_url or outputs.get("BackfillQueueUrl") or outputs.get("AnalyzeQueueUrl")
        if not table or not queue_url:
            raise CliError(
                "the results table and the backfill queue are unknown: pass --stack-name or --table/--queue-url"
            )
        return cls(
            table,
            queue_url,
            outputs.get("UploadsBucketName"),
            outputs.get("BanksTableName"),
            outputs.get("BanksBucketName"),
        )


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix)."""
    if not url.startswith("s3://") or len(url) <= 5:
        raise CliError(f"{url!r} is not an s3://bucket[/prefix] URL")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise CliError(f"{url!r} names no bucket")
    return bucket, prefix


def client_error_message(exc: Any) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    return f"{error.get('Code', type(exc).__name__)}: {error.get('Message', exc)}"

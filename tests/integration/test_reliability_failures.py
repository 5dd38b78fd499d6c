"""Every record handed back leaves its reason on the item (``failed``, ``error``, ``attempts``), whether the
pipeline saw the fault or the handler did (time ran out, an unexpected exception), and ``attempts``
counts deliveries across a dead-letter redrive."""

from __future__ import annotations

import pytest

from image_analysis.runtime import aws_clients, build_runtime
from local.driver import LambdaContext, load_function_module
from local.stack import empty_queue
from tests.integration.conftest import SAMPLES
from tests.integration.test_pipeline_end_to_end import item, s3_event, sqs_event

pytestmark = pytest.mark.integration


def handler_with(hooks):
    """The real handler in a fresh container whose AWS clients run ``hooks`` ({(service, event): fn})."""
    module = load_function_module()
    clients = aws_clients()
    for (service, event), hook in hooks.items():
        clients[service].meta.events.register(event, hook)
    module._runtime = build_runtime(clients=clients, logger=module.logger, metrics=module.metrics)
    return module.lambda_handler


def upload(stack, s3, key):
    body = (SAMPLES / "skimage-chelsea.png").read_bytes()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    empty_queue(stack.queue_url)
    return s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5")


def test_a_record_handed_back_for_lack_of_time_is_failed_with_that_reason(stack, s3, table, prefix):
    key = f"{prefix}late.png"
    event = upload(stack, s3, key)
    handler = handler_with({})
    response = handler(sqs_event(event, receive_count=2), LambdaContext(timeout_seconds=5))
    assert response == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    stored = item(table, stack.bucket, key)
    assert (stored["status"], stored["error"]["code"], int(stored["attempts"])) == ("failed", "timeout", 2)
    assert "ran out of time" in stored["error"]["message"]
    # Retried with time to spare, it succeeds over the failure.
    assert handler(sqs_event(event, receive_count=3), LambdaContext()) == {"batchItemFailures": []}
    stored = item(table, stack.bucket, key)
    assert (stored["status"], int(stored["attempts"])) == ("succeeded", 3)


def test_an_unexpected_exception_is_failed_with_its_reason(stack, s3, table, prefix):
    key = f"{prefix}unexpected.png"
    event = upload(stack, s3, key)
    calls = []

    def first_read_breaks(**_):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the table read blew up")

    handler = handler_with({("dynamodb", "before-call.dynamodb.GetItem"): first_read_breaks})
    assert handler(sqs_event(event), LambdaContext()) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    stored = item(table, stack.bucket, key)
    assert (stored["status"], stored["error"]["code"]) == ("failed", "server_error")
    assert "RuntimeError: the table read blew up" in stored["error"]["message"]


def test_attempts_count_deliveries_across_a_dead_letter_redrive(stack, s3, table, prefix):
    key = f"{prefix}redriven.png"
    event = upload(stack, s3, key)

    def s3_down(**_):
        raise ConnectionError("S3 unreachable")

    failing = handler_with({("s3", "before-call.s3.GetObject"): s3_down})
    for receive_count in (1, 2, 3):  # maxReceiveCount deliveries, then the dead-letter queue
        assert failing(sqs_event(event, receive_count=receive_count), LambdaContext())["batchItemFailures"]
    assert int(item(table, stack.bucket, key)["attempts"]) == 3
    # Redriven from the dead-letter queue, SQS counts from 1 again; the item does not.
    failing(sqs_event(event, receive_count=1), LambdaContext())
    stored = item(table, stack.bucket, key)
    assert (stored["status"], int(stored["attempts"])) == ("failed", 4)
    assert "S3 unreachable" in stored["error"]["message"]
    healthy = handler_with({})
    assert healthy(sqs_event(event, receive_count=2), LambdaContext()) == {"batchItemFailures": []}
    stored = item(table, stack.bucket, key)
    assert (stored["status"], int(stored["attempts"])) == ("succeeded", 5)


def test_a_failed_direct_invocation_redriven_from_the_dead_letter_queue_is_analyzed(stack, s3, table, drain, prefix):
    """Its message is Lambda's on-failure destination record; the original event is in requestPayload."""
    import json
    from pathlib import Path

    import boto3

    key = f"{prefix}direct then redriven.png"
    event = upload(stack, s3, key)
    envelope = json.loads(
        (
            Path(__file__).parents[1] / "fixtures/events/lambda_on_failure_destination_s3_put_aws_doc_shape.json"
        ).read_text()
    )
    envelope["requestPayload"] = event
    boto3.client("sqs").send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps(envelope))
    assert drain().failed_messages == 0
    stored = item(table, stack.bucket, key)
    assert (stored["status"], int(stored["attempts"])) == ("succeeded", 4)  # three invocations before this one

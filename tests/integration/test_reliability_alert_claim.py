"""At most one alert per object version when copies of its event run at the same time, and still one
alert when the function crashed between writing the result and publishing it."""

from __future__ import annotations

import time

import pytest

from image_analysis.runtime import aws_clients, build_runtime
from local.driver import LambdaContext, load_function_module
from local.stack import empty_queue
from tests.integration.conftest import ai_png
from tests.integration.test_pipeline_end_to_end import item, s3_event, sqs_event

pytestmark = pytest.mark.integration

# The queue's visibility timeout: a crashed delivery comes back no sooner than this.
VISIBILITY_TIMEOUT = 720


def handler_with_sns(before_publish):
    """The real handler in a fresh container whose SNS client runs ``before_publish`` before each Publish."""
    module = load_function_module()
    clients = aws_clients()
    clients["sns"].meta.events.register("before-call.sns.Publish", before_publish)
    module._runtime = build_runtime(clients=clients, logger=module.logger, metrics=module.metrics)
    return module.lambda_handler


def upload_flagged(stack, s3, key):
    body = ai_png()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    empty_queue(stack.queue_url)  # this test delivers the events itself
    return s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5")


def test_copies_of_one_event_in_one_batch_alert_exactly_once(stack, s3, table, alerts, prefix):
    key = f"{prefix}copies.png"
    event = upload_flagged(stack, s3, key)
    # A slow SNS keeps the winning copy between its write and its publish while the others look.
    handler = handler_with_sns(lambda **_: time.sleep(0.5))
    response = handler(sqs_event(*[event] * 4), LambdaContext())
    assert response == {"batchItemFailures": []}
    received = alerts()
    assert [a["Message"]["key"] for a in received] == [key]
    assert received[0]["Message"]["alert_id"] == item(table, stack.bucket, key)["alert_id"]


def test_a_crash_after_the_write_is_healed_by_the_delivery_after_the_visibility_timeout(
    stack, s3, table, alerts, prefix
):
    key = f"{prefix}crashed.png"
    event = upload_flagged(stack, s3, key)

    def crash(**_):
        raise RuntimeError("the function died before publishing")

    crashed = handler_with_sns(crash)
    assert crashed(sqs_event(event), LambdaContext()) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    stored = item(table, stack.bucket, key)
    assert stored["flags"] == ["ai_generated"] and "alert_id" not in stored and stored["alert_claimed_at"]
    assert alerts() == []

    healthy = handler_with_sns(lambda **_: None)
    # A copy arriving while the crashed invocation could still be running does not publish.
    assert healthy(sqs_event(event), LambdaContext()) == {"batchItemFailures": []}
    assert alerts() == []
    # The crashed message comes back after the visibility timeout: by then the claim has expired.
    table.update_item(
        Key={"pk": f"{stack.bucket}/{key}", "sk": "null"},
        UpdateExpression="SET alert_claimed_at = alert_claimed_at - :elapsed",
        ExpressionAttributeValues={":elapsed": VISIBILITY_TIMEOUT + 1},
    )
    assert healthy(sqs_event(event), LambdaContext()) == {"batchItemFailures": []}
    (alert,) = alerts()
    assert alert["Message"]["alert_id"] == item(table, stack.bucket, key)["alert_id"]
    # Later copies find the alert recorded.
    healthy(sqs_event(event), LambdaContext())
    assert alerts() == []

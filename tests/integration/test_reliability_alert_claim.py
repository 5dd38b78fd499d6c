"""At most one alert per object version and flag set when copies of its event run at the same time, and
still one alert when the publish failed or the function died between writing the result and publishing."""

from __future__ import annotations

import time

import boto3
import pytest

from image_analysis.handler import RecordsFailed
from image_analysis.runtime import aws_clients, build_runtime
from local.driver import LambdaContext, load_function_module
from local.stack import empty_queue
from tests.integration.conftest import ai_png
from tests.integration.test_pipeline_end_to_end import item, s3_event, sqs_event

pytestmark = pytest.mark.integration


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


def test_a_failed_publish_gives_its_claim_back_so_the_next_delivery_publishes_at_once(stack, s3, table, alerts, prefix):
    """A direct invocation is retried by Lambda about a minute later: well inside any claim's life. The
    failed publish must not leave a claim that makes that retry take the item for done."""
    key = f"{prefix}sns-down.png"
    event = upload_flagged(stack, s3, key)

    def sns_down(**_):
        raise RuntimeError("SNS is unavailable")

    failing = handler_with_sns(sns_down)
    assert failing(sqs_event(event), LambdaContext()) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    stored = item(table, stack.bucket, key)
    assert stored["flags"] == ["ai_generated"] and "alert_id" not in stored
    assert alerts() == []

    healthy = handler_with_sns(lambda **_: None)
    assert healthy(sqs_event(event), LambdaContext()) == {"batchItemFailures": []}
    (alert,) = alerts()
    assert alert["Message"]["alert_id"] == item(table, stack.bucket, key)["alert_id"]
    healthy(sqs_event(event), LambdaContext())
    assert alerts() == []


def test_a_direct_invocation_whose_publish_failed_alerts_on_lambdas_retry(stack, s3, table, alerts, prefix):
    """S3 invoking the function directly: the failed record raises (Lambda retries the event about a minute
    later, well inside the claim's life), and that retry publishes the alert instead of taking it for sent."""
    key = f"{prefix}sns-down-direct.png"
    event = upload_flagged(stack, s3, key)

    def sns_down(**_):
        raise RuntimeError("SNS is unavailable")

    with pytest.raises(RecordsFailed):
        handler_with_sns(sns_down)(event, LambdaContext())
    assert alerts() == [] and "alert_id" not in item(table, stack.bucket, key)
    healthy = handler_with_sns(lambda **_: None)
    healthy(event, LambdaContext())
    (alert,) = alerts()
    assert alert["Message"]["alert_id"] == item(table, stack.bucket, key)["alert_id"]
    healthy(event, LambdaContext())
    assert alerts() == []


def test_a_crash_after_the_claim_is_healed_once_the_claim_outlives_its_writer(stack, s3, table, alerts, prefix):
    key = f"{prefix}crashed.png"
    event = upload_flagged(stack, s3, key)

    class Died(BaseException):
        """The process died: nothing after this point runs, no claim is given back."""

    def die(**_):
        raise Died

    crashed = handler_with_sns(die)
    with pytest.raises(Died):
        crashed(sqs_event(event), LambdaContext())
    stored = item(table, stack.bucket, key)
    assert stored["flags"] == ["ai_generated"] and "alert_id" not in stored
    ledger = boto3.client("dynamodb")
    ledger_table = stack.outputs["AlertLedgerTableName"]
    (claim,) = ledger.scan(TableName=ledger_table, FilterExpression="#r = :r",
                           ExpressionAttributeNames={"#r": "result"},
                           ExpressionAttributeValues={":r": {"S": f"{stack.bucket}/{key}#null"}})["Items"]  # fmt: skip
    assert claim["state"]["S"] == "claimed"

    healthy = handler_with_sns(lambda **_: None)
    # A copy arriving while the crashed invocation could still be running does not publish; it comes back.
    assert healthy(sqs_event(event), LambdaContext()) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert alerts() == []
    # Past the writer's deadline the claim is the next delivery's.
    ledger.update_item(
        TableName=ledger_table,
        Key={"pk": claim["pk"]},
        UpdateExpression="SET #until = :past",
        ExpressionAttributeNames={"#until": "until"},
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )
    assert healthy(sqs_event(event), LambdaContext()) == {"batchItemFailures": []}
    (alert,) = alerts()
    assert alert["Message"]["alert_id"] == item(table, stack.bucket, key)["alert_id"] == claim["pk"]["S"]
    healthy(sqs_event(event), LambdaContext())
    assert alerts() == []

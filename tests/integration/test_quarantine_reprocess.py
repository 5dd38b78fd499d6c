"""Quarantine tags through the emulator: the user's nine tags stay, what did not fit is on the item, and a
reprocess that no longer flags the object takes our tags off again."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from local.driver import LambdaContext, load_handler
from tests.integration.conftest import ai_png
from tests.integration.test_pipeline_end_to_end import item, s3_event, sqs_event

pytestmark = pytest.mark.integration
USER_TAGS = {f"project{i}": f"value {i}" for i in range(9)}


def tags_of(s3, bucket, key):
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def test_nine_user_tags_survive_the_quarantine_and_a_reprocess_unflagging_it_removes_ours(
    stack, s3, table, prefix, monkeypatch
):
    monkeypatch.setenv("QUARANTINE_TAGS", "true")
    key, body = f"{prefix}generated.png", ai_png()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body, Tagging=urlencode(USER_TAGS))["ETag"].strip('"')
    upload = s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5")
    assert load_handler()(sqs_event(upload), LambdaContext()) == {"batchItemFailures": []}

    stored = item(table, stack.bucket, key)
    assert stored["flags"] == ["ai_generated"]
    assert tags_of(s3, stack.bucket, key) == {**USER_TAGS, "moderation": "flagged"}
    assert stored["quarantine"] == {"applied": ["moderation"], "left_out": ["flags"]}

    # The operator raises the bar above the generator metadata's 0.85 and reprocesses the object.
    monkeypatch.setenv("AI_GENERATED_THRESHOLD", "0.9")
    reprocess = {**upload, "imageAnalysis": {"reprocess": {"id": "raise-bar-1", "reason": "threshold raised"}}}
    assert load_handler()(sqs_event(reprocess), LambdaContext()) == {"batchItemFailures": []}

    again = item(table, stack.bucket, key)
    assert again["reprocess"]["id"] == "raise-bar-1" and again["flags"] == []
    assert tags_of(s3, stack.bucket, key) == USER_TAGS
    assert "quarantine" not in again

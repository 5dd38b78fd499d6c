"""Vendor calls stop WRITE_RESERVE_SECONDS before the invocation's end, so that a slow vendor still leaves
time for the result's write, the tags and the alert (a vendor allowed to run until the last second left
none, and the record went round again with its answers paid for)."""

from __future__ import annotations

import pytest

from image_analysis import pipeline
from local.driver import LambdaContext, load_function_module
from local.stack import empty_queue
from tests.integration.conftest import ai_png
from tests.integration.test_pipeline_end_to_end import item, s3_event, sqs_event

pytestmark = pytest.mark.integration


def test_the_providers_deadline_leaves_the_write_reserve_and_the_result_is_written(
    stack, s3, table, prefix, monkeypatch
):
    key = f"{prefix}reserve.png"
    body = ai_png()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    empty_queue(stack.queue_url)
    context = LambdaContext(timeout_seconds=30)
    seen: list[tuple[float, float]] = []
    real_run_frames = pipeline.run_frames

    def observed(orchestrator, request, *args, **kwargs):
        # What the providers are given, against what the invocation has left at that moment.
        seen.append((request.deadline.remaining(), context.get_remaining_time_in_millis() / 1000))
        return real_run_frames(orchestrator, request, *args, **kwargs)

    monkeypatch.setattr(pipeline, "run_frames", observed)
    handler = load_function_module().lambda_handler
    assert handler(sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5")), context) == {
        "batchItemFailures": []
    }
    ((providers_have, invocation_has),) = seen
    assert invocation_has - pipeline.WRITE_RESERVE_SECONDS - 1.5 < providers_have
    assert providers_have <= invocation_has - pipeline.WRITE_RESERVE_SECONDS + 0.05
    assert item(table, stack.bucket, key)["status"] == "succeeded"

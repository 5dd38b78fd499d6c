"""`make invoke` on an event whose object is not there: one line that says what to do, and the right thing
to do depends on whether the stack outlives the command."""

from __future__ import annotations

import pytest

from local.event_file import EventFileError, prepare
from tests.integration.test_pipeline_end_to_end import s3_event

pytestmark = pytest.mark.integration


def refusal(tmp_path, stack, prefix, provide):
    path = tmp_path / "event.json"
    with pytest.raises(EventFileError) as caught:
        prepare(
            path,
            s3_event(stack.bucket, f"{prefix}never uploaded.png", "0" * 32, 10, "0055"),
            stack.bucket,
            "http://127.0.0.1:5050",
            provide=provide,
            note=lambda line: None,
        )
    message = str(caught.value)
    assert message.startswith(f"{path}: no object s3://{stack.bucket}/{prefix}never uploaded.png")
    assert "\n" not in message
    return message


def test_with_a_running_stack_it_says_how_to_upload_the_object_there(tmp_path, stack, prefix):
    message = refusal(tmp_path, stack, prefix, provide=None)
    # Quoted: the key has a space, and the line is meant to be pasted into a shell.
    assert message.endswith(
        f"aws --endpoint-url http://127.0.0.1:5050 s3 cp FILE 's3://{stack.bucket}/{prefix}never uploaded.png'"
    )


def test_with_a_throwaway_stack_it_says_to_start_the_local_stack_instead(tmp_path, stack, prefix):
    message = refusal(tmp_path, stack, prefix, provide=lambda bucket, key: False)
    assert "make local-stack" in message and "aws --endpoint-url" not in message

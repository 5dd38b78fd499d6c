"""`make invoke`'s event files: anything wrong is one line that names the file, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.event_file import EventFileError, check, load

ROOT = Path(__file__).resolve().parents[2]
SHARED_EVENTS = ROOT.parent / "shared" / "fixtures" / "events"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def one_line_error(path: Path) -> str:
    with pytest.raises(EventFileError) as caught:
        check(path, load(path))
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"{path}: "), "the line must name the file"
    return message


def test_a_truncated_file_says_where_the_json_breaks(tmp_path):
    path = write(tmp_path, "cut.json", '{"Records": [{"eventSource": "aws:s3", "s3"')
    assert "not JSON" in one_line_error(path) and "line 1, column" in one_line_error(path)


def test_a_missing_file_and_a_folder(tmp_path):
    assert one_line_error(tmp_path / "nope.json") == f"{tmp_path / 'nope.json'}: no such file"
    assert "is a directory" in one_line_error(tmp_path)


def test_a_key_that_is_not_a_string(tmp_path):
    event = json.loads((ROOT / "events/s3-put.json").read_text())
    event["Records"][0]["s3"]["object"]["key"] = 5
    path = write(tmp_path, "key5.json", json.dumps(event))
    assert one_line_error(path).endswith("object key is not a string")


def test_sams_sqs_receive_message_event_is_not_an_s3_event(tmp_path):
    # The body `sam local generate-event sqs receive-message` writes.
    event = {
        "Records": [
            {
                "messageId": "19dd0b57-b21e-4ac1-bd88-01bbb068cb78",
                "receiptHandle": "MessageReceiptHandle",
                "body": "Hello from SQS!",
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "7b270e59b47ff90a553787216d55d91d",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:MyQueue",
                "awsRegion": "us-east-1",
            }
        ]
    }
    path = write(tmp_path, "sqs.json", json.dumps(event))
    message = one_line_error(path)
    assert "SQS message 1" in message and "'Hello from SQS!'" in message
    assert "S3 notifications" in message, "it says what the function takes"


def test_a_json_value_that_is_no_event(tmp_path):
    assert "not an event" in one_line_error(write(tmp_path, "n.json", "42"))


@pytest.mark.parametrize(
    ("name", "objects"),
    [
        ("s3-put.json", 1),
        ("sqs-s3-put.json", 1),
        ("eventbridge-object-created.json", 1),
        ("s3-put-special-key.json", 1),
        ("s3-delete.json", 1),
    ],
)
def test_the_committed_events_name_their_objects(name, objects):
    path = ROOT / "events" / name
    assert check(path, load(path)) == objects


def test_sams_generated_put_event_is_accepted_once_filled_in(tmp_path):
    template = SHARED_EVENTS / "sam_s3_put_template.json"
    if not template.exists():
        pytest.skip("../shared is not beside this checkout")
    text = template.read_text().replace("{{{bucket}}}", "some-bucket").replace("{{{key}}}", "users/42/avatar.png")
    assert check(tmp_path / "e.json", json.loads(text)) == 1

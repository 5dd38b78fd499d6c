"""Event parsing on the shapes of Powertools' sample events: version ids of "null", numeric EventBridge times, keys
kept as sent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from image_analysis.events import parse_event

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "events"
LAYER = Path(__file__).resolve().parents[2] / "layers" / "shared"


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


def eventbridge(**object_fields):
    event = load("powertools_s3EventBridgeNotificationObjectCreatedEvent.json")
    event["detail"]["object"].update(object_fields)
    return event


def only_ref(event):
    (record,) = parse_event(event).records
    assert record.malformed == () and record.ignored == ()
    (ref,) = record.objects
    return ref


def test_an_eventbridge_version_id_of_null_is_no_version():
    ref = only_ref(eventbridge(**{"version-id": "null"}))
    assert ref.version_id is None and ref.sk == "null"
    assert only_ref(eventbridge(**{"version-id": "3HL4kqtJlcpXroDTDmJ"})).version_id == "3HL4kqtJlcpXroDTDmJ"


def test_an_s3_notification_version_id_of_null_is_no_version():
    event = load("powertools_s3Event.json")
    event["Records"][0]["s3"]["object"]["versionId"] = "null"
    assert only_ref(event).version_id is None


def test_an_eventbridge_time_in_epoch_seconds_orders_like_the_same_instant_in_iso():
    as_number = only_ref({**eventbridge(), "time": 1_763_633_730.25})
    as_text = only_ref({**eventbridge(), "time": "2025-11-20T10:15:30.250Z"})
    assert as_number.event_time == "2025-11-20T10:15:30.250Z"
    assert as_number.ordering_time == as_text.ordering_time == "2025-11-20T10:15:30.250Z"
    later = only_ref({**eventbridge(), "time": 1_763_633_731})
    assert later.ordering_time > as_number.ordering_time


def test_an_iso_time_with_an_offset_is_canonical_utc():
    ref = only_ref({**eventbridge(), "time": "2025-11-20T12:15:30+02:00"})
    assert ref.ordering_time == "2025-11-20T10:15:30.000Z"


def test_the_emulators_eventbridge_shape_yields_a_readable_reference():
    # moto spells the ETag eTag, sends "version-id": "null" for an unversioned bucket and the time as a number.
    event = eventbridge(eTag="4e68adba0abe2dc8653dc3354e14c01d", **{"version-id": "null"})
    del event["detail"]["object"]["etag"]
    event["time"] = 1_763_633_730
    ref = only_ref(event)
    assert (ref.bucket, ref.key, ref.version_id, ref.etag) == (
        "example-bucket",
        "IMG_m7fzo3.jpg",
        None,
        "4e68adba0abe2dc8653dc3354e14c01d",
    )
    assert ref.event_time == "2025-11-20T10:15:30.000Z"


def test_an_eventbridge_key_is_used_as_sent_where_an_s3_notification_key_is_decoded():
    # Powertools' EventBridge object decodes its key; EventBridge does not encode it, so "+" must stay "+".
    assert only_ref(eventbridge(key="c++ notes %2B/a b.png")).key == "c++ notes %2B/a b.png"
    event = load("powertools_s3Event.json")
    event["Records"][0]["s3"]["object"]["key"] = "c%2B%2B+notes+%252B/a+b.png"
    assert only_ref(event).key == "c++ notes %2B/a b.png"


@pytest.mark.parametrize("bad_time", [True, [1], 1e300])
def test_an_unusable_time_is_malformed_for_that_record_alone(bad_time):
    body = json.dumps({**eventbridge(), "time": bad_time})
    good = json.dumps(eventbridge())
    event = {
        "Records": [
            {"messageId": "bad", "eventSource": "aws:sqs", "body": body, "attributes": {}},
            {"messageId": "good", "eventSource": "aws:sqs", "body": good, "attributes": {}},
        ]
    }
    bad, good_record = parse_event(event).records
    assert bad.objects == () and bad.malformed and "time" in bad.malformed[0]
    assert [ref.key for ref in good_record.objects] == ["IMG_m7fzo3.jpg"]


def test_an_eventbridge_event_without_detail_object_is_malformed_with_its_reason():
    event = eventbridge()
    event["detail"]["object"] = "IMG_m7fzo3.jpg"
    (record,) = parse_event(event).records
    assert record.malformed == ("detail.object is not an object",)


def test_a_delete_marker_through_eventbridge_is_ignored_before_its_object_is_looked_at():
    event = load("powertools_s3EventBridgeNotificationObjectDeletedEvent.json")
    del event["detail"]["object"]
    (record,) = parse_event(event).records
    assert record.objects == () and record.ignored[0].startswith("delete marker created")


def test_parsing_loads_neither_the_data_classes_nor_the_parser_models():
    # Importing one data class imports all of them (some 50 modules), and the parser's pydantic models cost
    # three times that: a cold start pays for neither.
    code = (
        "import sys, image_analysis.events as e; "
        "print(sum(m.startswith('aws_lambda_powertools.utilities') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(LAYER)!r}); {code}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["0"]

"""Every event shape the contract accepts, from real AWS samples, decodes to the right objects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from image_analysis.events import padded_sequencer, parse_event

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "events"
EVENTS = Path(__file__).resolve().parents[2] / "events"


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


def test_sqs_wrapped_s3_put_keeps_message_id_version_and_etag():
    parsed = parse_event(load("powertools_s3SqsEvent.json"))
    assert parsed.is_sqs
    (record,) = parsed.records
    assert record.message_id == "ca3e7a89-c358-40e5-8aa0-5da01403c267"
    (ref,) = record.objects
    assert (ref.bucket, ref.key, ref.version_id) == ("xxx", "test.pdf", "yd3d4HaWOT2zguDLvIQLU6ptDTwKBnQV")
    assert ref.etag == "2e3ad1e983318bbd8e73b080e2997980"
    assert ref.size == 104681
    assert ref.sequencer == "00643717F9F8B85354"


def test_eventbridge_object_created_key_is_not_url_decoded():
    parsed = parse_event(load("powertools_s3EventBridgeNotificationObjectCreatedEvent.json"))
    assert not parsed.is_sqs
    (ref,) = parsed.records[0].objects
    assert (ref.bucket, ref.key, ref.etag) == ("example-bucket", "IMG_m7fzo3.jpg", "4e68adba0abe2dc8653dc3354e14c01d")
    assert ref.event_name == "ObjectCreated:PutObject"


def test_eventbridge_in_an_sqs_body_is_accepted():
    eventbridge = load("powertools_s3EventBridgeNotificationObjectCreatedEvent.json")
    event = {
        "Records": [{"messageId": "m1", "eventSource": "aws:sqs", "body": json.dumps(eventbridge), "attributes": {}}]
    }
    (ref,) = parse_event(event).records[0].objects
    assert ref.key == "IMG_m7fzo3.jpg"


def test_percent_encoded_utf8_key_in_a_bare_record_list():
    parsed = parse_event(load("s3_put_real_utf8_percent_encoded_key_e2u.json"))
    (ref,) = parsed.records[0].objects
    assert ref.key == "你家娃🐱.png"
    assert ref.version_id is None  # "" in the event means an unversioned bucket


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("this+is+a+test.txt", "this is a test.txt"),
        ("this+im+%2B+age+blah.txt", "this im + age blah.txt"),
        ("Happy%20Face.jpg", "Happy Face.jpg"),
        ("VJ9B4951+-+Copy+%282%29.jpg", "VJ9B4951 - Copy (2).jpg"),
        ("test%2F10%3A47.png", "test/10:47.png"),
    ],
)
def test_keys_decode_as_s3_encodes_them(encoded, decoded):
    record = load("s3_event_fragment_plus_key_boto3_issue3584.json")["Records"][0]
    record["eventName"] = "ObjectCreated:Put"
    record["s3"]["object"]["key"] = encoded
    (ref,) = parse_event({"Records": [record]}).records[0].objects
    assert ref.key == decoded


def test_test_event_and_deletes_are_ignored_with_a_reason():
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}
    event = {
        "Records": [
            {"messageId": "a", "eventSource": "aws:sqs", "body": json.dumps(test_event), "attributes": {}},
            {
                "messageId": "b",
                "eventSource": "aws:sqs",
                "body": json.dumps(load("powertools_s3EventDeleteObject.json")),
                "attributes": {},
            },
        ]
    }
    first, second = parse_event(event).records
    assert first.objects == () and first.ignored == ("s3:TestEvent",)
    (removed,) = second.objects
    assert removed.removed and removed.key == "b21b84d653bb07b05b1e6b33684dc11b" and removed.sequencer
    # A delete marker keeps the object's versions, so their results stay.
    marker = parse_event(load("powertools_s3EventBridgeNotificationObjectDeletedEvent.json"))
    assert marker.records[0].objects == ()
    assert marker.records[0].ignored[0].startswith("delete marker created")
    restore = load("powertools_s3EventGlacier.json")
    restore["Records"][0]["eventName"] = "ObjectRestore:Completed"
    assert parse_event(restore).records[0].ignored[0].startswith("not a create or delete event")


def test_every_record_of_a_multi_record_notification_is_kept():
    single = load("powertools_s3Event.json")["Records"][0]
    second = json.loads(json.dumps(single))
    second["s3"]["object"]["key"] = "second+one.jpg"
    parsed = parse_event({"Records": [single, second]})
    assert [r.key for r in parsed.records[0].objects] == [single["s3"]["object"]["key"], "second one.jpg"]


def test_a_body_that_is_not_json_is_an_error_for_that_message_only():
    good = load("powertools_s3SqsEvent.json")["Records"][0]
    bad = {**good, "messageId": "bad", "body": "not json"}
    records = parse_event({"Records": [bad, good]}).records
    assert records[0].error == "SQS body is not JSON"
    assert records[1].objects[0].key == "test.pdf"


def test_receive_count_comes_from_the_sqs_attributes():
    event = load("powertools_s3SqsEvent.json")
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "4"
    assert parse_event(event).records[0].receive_count == 4


def test_sequencers_of_different_lengths_compare_after_padding():
    # AWS: pad the shorter value with zeros, then compare lexicographically.
    assert padded_sequencer("0055AED6DCD90281E5") < padded_sequencer("0055AED6DCD90281E50001")
    assert padded_sequencer("0055AED6DCD90281E6") > padded_sequencer("0055AED6DCD90281E50001")
    assert padded_sequencer("0055aed6dcd90281e5") == padded_sequencer("0055AED6DCD90281E5")


@pytest.mark.parametrize("name", sorted(p.name for p in EVENTS.glob("*.json")))
def test_project_event_files_parse(name):
    parsed = parse_event(json.loads((EVENTS / name).read_text()))
    objects = [ref for record in parsed.records for ref in record.objects]
    if name == "s3-delete.json":
        assert [(ref.removed, ref.key) for ref in objects] == [(True, "uploads/rocket.jpg")]
    else:
        assert objects and all(ref.key.startswith("uploads/") for ref in objects)
    if name == "s3-put-special-key.json":
        assert objects[0].key == "uploads/café menu+1/cat on the sofa 🐈.png"


def _s3_record(key="good.jpg", **object_fields):
    return {
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "b"}, "object": {"key": key, "size": 10, "eTag": "e", **object_fields}},
    }


MALFORMED = {
    "key is a number": lambda r: r["s3"]["object"].update(key=5),
    "s3 is a string": lambda r: r.update(s3="x"),
    "bucket is a string": lambda r: r["s3"].update(bucket="b"),
    "size is a word": lambda r: r["s3"]["object"].update(size="big"),
    "object is a list": lambda r: r["s3"].update(object=[]),
    "eventName is a number": lambda r: r.update(eventName=7),
    "eTag is an object": lambda r: r["s3"]["object"].update(eTag={"x": 1}),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_record_is_reported_and_never_hides_its_neighbours(case):
    bad = _s3_record("bad.jpg")
    MALFORMED[case](bad)
    body = json.dumps({"Records": [bad, _s3_record("good+one.jpg")]})
    event = {
        "Records": [
            {"messageId": "mixed", "eventSource": "aws:sqs", "body": body, "attributes": {}},
            {"messageId": "clean", "eventSource": "aws:sqs", "body": json.dumps({"Records": [_s3_record()]})},
        ]
    }
    mixed, clean = parse_event(event).records
    assert [ref.key for ref in mixed.objects] == ["good one.jpg"]
    (reason,) = mixed.malformed
    assert reason
    assert [ref.key for ref in clean.objects] == ["good.jpg"] and clean.malformed == ()


def test_a_message_of_the_wrong_shape_is_an_error_for_that_message_only():
    good = load("powertools_s3SqsEvent.json")["Records"][0]
    event = {
        "Records": [
            {**good, "messageId": "number-body", "body": 5},
            {**good, "messageId": "bad-count", "attributes": {"ApproximateReceiveCount": "many"}},
            {**good, "messageId": "json-string", "body": '"just a string"'},
        ]
    }
    number_body, bad_count, json_string = parse_event(event).records
    assert number_body.error == "SQS body is not a string"
    assert (bad_count.receive_count, bad_count.objects[0].key) == (1, "test.pdf")
    assert json_string.malformed == ("not a JSON object",)


def test_a_redriven_on_failure_destination_record_yields_its_original_event():
    envelope = load("lambda_on_failure_destination_s3_put_aws_doc_shape.json")
    original = parse_event(envelope["requestPayload"]).records[0].objects
    # As a direct invocation (a replay) and as the body of a message redriven from the dead-letter queue.
    (direct,) = parse_event(envelope).records
    event = {
        "Records": [
            {
                "messageId": "redriven",
                "eventSource": "aws:sqs",
                "body": json.dumps(envelope),
                "attributes": {"ApproximateReceiveCount": "1"},
            }
        ]
    }
    (redriven,) = parse_event(event).records
    for record in (direct, redriven):
        assert record.objects == original and record.objects[0].key == original[0].key
        assert record.ignored == () and record.malformed == ()
    # Three invocations already happened: this delivery is the fourth.
    assert redriven.receive_count == 4


def test_a_destination_record_without_a_usable_payload_is_malformed_not_retried():
    envelope = load("lambda_on_failure_destination_s3_put_aws_doc_shape.json")
    envelope["requestPayload"] = "{not json"
    (record,) = parse_event(envelope).records
    assert record.objects == () and record.malformed == ("the destination record's requestPayload is not JSON",)

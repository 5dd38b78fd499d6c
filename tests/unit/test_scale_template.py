"""The at-scale backfill template sends what the handler accepts."""

from __future__ import annotations

import json
from pathlib import Path

from samtranslator.yaml_helper import yaml_parse

from image_analysis.events import parse_event

TEMPLATE = Path(__file__).resolve().parents[2] / "scale" / "backfill-distributed-map.yaml"


def test_the_distributed_map_message_is_an_event_the_handler_accepts():
    definition = yaml_parse(TEMPLATE.read_text())["Resources"]["BackfillStateMachine"]["Properties"]["Definition"]
    every_object = definition["States"]["EveryObject"]
    enqueue = every_object["ItemProcessor"]["States"]["SendEach"]["ItemProcessor"]["States"]["Enqueue"]
    body = enqueue["Parameters"]["MessageBody"]
    # What Step Functions builds for one ListObjectsV2 item: the ".$" paths filled in, the bucket resolved.
    item = {"Key": "photos/a b+c%.jpg", "Size": 123, "Etag": '"9b2cf535f27731c974343645a3985328"'}
    message = json.loads(json.dumps(body).replace('{"Ref": "SourceBucketName"}', '"my-bucket"'))
    obj = message["detail"]["object"]
    for field, path in (("key", "$.Key"), ("size", "$.Size"), ("etag", "$.Etag")):
        assert obj.pop(f"{field}.$") == path
        obj[field] = item[path[2:]]
    sqs_event = {
        "Records": [{"messageId": "m", "eventSource": "aws:sqs", "body": json.dumps(message), "attributes": {}}]
    }
    (ref,) = parse_event(sqs_event).records[0].objects
    assert (ref.bucket, ref.key, ref.size) == ("my-bucket", "photos/a b+c%.jpg", 123)
    assert ref.etag == "9b2cf535f27731c974343645a3985328"
    assert every_object["ItemReader"]["Resource"] == "arn:aws:states:::s3:listObjectsV2"

"""The at-scale backfill template: what it sends is what the handler accepts, and what it may do is scoped.

(tests/integration/test_cli_distributed_map.py runs its states in the emulator's Step Functions.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from unittest import mock

import pytest
from samtranslator.yaml_helper import yaml_parse

from image_analysis.events import parse_event

TEMPLATE = Path(__file__).resolve().parents[2] / "scale" / "backfill-distributed-map.yaml"
PARAMETERS = {
    "BackfillQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/backfill",
    "BackfillQueueArn": "arn:aws:sqs:us-east-1:123456789012:backfill",
    "SourceBucketName": "photos",
    "RunReportsBucketName": "artifacts",
}


def sam() -> dict:
    return yaml_parse(TEMPLATE.read_text())


def per_object_states() -> dict:
    definition = sam()["Resources"]["BackfillStateMachine"]["Properties"]["Definition"]
    every_object = definition["States"]["EveryObject"]
    return every_object["ItemProcessor"]["States"]["SendEach"]["ItemProcessor"]["States"]


def fill(body: dict, state: dict) -> dict:
    """What Step Functions builds from a MessageBody: each ``.$`` path resolved against the state."""
    filled: dict = {}
    for name, value in body.items():
        if name.endswith(".$"):
            node = state
            for part in value.removeprefix("$$.").removeprefix("$.").split("."):
                node = node[part]
            filled[name[:-2]] = node
        elif value == {"Ref": "SourceBucketName"}:
            filled[name] = "my-bucket"
        elif isinstance(value, dict):
            filled[name] = fill(value, state)
        else:
            filled[name] = value
    return filled


def handler_refs(message: dict) -> tuple:
    record = {"messageId": "m", "eventSource": "aws:sqs", "body": json.dumps(message), "attributes": {}}
    sqs_event = {"Records": [record]}
    return parse_event(sqs_event).records[0].objects


# One item as the listObjectsV2 item reader and the ItemSelector pass it on (LastModified in seconds since
# the epoch: 2026-11-20T08:00:00Z), plus the context object, whose time is days later.
STATE = {
    "object": {
        "Key": "photos/a b+c%.jpg",
        "Size": 123,
        "Etag": '"9b2cf535f27731c974343645a3985328"',
        "LastModified": 1795161600,
    },
    "versioning": {"Status": "Enabled"},
    "current": {"VersionId": "3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY", "ETag": '"aaaa"', "ContentLength": 456},
    "State": {"EnteredTime": "2026-11-23T10:00:00.123Z"},
}
LISTED_AT = "2026-11-20T08:00:00.000Z"


def test_unversioned_message_is_an_event_the_handler_accepts():
    body = per_object_states()["Enqueue"]["Parameters"]["MessageBody"]
    (ref,) = handler_refs(fill(body, STATE))
    assert (ref.bucket, ref.key, ref.size, ref.version_id) == ("my-bucket", "photos/a b+c%.jpg", 123, None)
    assert ref.etag == "9b2cf535f27731c974343645a3985328"
    # Ordered by when the object was written as listed, not by when the state ran.
    assert ref.sequencer is None and ref.event_time == LISTED_AT and ref.ordering_time == LISTED_AT


def test_versioned_message_carries_the_current_version_as_the_head_saw_it():
    body = per_object_states()["EnqueueVersion"]["Parameters"]["MessageBody"]
    (ref,) = handler_refs(fill(body, STATE))
    assert (ref.key, ref.version_id, ref.etag, ref.size) == (
        "photos/a b+c%.jpg",
        "3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY",
        "aaaa",
        456,
    )
    assert ref.sk == "3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY"
    assert ref.sequencer is None and ref.ordering_time == LISTED_AT


def test_folder_markers_are_recognized_before_anything_is_sent():
    choice = per_object_states()["WhatIsIt"]
    marker = choice["Choices"][0]
    assert marker["Next"] == "FolderMarker" and per_object_states()["FolderMarker"]["Type"] == "Pass"
    assert {"Variable": "$.object.Key", "StringMatches": "*/"} in marker["And"]
    assert {"Variable": "$.object.Size", "NumericEquals": 0} in marker["And"]


def translated() -> dict:
    from local.stack import translate

    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": "us-east-1"}):
        return translate(TEMPLATE, PARAMETERS)


def test_permissions_name_their_resources_and_no_wildcard_resource():
    resources = translated()["Resources"]
    role = resources["BackfillStateMachineRole"]["Properties"]
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    by_sid = {s["Sid"]: s for s in statements}
    for statement in statements:
        targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert "*" not in targets, statement["Sid"]
    start = json.dumps(by_sid["StartChildWorkflows"]["Resource"])
    assert ":stateMachine:${AWS::StackName}-backfill" in start
    watch = json.dumps(by_sid["WatchChildWorkflows"]["Resource"])
    assert ":execution:${AWS::StackName}-backfill/*" in watch
    name = resources["BackfillStateMachine"]["Properties"]["StateMachineName"]
    assert name == {"Fn::Sub": "${AWS::StackName}-backfill"}
    # Reports go to a bucket of their own, never into the bucket being analyzed.
    assert "${RunReportsBucketName}/backfill-runs/*" in json.dumps(by_sid["WriteRunReports"]["Resource"])


def test_the_definition_step_functions_receives_has_numbers_where_it_needs_numbers():
    properties = translated()["Resources"]["BackfillStateMachine"]["Properties"]
    text = "\n".join(properties["DefinitionString"]["Fn::Join"][1])
    for name, value in properties["DefinitionSubstitutions"].items():
        # CloudFormation substitutes strings: a parameter lands in the definition as text.
        resolved = "50" if value == {"Ref": "MaxConcurrency"} else "x"
        if isinstance(value, dict) and "Fn::Sub" in value:
            resolved = value["Fn::Sub"].replace("${MaxConcurrency}", "50")
        text = text.replace("${" + name + "}", resolved)
    definition = json.loads(text)
    every_object = definition["States"]["EveryObject"]
    assert "MaxConcurrency" not in every_object  # it would arrive as the string "50" and be refused
    assert every_object["MaxConcurrencyPath"] == "$.maxConcurrency"
    assert definition["States"]["Settings"]["Parameters"]["maxConcurrency.$"] == "States.StringToJson('50')"
    assert every_object["ResultWriter"]["Parameters"]["Prefix"] == "backfill-runs"


@pytest.mark.parametrize("state", ["Enqueue", "EnqueueVersion"])
def test_messages_go_to_the_backfill_queue_with_retries(state):
    task = per_object_states()[state]
    assert task["Resource"] == "arn:aws:states:::sqs:sendMessage"
    assert task["Parameters"]["QueueUrl"] == {"Ref": "BackfillQueueUrl"}
    assert task["Retry"][0]["MaxAttempts"] >= 3

"""Permissions checked before AWS does: the function's calls against its role in the translated template.

One upload goes through CoreViz (its key read from the provider secret, a prepared copy under
``prepared/`` handed over as a presigned URL), Rekognition (the local sandbox, through the endpoint) and
builtin, and is flagged (an alert is published). Every call the function makes is checked against the
role's statements; removing one statement from the translated template makes the same upload fail the
way AWS would fail it, and the check names the call.
"""

from __future__ import annotations

import copy
import io
import json
import random
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import boto3
import pytest

from local.permissions import policy_replaced
from local.sandboxes import start_sandboxes

pytestmark = pytest.mark.integration


def unique_ai_png() -> bytes:
    """An image generator's PNG (builtin flags it ai_generated) whose bytes no other test has cached."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", f"a lighthouse\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: {uuid.uuid4().int}")
    out = io.BytesIO()
    color = tuple(random.randrange(256) for _ in range(3))
    Image.new("RGB", (240, 180), color).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


@pytest.fixture
def vendors(stack, monkeypatch) -> Iterator[None]:
    """CoreViz and Rekognition answer from their sandboxes; CoreViz's key is in the stack's provider secret."""
    secrets = boto3.client("secretsmanager")
    secret = stack.outputs["ProviderSecretArn"]
    with ExitStack() as resources:
        env = start_sandboxes(resources, ["coreviz", "rekognition"])
        key = env.pop("COREVIZ_API_KEY")
        secrets.put_secret_value(SecretId=secret, SecretString=json.dumps({"coreviz": {"api_key": key}}))
        monkeypatch.delenv("COREVIZ_API_KEY", raising=False)
        for name, value in {**env, "PROVIDERS": "builtin,coreviz,rekognition"}.items():
            monkeypatch.setenv(name, value)
        try:
            yield
        finally:
            secrets.put_secret_value(SecretId=secret, SecretString="{}")


def analyze_one(stack, s3, table, drain, prefix) -> dict[str, Any]:
    key = f"{prefix}render.png"
    s3.put_object(Bucket=stack.bucket, Key=key, Body=unique_ai_png())
    drain()
    return table.get_item(Key={"pk": f"{stack.bucket}/{key}", "sk": "null"}, ConsistentRead=True)["Item"]


def providers_of(item: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in item["providers"]}


def test_every_call_of_an_upload_through_vendors_is_one_the_role_allows(
    stack, vendors, s3, table, drain, prefix, alerts, function_permissions
):
    item = analyze_one(stack, s3, table, drain, prefix)
    assert item["status"] == "succeeded", item.get("error")
    assert {p["name"]: p["status"] for p in item["providers"]} == {
        "builtin": "succeeded",
        "coreviz": "succeeded",
        "rekognition": "succeeded",
    }
    assert item["flags"] == ["ai_generated"] and len(alerts()) == 1
    checked = function_permissions.calls
    assert checked and all(call.role_arn == stack.role_policy.role_arn for call in checked)
    needed = {(need.action, need.resource.split(":::")[-1].split("/")[0]) for call in checked for need in call.needs}
    artifacts = stack.outputs["ArtifactsBucketName"]
    for expected in [
        ("s3:GetObject", stack.bucket),
        ("secretsmanager:GetSecretValue", stack.outputs["ProviderSecretArn"]),
        ("s3:PutObject", artifacts),  # the prepared copy for CoreViz
        ("s3:GetObject", artifacts),  # its presigned URL: CoreViz reads with the function's permissions
        ("s3:DeleteObject", artifacts),
        ("rekognition:DetectLabels", "*"),
        ("rekognition:DetectModerationLabels", "*"),
        ("sns:Publish", stack.topic_arn),
    ]:
        assert expected in needed, f"the upload made no {expected[0]} call on {expected[1]}"
    # The teardown of function_permissions fails this test if any of them was denied.


@pytest.mark.parametrize(
    ("sid", "action", "provider", "code"),
    [
        ("ReadProviderKeys", "secretsmanager:GetSecretValue", "coreviz", "auth"),
        ("PreparedCopiesForUrlOnlyVendors", "s3:PutObject", "coreviz", None),
        ("RekognitionProvider", "rekognition:DetectModerationLabels", "rekognition", "auth"),
        ("ReadUploads", "s3:GetObject", None, "object_unreadable"),
    ],
)
def test_a_statement_taken_out_of_the_template_fails_the_upload_as_aws_would(
    stack, vendors, s3, table, drain, prefix, function_permissions, sid, action, provider, code
):
    template = copy.deepcopy(stack.template)
    document = template["Resources"]["AnalyzeFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    kept = [s for s in document["Statement"] if not (isinstance(s, dict) and s.get("Sid") == sid)]
    assert len(kept) == len(document["Statement"]) - 1, f"the template has no statement {sid}"
    document["Statement"] = kept
    with policy_replaced(stack.role_policy_from(template)):
        item = analyze_one(stack, s3, table, drain, prefix)
    denied = [need for call in function_permissions.take() for need in call.denied]
    assert action in {need.action for need in denied}, f"without {sid}, no {action} call was refused: {denied}"
    if provider is None:
        assert item["status"] == "rejected" and item["error"]["code"] == code
    else:
        assert item["status"] == "partial"
        run = providers_of(item)[provider]
        assert run["status"] == "failed"
        if code:
            assert run["error"]["code"] == code
        assert "not authorized to perform" in run["error"]["message"] or "AccessDenied" in run["error"]["message"]

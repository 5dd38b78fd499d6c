"""The layer's DynamoDB value conversion gives what boto3's gives, without importing boto3."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from boto3.dynamodb.types import Binary
from boto3.dynamodb.types import TypeDeserializer as Boto3Deserializer
from boto3.dynamodb.types import TypeSerializer as Boto3Serializer

from image_analysis.dynamo_types import deserialize, serialize

LAYER = Path(__file__).resolve().parents[2] / "layers" / "shared"

VALUES = [
    None,
    True,
    False,
    0,
    -17,
    10**37,
    Decimal("0.8703"),
    Decimal("-1.5E+100"),
    "",
    "window",
    "ünïcode ✓",
    b"\x00\x01binary",
    {"a", "b"},
    {1, Decimal("2.5")},
    {b"x", b"y"},
    [],
    {},
    [1, "two", None, [Decimal("3.25")], {"k": False}],
    {"labels": [{"name": "window", "confidence": Decimal("0.815486"), "provider": "imagga"}], "flags": []},
]


@pytest.mark.parametrize("value", VALUES, ids=[repr(v)[:30] for v in VALUES])
def test_values_serialize_as_boto3_serializes_them_and_come_back(value):
    assert serialize(value) == Boto3Serializer().serialize(value)
    ours, theirs = deserialize(serialize(value)), Boto3Deserializer().deserialize(Boto3Serializer().serialize(value))
    assert ours == _plain(theirs)


@pytest.mark.parametrize(
    "value, error",
    [
        (0.5, "Float types are not supported"),
        (Decimal("1.000000000000000000000000000000000000001"), ""),
        (object(), ""),
    ],
)
def test_what_boto3_refuses_is_refused(value, error):
    with pytest.raises(Exception, match=error) as ours:
        serialize(value)
    with pytest.raises(Exception) as theirs:
        Boto3Serializer().serialize(value)
    assert type(ours.value) is type(theirs.value)


def test_the_layer_reads_and_writes_items_without_importing_boto3():
    code = (
        "import sys; import image_analysis.store, image_analysis.banks.store, image_analysis.runtime; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 's3transfer')))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(LAYER)!r}); {code}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "[]"


def _plain(value):
    """boto3 wraps binary values in Binary; the layer keeps them as bytes."""
    if isinstance(value, Binary):
        return value.value
    if isinstance(value, set) and value and isinstance(next(iter(value)), Binary):
        return {v.value for v in value}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value

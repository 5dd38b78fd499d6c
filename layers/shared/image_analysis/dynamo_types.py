"""Python values to DynamoDB's typed JSON and back, as ``boto3.dynamodb.types`` does it.

boto3's module cannot be imported without boto3's ``__init__``: its session, its resources and the S3
transfer manager (some 60 modules and tens of milliseconds of every cold start), none of which the
function uses. Same rules: numbers are ``int`` or ``Decimal`` (a float is refused, as it would be rounded)
within DynamoDB's 38 digits, sets become SS/NS/BS, and numbers come back as ``Decimal``. One difference:
binary values come back as ``bytes``, not boto3's ``Binary`` wrapper.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any

# DynamoDB's number range and precision; anything it would round or clamp is refused instead.
NUMBER_CONTEXT = Context(Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow])


def _number(value: int | Decimal) -> str:
    return str(NUMBER_CONTEXT.create_decimal(value))


def serialize(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        return {"N": _number(value)}
    if isinstance(value, float):
        raise TypeError("Float types are not supported. Use Decimal types instead.")
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray):
        return {"B": bytes(value)}
    if isinstance(value, Set):
        members = list(value)
        if all(isinstance(m, str) for m in members):
            return {"SS": members}
        if all(isinstance(m, int | Decimal) and not isinstance(m, bool) for m in members):
            return {"NS": [_number(m) for m in members]}
        if all(isinstance(m, bytes | bytearray) for m in members):
            return {"BS": [bytes(m) for m in members]}
        raise TypeError(f"a set of mixed or unsupported types: {value!r}")
    if isinstance(value, Mapping):
        return {"M": {str(k): serialize(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [serialize(v) for v in value]}
    raise TypeError(f"Unsupported type {type(value)} for value {value!r}")


def deserialize(value: Mapping[str, Any]) -> Any:
    if len(value) != 1:
        raise TypeError(f"a DynamoDB value has one type, not {value!r}")
    ((kind, inner),) = value.items()
    if kind == "NULL":
        return None
    if kind in ("S", "BOOL", "B"):
        return inner
    if kind == "N":
        return NUMBER_CONTEXT.create_decimal(inner)
    if kind == "SS":
        return set(inner)
    if kind == "NS":
        return {NUMBER_CONTEXT.create_decimal(n) for n in inner}
    if kind == "BS":
        return set(inner)
    if kind == "M":
        return {k: deserialize(v) for k, v in inner.items()}
    if kind == "L":
        return [deserialize(v) for v in inner]
    raise TypeError(f"Dynamodb type {kind} is not supported")


class TypeSerializer:
    """The shape of boto3's, for code written against it."""

    def serialize(self, value: Any) -> dict[str, Any]:
        return serialize(value)


class TypeDeserializer:
    def deserialize(self, value: Mapping[str, Any]) -> Any:
        return deserialize(value)

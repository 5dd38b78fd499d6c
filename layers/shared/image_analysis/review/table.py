"""A thin typed layer over the low-level DynamoDB client: items as plain Python values in and out.

The low-level client (not boto3's resource layer) is what the rest of the layer uses: it is cheaper to
import on a cold start, and one client serves every table.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from image_analysis.store import from_item


def _serializer() -> Any:
    from image_analysis import dynamo_types as types

    return types.TypeSerializer(), types.TypeDeserializer()


def to_dynamo(value: Any) -> Any:
    """JSON-like values as DynamoDB accepts them (floats as Decimal), Nones left out of mappings."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [to_dynamo(v) for v in value]
    return value


class Table:
    def __init__(self, name: str, client: Any) -> None:
        self.name = name
        self.client = client
        self._serialize, self._deserialize = _serializer()

    def marshal(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._serialize.serialize(to_dynamo(v)) for k, v in item.items() if v is not None}

    def unmarshal(self, raw: dict[str, Any] | None) -> dict[str, Any]:
        return from_item({k: self._deserialize.deserialize(v) for k, v in (raw or {}).items()})

    def get(self, key: dict[str, Any], projection: str | None = None, names: dict[str, str] | None = None) -> Any:
        kwargs: dict[str, Any] = {"TableName": self.name, "Key": self.marshal(key), "ConsistentRead": True}
        if projection:
            kwargs["ProjectionExpression"] = projection
        if names:
            kwargs["ExpressionAttributeNames"] = names
        raw = self.client.get_item(**kwargs).get("Item")
        return self.unmarshal(raw) if raw else None

    def put(self, item: dict[str, Any], condition: str | None = None, **expression: Any) -> bool:
        """False when ``condition`` did not hold."""
        kwargs: dict[str, Any] = {"TableName": self.name, "Item": self.marshal(item)}
        if condition:
            kwargs["ConditionExpression"] = condition
        kwargs.update(self._expression(**expression))
        return self._conditional(self.client.put_item, kwargs)

    def update(self, key: dict[str, Any], update: str, condition: str | None = None, **expression: Any) -> bool:
        kwargs: dict[str, Any] = {"TableName": self.name, "Key": self.marshal(key), "UpdateExpression": update}
        if condition:
            kwargs["ConditionExpression"] = condition
        kwargs.update(self._expression(**expression))
        return self._conditional(self.client.update_item, kwargs)

    def delete(self, key: dict[str, Any]) -> None:
        self.client.delete_item(TableName=self.name, Key=self.marshal(key))

    def query(
        self,
        key_condition: str,
        *,
        index: str | None = None,
        forward: bool = True,
        limit: int | None = None,
        start: dict[str, Any] | None = None,
        filter: str | None = None,
        **expression: Any,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page: the items and the key to go on from (None at the end). ``filter`` is applied after
        ``limit`` items were read, as DynamoDB does: a page may hold fewer, and still go on."""
        items, last, _ = self.query_counted(
            key_condition, index=index, forward=forward, limit=limit, start=start, filter=filter, **expression
        )
        return items, last

    def query_counted(
        self,
        key_condition: str,
        *,
        index: str | None = None,
        forward: bool = True,
        limit: int | None = None,
        start: dict[str, Any] | None = None,
        filter: str | None = None,
        **expression: Any,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None, int]:
        """``query``, with how many items DynamoDB read for it (``ScannedCount``: before ``filter``)."""
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": key_condition,
            "ScanIndexForward": forward,
        }
        if index:
            kwargs["IndexName"] = index
        if filter:
            kwargs["FilterExpression"] = filter
        if limit:
            kwargs["Limit"] = limit
        if start:
            kwargs["ExclusiveStartKey"] = self.marshal(start)
        kwargs.update(self._expression(**expression))
        response = self.client.query(**kwargs)
        last = response.get("LastEvaluatedKey")
        items = [self.unmarshal(i) for i in response.get("Items", [])]
        return items, (self.unmarshal(last) if last else None), int(response.get("ScannedCount", len(items)))

    def query_all(self, key_condition: str, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start = None
        while True:
            page, start = self.query(key_condition, start=start, **kwargs)
            items.extend(page)
            if start is None:
                return items

    def count(self, key_condition: str, *, index: str | None = None, **expression: Any) -> int:
        """How many items match (``Select=COUNT``: no item is sent back), every page read."""
        kwargs: dict[str, Any] = {"TableName": self.name, "KeyConditionExpression": key_condition, "Select": "COUNT"}
        if index:
            kwargs["IndexName"] = index
        kwargs.update(self._expression(**expression))
        total = 0
        while True:
            response = self.client.query(**kwargs)
            total += int(response.get("Count", 0))
            if "LastEvaluatedKey" not in response:
                return total
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def scan_all(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.name}
        while True:
            response = self.client.scan(**kwargs)
            items.extend(self.unmarshal(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _expression(self, names: dict[str, str] | None = None, values: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if names:
            out["ExpressionAttributeNames"] = names
        if values:
            out["ExpressionAttributeValues"] = self.marshal(values)
        return out

    @staticmethod
    def _conditional(call: Any, kwargs: dict[str, Any]) -> bool:
        try:
            call(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


def encode_cursor(key: dict[str, Any] | None) -> str | None:
    """A page's LastEvaluatedKey as an opaque base64url token (the ``next`` of a listing)."""
    if key is None:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True, default=str).encode()).decode("ascii")


def decode_cursor(token: str, fields: set[str]) -> dict[str, Any]:
    """A token ``encode_cursor`` made; anything else raises ValueError (a clear 400, not a 500)."""
    try:
        key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, UnicodeError):
        key = None
    if not isinstance(key, dict) or set(key) != fields or not all(isinstance(v, str) for v in key.values()):
        raise ValueError("next is not a token printed by a previous page of this listing")
    return key

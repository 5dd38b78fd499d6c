"""Daily call caps per provider: one atomic counter per provider and UTC day, in a table of its own."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError


class DailyUsage:
    def __init__(self, table_name: str, dynamodb_client: Any, clock: Any = time.time) -> None:
        self.table_name = table_name
        self._client = dynamodb_client
        self._clock = clock

    def _day(self) -> str:
        return datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%d")

    def reserve(self, provider: str, cap: int) -> bool:
        """Count one analysis against today's cap; False (and nothing counted) once the cap is reached."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": f"{provider}#{self._day()}"}},
                UpdateExpression="ADD calls :one SET expires_at = if_not_exists(expires_at, :expires)",
                ConditionExpression="attribute_not_exists(calls) OR calls < :cap",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":cap": {"N": str(cap)},
                    ":expires": {"N": str(int(self._clock()) + 3 * 86400)},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

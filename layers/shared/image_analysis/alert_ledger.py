"""Who may publish an alert, and whether it went out: one small item per ``alert_id`` in a table of its own.

    claim(alert_id, until, token)   True when this delivery may publish: nobody has, and no other delivery's
                                    claim is still alive (a claim lives until its writer's deadline)
    release(alert_id, token)        a publish that failed gives the claim back at once, so that the next
                                    delivery (Lambda's retry a minute later) publishes instead of waiting
    mark_sent(alert_id, token)      the alert went out: no delivery publishes it again
    is_sent(alert_id)

The alert id is stable per object version and flag set (``alerts.alert_id_for``), so the ledger holds for
every result of that version: a duplicate delivery, a backfill that met the real event, a reprocess with
the same flags; a later result that adds a flag has a new id and publishes once more. Only a crash after
the publish and before ``mark_sent`` can send an alert twice, with the same id, which is what the id lets
a subscriber drop.

The ledger's items are a few hundred bytes (one write unit each), apart from the result items they guard.
``MemoryAlertLedger`` keeps the same rules in one process (tests, local tools without the table).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

# Kept a little over a year: a reprocess of an old upload with the flags it had then stays quiet.
LEDGER_TTL_DAYS = 400


class Ledger(Protocol):
    def is_sent(self, alert_id: str) -> bool: ...
    def claim(self, alert_id: str, until: float, token: str, where: str = "") -> bool: ...
    def release(self, alert_id: str, token: str) -> None: ...
    def mark_sent(self, alert_id: str, token: str) -> None: ...


class AlertLedger:
    def __init__(self, table_name: str, dynamodb_client: Any, clock: Callable[[], float] = time.time) -> None:
        self.table_name = table_name
        self._client = dynamodb_client
        self._clock = clock

    def is_sent(self, alert_id: str) -> bool:
        item = self._client.get_item(TableName=self.table_name, Key={"pk": {"S": alert_id}}, ConsistentRead=True).get(
            "Item"
        )
        return bool(item) and item.get("state", {}).get("S") == "sent"

    def claim(self, alert_id: str, until: float, token: str, where: str = "") -> bool:
        now = self._clock()
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": alert_id},
                    "state": {"S": "claimed"},
                    "until": {"N": _number(until)},
                    "token": {"S": token},
                    "result": {"S": where},
                    "expires_at": {"N": str(int(now) + LEDGER_TTL_DAYS * 86400)},
                },
                ConditionExpression="attribute_not_exists(pk) OR (#state = :claimed AND #until < :now)",
                ExpressionAttributeNames={"#state": "state", "#until": "until"},
                ExpressionAttributeValues={":claimed": {"S": "claimed"}, ":now": {"N": _number(now)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release(self, alert_id: str, token: str) -> None:
        """Best effort: a claim that stays lives only until its writer's deadline."""
        with contextlib.suppress(ClientError, BotoCoreError):
            self._client.delete_item(
                TableName=self.table_name,
                Key={"pk": {"S": alert_id}},
                ConditionExpression="#token = :token AND #state = :claimed",
                ExpressionAttributeNames={"#token": "token", "#state": "state"},
                ExpressionAttributeValues={":token": {"S": token}, ":claimed": {"S": "claimed"}},
            )

    def mark_sent(self, alert_id: str, token: str) -> None:
        self._client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": alert_id}},
            UpdateExpression="SET #state = :sent, sent_at = :now REMOVE #until",
            ExpressionAttributeNames={"#state": "state", "#until": "until"},
            ExpressionAttributeValues={":sent": {"S": "sent"}, ":now": {"N": _number(self._clock())}},
        )


class MemoryAlertLedger:
    """The same rules in one process."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def is_sent(self, alert_id: str) -> bool:
        with self._lock:
            return self._entries.get(alert_id, {}).get("state") == "sent"

    def claim(self, alert_id: str, until: float, token: str, where: str = "") -> bool:
        with self._lock:
            entry = self._entries.get(alert_id)
            if entry is not None and (entry["state"] == "sent" or entry["until"] >= self._clock()):
                return False
            self._entries[alert_id] = {"state": "claimed", "until": until, "token": token}
            return True

    def release(self, alert_id: str, token: str) -> None:
        with self._lock:
            entry = self._entries.get(alert_id)
            if entry is not None and entry["state"] == "claimed" and entry["token"] == token:
                del self._entries[alert_id]

    def mark_sent(self, alert_id: str, token: str) -> None:
        with self._lock:
            self._entries[alert_id] = {"state": "sent", "until": 0.0, "token": token}


def _number(value: float) -> str:
    return str(Decimal(str(round(value, 3))))

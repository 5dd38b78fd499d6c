"""The ``image.reviewed`` message on the decisions topic: one per decision, with its ``decision_id``."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

MESSAGE_FIELDS = ("decision_id", "decision", "previous", "bucket", "key", "version_id", "by", "reason", "decided_at")


def message_body(record: dict[str, Any]) -> dict[str, Any]:
    return {"type": "image.reviewed", **{name: record.get(name) for name in MESSAGE_FIELDS}}


def _subject(decision: str, key: str) -> str:
    """ASCII, printable, under SNS's 100 characters, whatever the key holds."""
    ascii_key = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode()
    ascii_key = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in ascii_key) or "(non-ASCII key)"
    subject = f"Image reviewed [{decision}]: {ascii_key}"
    return subject if len(subject) <= 99 else subject[:96] + "..."


class DecisionPublisher:
    def __init__(self, topic_arn: str, sns_client: Any) -> None:
        self.topic_arn = topic_arn
        self._client = sns_client

    def publish(self, record: dict[str, Any]) -> str:
        body = message_body(record)
        response = self._client.publish(
            TopicArn=self.topic_arn,
            Subject=_subject(body["decision"], body["key"]),
            Message=json.dumps(body, ensure_ascii=False),
            MessageAttributes={
                "decision": {"DataType": "String", "StringValue": body["decision"]},
                "bucket": {"DataType": "String", "StringValue": body["bucket"]},
            },
        )
        return response["MessageId"]

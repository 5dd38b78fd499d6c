"""The ``image.flagged`` SNS message: a stable ``alert_id`` per object version and flag set, filterable
attributes."""

from __future__ import annotations

import json
import unicodedata
import uuid
from collections.abc import Iterable
from typing import Any

from image_analysis.merge import capped
from image_analysis.models import Alert, AnalysisResult, ResultLocation

# A fixed namespace makes alert ids reproducible: the same object version and flags always get the same id.
ALERT_NAMESPACE = uuid.UUID("6f1d3c1e-3a5e-4c9b-9a43-5b0e8d7f2a10")
# SNS: the Subject "must be ASCII text that begins with a letter, number, or punctuation mark; must not
# include line breaks or control characters; and must be less than 100 characters long".
SUBJECT_LIMIT = 99
# SNS accepts 256 KiB for the message and its attributes together; the body stays well inside it
# whatever the sections hold.
MESSAGE_BUDGET = 200_000


def alert_id_for(pk: str, sk: str, etag: str | None, flags: Iterable[str]) -> str:
    """The same for every result of one object version (its key, version id and bytes) with the same flags,
    whichever event, delivery or reprocess made it; another flag set is another alert."""
    flag_set = "+".join(sorted(set(flags)))
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{pk}\n{sk}\n{etag or ''}\n{flag_set}"))


def subject_for(flags: list[str], key: str) -> str:
    """ASCII, printable, no line breaks, fewer than 100 characters, whatever the key holds."""
    ascii_key = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode()
    ascii_key = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in ascii_key) or "(non-ASCII key)"
    subject = f"Image flagged [{', '.join(flags)}]: {ascii_key}"
    if len(subject) > SUBJECT_LIMIT:
        subject = subject[: SUBJECT_LIMIT - 3] + "..."
    return subject


def build_alert(result: AnalysisResult, alert_id: str, table: str) -> Alert:
    return Alert(
        alert_id=alert_id,
        flags=result.flags,
        bucket=result.bucket,
        key=result.key,
        version_id=result.version_id,
        sha256=result.sha256,
        moderation=result.moderation if "nsfw" in result.flags else None,
        ai_generated=result.ai_generated if "ai_generated" in result.flags else None,
        deepfake=result.deepfake if "deepfake" in result.flags else None,
        matches=list(result.matches) if "known_bad" in result.flags else None,
        analyzed_at=result.analyzed_at,
        result=ResultLocation(table=table, pk=f"{result.bucket}/{result.key}", sk=result.version_id or "null"),
    )


def _max_confidence(alert: Alert) -> float:
    scores = [0.0]
    if alert.moderation is not None:
        scores.append(alert.moderation.nsfw_score)
        scores.extend(c.confidence for c in alert.moderation.categories if c.name not in ("safe", "other"))
    if alert.ai_generated is not None and alert.ai_generated.confidence is not None:
        scores.append(alert.ai_generated.confidence)
    if alert.deepfake is not None:
        scores.append(alert.deepfake.confidence)
    return max(scores)


def _trimmed(alert: Alert, keep: int) -> Alert:
    """The alert with at most ``keep`` categories, evidence entries, generators and regions: the
    strongest ones, which are what a subscriber acts on; the full lists stay in the table."""
    updates: dict[str, Any] = {}
    if alert.moderation is not None:
        updates["moderation"] = alert.moderation.model_copy(update={"categories": alert.moderation.categories[:keep]})
    if alert.ai_generated is not None:
        strongest = sorted(alert.ai_generated.generators.items(), key=lambda kv: kv[1], reverse=True)[:keep]
        updates["ai_generated"] = alert.ai_generated.model_copy(
            update={"evidence": alert.ai_generated.evidence[:keep], "generators": dict(strongest)}
        )
    if alert.deepfake is not None:
        updates["deepfake"] = alert.deepfake.model_copy(update={"regions": alert.deepfake.regions[:keep]})
    return alert.model_copy(update=updates)


def fitted_body(alert: Alert) -> str:
    """The JSON body, measured, and trimmed until it fits MESSAGE_BUDGET (bytes)."""
    alert = alert.model_copy(
        update={name: capped(getattr(alert, name), name) for name in ("moderation", "ai_generated", "deepfake")}
    )
    body = alert.model_dump_json(exclude_none=True)
    for keep in (10, 3, 0):
        if len(body.encode()) <= MESSAGE_BUDGET:
            break
        body = _trimmed(alert, keep).model_dump_json(exclude_none=True)
    return body


def message_for(alert: Alert, providers: list[str]) -> dict[str, Any]:
    """Keyword arguments for ``sns.publish`` (without TopicArn)."""
    body = fitted_body(alert)
    return {
        "Subject": subject_for(alert.flags, alert.key),
        "Message": body,
        "MessageAttributes": {
            "flags": {"DataType": "String.Array", "StringValue": json.dumps(alert.flags)},
            "providers": {"DataType": "String.Array", "StringValue": json.dumps(sorted(set(providers)))},
            "bucket": {"DataType": "String", "StringValue": alert.bucket},
            "max_confidence": {"DataType": "Number", "StringValue": f"{_max_confidence(alert):.4f}"},
        },
    }


class AlertPublisher:
    def __init__(self, topic_arn: str, sns_client: Any) -> None:
        self.topic_arn = topic_arn
        self._client = sns_client

    def publish(self, alert: Alert, providers: list[str]) -> str:
        response = self._client.publish(TopicArn=self.topic_arn, **message_for(alert, providers))
        return response["MessageId"]

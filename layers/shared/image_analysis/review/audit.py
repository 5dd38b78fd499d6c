"""The audit log: one record per decision, appended, never updated in place except its outbox flag.

Record: ``pk`` (``<bucket>/<key>#<version or null>``), ``sk`` (``<decided_at>#<decision_id>``: a
version's history in order), ``decision_id``, ``decision``, ``previous``, ``by``, ``reason``,
``decided_at``, ``bucket``, ``key``, ``version_id``, the result's ``etag``, ``sha256``, ``flags`` and
``signals`` (each provider's score per category at the time: what calibration learns from), ``appeals``.

The outbox: a new record carries ``outbox = "pending"`` until its ``image.reviewed`` message is
published; the ``Outbox`` index holds only such records (sparse), so the sweep finds them without a scan.
Publishing claims the record first (``outbox_claimed_at``, conditional), so a sweep and the deciding
caller never both publish; a claim older than the lease belongs to a caller that is gone.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from image_analysis.models import AnalysisResult
from image_analysis.review.ids import ReviewId
from image_analysis.review.table import Table

OUTBOX_INDEX = "Outbox"
PENDING = "pending"


def signals_of(result: AnalysisResult) -> list[dict[str, Any]]:
    """Each provider's highest score per category: house moderation categories, ``ai_generated`` and
    ``deepfake``. ``safe`` says nothing about a flag and is left out."""
    best: dict[tuple[str, str], float] = {}

    def keep(provider: str, category: str, score: float | None) -> None:
        if score is not None and score > best.get((provider, category), -1.0):
            best[(provider, category)] = float(score)

    if result.moderation is not None:
        for category in result.moderation.categories:
            if category.name != "safe":
                keep(category.provider, category.name, category.confidence)
    if result.ai_generated is not None and result.ai_generated.verdict != "unknown":
        keep(result.ai_generated.provider, "ai_generated", result.ai_generated.confidence)
    if result.deepfake is not None:
        keep(result.deepfake.provider, "deepfake", result.deepfake.confidence)
    return [{"provider": p, "category": c, "score": s} for (p, c), s in sorted(best.items())]


class AuditLog:
    def __init__(self, table_name: str, dynamodb_client: Any, clock: Any = time.time) -> None:
        self.table = Table(table_name, dynamodb_client)
        self._clock = clock

    @property
    def name(self) -> str:
        return self.table.name

    def put_request(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record's put, for a transaction: a new record only, never over an existing one."""
        return {
            "Put": {
                "TableName": self.table.name,
                "Item": self.table.marshal({**record, "outbox": PENDING}),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def history(self, rid: ReviewId) -> list[dict[str, Any]]:
        """Every decision on the object version, oldest first."""
        return self.table.query_all("pk = :pk", values={":pk": rid.plain})

    def all(self) -> list[dict[str, Any]]:
        """Every decision of every object (a scan: for calibration, which reads them all anyway)."""
        return self.table.scan_all()

    def unpublished(self, decided_before: str, limit: int = 100) -> list[dict[str, Any]]:
        """Records still waiting for their message, decided before ``decided_before`` (ISO 8601)."""
        items, _ = self.table.query(
            "outbox = :pending AND sk < :before",
            index=OUTBOX_INDEX,
            limit=limit,
            values={":pending": PENDING, ":before": decided_before},
        )
        return items

    def claim(self, record: dict[str, Any], lease_seconds: float) -> bool:
        """The right to publish this record's message: False when it is published or another holds it."""
        now = Decimal(str(round(self._clock(), 3)))
        return self.table.update(
            {"pk": record["pk"], "sk": record["sk"]},
            "SET outbox_claimed_at = :now",
            "attribute_exists(outbox) AND (attribute_not_exists(outbox_claimed_at) OR outbox_claimed_at < :stale)",
            values={":now": now, ":stale": now - Decimal(str(lease_seconds))},
        )

    def mark_published(self, record: dict[str, Any], message_id: str) -> bool:
        """Clear the outbox flag: the message is out. False if it was cleared already."""
        return self.table.update(
            {"pk": record["pk"], "sk": record["sk"]},
            "REMOVE outbox, outbox_claimed_at SET published_message_id = :id",
            "attribute_exists(outbox)",
            values={":id": message_id},
        )
